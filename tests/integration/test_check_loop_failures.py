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
