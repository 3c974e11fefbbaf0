"""`check --every` when Redis cannot be reached for some rounds: each such round is a breach,
said once on stderr at the start of the run of them and once when the loop can check again;
a loop whose last round holds still exits 6 when some rounds could not check at all."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode

runner = CliRunner()


class RestartOnBreach:
    """A webhook receiver that starts the (killed) server again when the breach is posted: the
    next round then reaches it. No sleep orders the two."""

    def __init__(self, server):
        self.events: list[str] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.events.append(body["event"])
                if body["event"] == "breach" and not server.running:
                    server.restart()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


def loop(url: str, rounds: int, *extra: str):
    return runner.invoke(
        app,
        ["--url", url, "--connect-timeout", "0.5", "check", "--max-memory", "99%"]
        + ["--sample", "0.05s", "--every", "0.01s", "--rounds", str(rounds), *extra],
    )


def test_rounds_that_cannot_reach_redis_are_said_once_not_each(make_redis):
    server = make_redis()
    url = server.url
    server.kill()
    result = loop(url, 3)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    said = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(said) == 1 and "round 1: could not check" in said[0], result.stderr
    assert len(result.stdout.splitlines()) == 3


def test_a_loop_that_holds_at_the_end_still_exits_6_for_rounds_it_could_not_check(make_redis):
    server = make_redis()
    url = server.url
    server.kill()
    hook = RestartOnBreach(server)
    try:
        result = loop(url, 3, "--webhook", hook.url)
    finally:
        hook.close()
    assert hook.events == ["breach", "recovery"]
    assert result.exit_code == ExitCode.PARTIAL, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("warning: round 1: could not check")
    assert lines[1].startswith("warning: round 2: checking again after 1 round")
    assert lines[-1].startswith("error: 1 of 3 rounds could not check"), result.stderr


@pytest.mark.parametrize("rounds", [1, 2])
def test_a_loop_that_always_reaches_redis_says_nothing_on_stderr(redis_url, rounds):
    result = loop(redis_url, rounds)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


class ScriptedWebhook:
    """A webhook receiver answering each post as scripted: a status (500), or "close" (the
    connection dropped unanswered, as a refusing or dying server does). Before answering it
    runs the post's action on Redis, so the next round's verdict is set by the post itself, not
    by a sleep."""

    def __init__(self, answers, actions):
        self.events: list[str] = []
        self.answers, self.actions = list(answers), list(actions)
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                n = len(hook.events)
                hook.events.append(body["event"])
                hook.actions[n]()
                answer = hook.answers[n]
                if answer == "close":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_port}/hook/SECRET-TOKEN"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self):
        self.http.shutdown()
        self.http.server_close()


BIG = 8_000_000  # bytes of one value: used memory over --max-memory 5MB while it is there


def fill(conn) -> None:
    # Made by the server from a short command: an 8 MB SET would leave an 8 MB query buffer
    # counted in used memory after the value is gone.
    conn.setrange("big", BIG, "x")


def memory_loop(url: str, hook, rounds: int, *extra: str):
    return runner.invoke(
        app,
        ["--url", url, "check", "--max-memory", "5MB", "--sample", "0.05s"]
        + ["--every", "0.01s", "--rounds", str(rounds), "--webhook", hook.url, *extra],
    )


@pytest.mark.parametrize("answer", [500, "close"])
def test_a_loop_whose_alerts_were_not_delivered_exits_6_though_it_holds_at_the_end(
    make_redis, answer
):
    server = make_redis()
    conn = server.client()
    hooks = []

    def run(*extra):
        fill(conn)
        # Round 1 breaches; its post frees the memory, so round 2 recovers; both posts fail.
        hooks.append(ScriptedWebhook([answer, answer], [lambda: conn.delete("big"), lambda: 0]))
        return memory_loop(server.url, hooks[-1], 2, *extra)

    try:
        result, as_json = run(), run("--json")
    finally:
        for hook in hooks:
            hook.close()
    assert hooks[0].events == hooks[1].events == ["breach", "recovery"], as_json.output
    assert result.exit_code == ExitCode.PARTIAL, result.output
    said = result.stderr.strip().splitlines()
    assert len(said) == 2, result.stderr  # the first undelivered alert, then the loop's end
    assert said[0].startswith("warning: round 1: alert not delivered: the webhook at http://127")
    assert said[-1].startswith("error: 2 of 2 alerts not delivered to the webhook")
    assert "SECRET-TOKEN" not in result.output
    # --json: each round's line carries the count so far.
    assert as_json.exit_code == ExitCode.PARTIAL, as_json.output
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [(r["event"], r["undelivered_alerts"]) for r in lines] == [
        ("breach", 1), ("recovery", 2)]  # fmt: skip


def test_delivery_that_works_again_is_said_once_and_the_lost_alerts_still_count(make_redis):
    server = make_redis()
    conn = server.client()
    fill(conn)
    big = lambda: fill(conn)  # noqa: E731
    free = lambda: conn.delete("big")  # noqa: E731
    hook = ScriptedWebhook([500, 500, 204, 204], [free, big, free, lambda: None])
    try:
        result = memory_loop(server.url, hook, 4)
    finally:
        hook.close()
    assert hook.events == ["breach", "recovery", "breach", "recovery"]
    assert result.exit_code == ExitCode.PARTIAL, result.output
    said = result.stderr.strip().splitlines()
    assert said[0].startswith("warning: round 1: alert not delivered")
    assert said[1] == "warning: round 3: alert delivered again after 2 undelivered alerts"
    assert said[2].startswith("error: 2 of 4 alerts not delivered")
    assert len(said) == 3, result.stderr


def test_a_failed_condition_outranks_an_undelivered_alert_which_is_still_said(make_redis):
    """One-shot: the alert is posted only on a breach, so a lost alert comes with exit 7 (the
    condition failed: what a CI job must see first); the loss is said, and in --json."""
    server = make_redis()
    fill(server.client())
    hook = ScriptedWebhook([500], [lambda: None])
    try:
        result = runner.invoke(
            app,
            ["--url", server.url, "check", "--max-memory", "5MB", "--sample", "0.05s",
             "--webhook", hook.url, "--json"],
        )  # fmt: skip
    finally:
        hook.close()
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    assert json.loads(result.stdout)["data"]["undelivered_alerts"] == 1
    said = result.stderr.strip().splitlines()
    assert said[0].startswith("warning: 1 of 1 alert not delivered to the webhook")
    assert "answered HTTP 500" in said[0]
    assert said[1].startswith("error: 1 check condition(s) failed")
