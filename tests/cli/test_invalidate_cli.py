"""`cachectl invalidate` end to end: exit codes, --json parsed, one-line errors, the question on
a terminal, Ctrl-C during the delay and mid-run, a server lost mid-run."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode
from cachectl.layout import Layout

runner = CliRunner()
LAYOUT = Layout()


def invoke(url, *args):
    return runner.invoke(app, ["--url", url, "invalidate", *args])


def fill(client, n: int, tag: str = "t", endpoint: str = "e") -> list[str]:
    keys = [LAYOUT.entry(endpoint, {"id": i}) for i in range(n)]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, "v")
        pipe.sadd(LAYOUT.tag(tag), key)
    pipe.set("session:1", "keep me")
    pipe.execute()
    return keys


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_yes_json_deletes_and_reports_the_summary(redis_url, client):
    keys = fill(client, 30)
    result = invoke(redis_url, "--tag", "t", "--yes", "--json")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is True and envelope["command"] == "invalidate"
    data = envelope["data"]
    assert (data["matched"], data["deleted"], data["already_gone"], data["sets_deleted"]) == (
        30,
        30,
        0,
        1,
    )
    assert data["failure"] is None and data["duration_seconds"] >= 0
    assert client.exists(*keys) == 0 and client.exists("session:1")


def test_a_run_is_recorded_in_cachectls_own_history(redis_url, client):
    from cachectl.config import Settings
    from cachectl.runlog import recent_runs
    from cachectl.store import Store
    from cachectl.timeseries import TimeSeries

    fill(client, 7)
    assert invoke(redis_url, "--tag", "t", "--dry-run").exit_code == 0
    assert invoke(redis_url, "--tag", "t", "--yes").exit_code == 0
    with Store(Settings(url=redis_url)) as store:
        runs = recent_runs(TimeSeries(store, LAYOUT))
    assert [(r.job, r.summary["deleted"], r.summary["dry_run"]) for r in runs] == [
        ("invalidate", 7, False)
    ]


def test_summary_for_people_off_a_terminal_is_plain_lines(redis_url, client):
    fill(client, 3)
    result = invoke(redis_url, "--tag", "t", "--yes")
    assert result.exit_code == 0, result.output
    assert "  deleted: 3" in result.stdout.splitlines()
    assert "\x1b[" not in result.output


def test_no_terminal_and_no_yes_refuses_and_deletes_nothing(redis_url, client):
    keys = fill(client, 5)
    result = invoke(redis_url, "--tag", "t")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip().splitlines() == [
        (
            "error: refusing to delete without confirmation: no terminal to ask on "
            "(pass --yes to confirm, or --dry-run to see what would be deleted)"
        )
    ]
    assert client.exists(*keys) == 5


def test_dry_run_json_lists_every_key_and_deletes_nothing(redis_url, client):
    keys = fill(client, 50)
    result = invoke(redis_url, "--tag", "t", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is True
    assert sorted(envelope["data"]["keys"]) == sorted(keys)
    assert envelope["data"]["matched"] == 50 and envelope["data"]["dry_run"] is True
    assert client.exists(*keys) == 50


def test_dry_run_for_people_shows_the_count_and_the_first_keys(redis_url, client):
    fill(client, 50)
    result = invoke(redis_url, "--tag", "t", "--dry-run", "--show", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "50 entries would be deleted (tag t)"
    assert len([line for line in lines if line.startswith("  api_cache:e:")]) == 4
    assert lines[5] == "  ... and 46 more (--json lists every one)"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pattern", "*"], "reaches outside the cache's entries"),
        (["--pattern", "api_cache:*"], "matches every entry of the cache"),
        (["--key", "session:1"], "is not a cache entry"),
        (["--endpoint", "a", "--endpoint", "b", "--param", "id=1"], "exactly one --endpoint"),
        (["--tag", "t", "--older-than", "soon"], "--older-than"),
        (["--tag", "t", "--index-cleanup", "never"], "--index-cleanup"),
        ([], "nothing selected"),
    ],
)
def test_bad_flags_are_one_line_usage_errors_that_touch_nothing(redis_url, client, args, message):
    keys = fill(client, 3)
    result = invoke(redis_url, *args, "--yes")
    assert result.exit_code == ExitCode.USAGE
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert client.exists(*keys) == 3


def test_bad_graph_file_is_bad_input_with_its_line(redis_url, tmp_path):
    graph = tmp_path / "graph.yaml"
    graph.write_text("user_1: [a]\nuser_2: {x: 1}\n")
    result = invoke(redis_url, "--depends-on", "user_1", "--graph", str(graph), "--yes")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"{graph}:2:9: user_2: expected a list of resource ids" in result.stderr


def test_acl_user_without_unlink_gets_one_line_and_exit_4(acl_redis, acl_url):
    admin = acl_redis.server.client()
    fill(admin, 3)
    url = acl_redis.url_for("limited", "limited-pass")
    result = invoke(url, "--tag", "t", "--yes")
    assert result.exit_code == ExitCode.REDIS
    assert result.stderr.strip().splitlines() == [
        (
            "error: the ACL user 'limited' may not run UNLINK "
            "(grant it with ACL SETUSER, or connect as a user that may)"
        )
    ]
    assert "limited-pass" not in result.output
    assert admin.scard("tag:t") == 3


@pytest.mark.parametrize(
    ("rules", "args", "refused"),
    [
        # May touch entries, tags and the write log, not the access log: ZREM on it was
        # refused mid-run, after the tag had been taken.
        ("~api_cache:* ~tag:* ~cache_entries", ["--tag", "t"], "EXISTS on cache_access"),
        # May not touch dependency sets: the tag went first, then the run failed part way.
        (
            "~api_cache:* ~tag:* ~cache_entries ~cache_access",
            ["--tag", "t", "--depends-on", "r"],
            "TYPE on depends_on:",
        ),
    ],
    ids=["no-access-log", "no-dependency-sets"],
)
def test_acl_key_patterns_that_exclude_a_key_the_run_needs_fail_before_any_change(
    acl_redis, acl_url, rules, args, refused
):
    admin = acl_redis.server.client()
    keys = fill(admin, 3)
    admin.sadd(LAYOUT.dependency("r"), keys[0])
    admin.zadd("cache_access", {keys[1]: 1})
    admin.execute_command(
        "ACL", "SETUSER", "narrow", "reset", "on", ">narrow-pass", "+@all", *rules.split()
    )
    result = invoke(acl_redis.url_for("narrow", "narrow-pass"), *args, "--yes")
    assert result.exit_code == ExitCode.REDIS, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: the ACL user 'narrow' may not run {refused}"), line
    assert "narrow-pass" not in result.output
    assert admin.exists(*keys) == 3 and admin.scard("tag:t") == 3  # not even taken
    assert not admin.exists(LAYOUT.pending_set(b"tag:t"))
    assert admin.scard(LAYOUT.dependency("r")) == 1


def test_unreachable_redis_is_exit_4_without_a_summary():
    result = runner.invoke(
        app,
        [
            "--url",
            "redis://127.0.0.1:1/0",
            "--connect-timeout",
            "0.5",
            "invalidate",
            "--tag",
            "t",
            "--yes",
        ],
        env={"CACHECTL_RETRIES": "0"},
    )
    assert result.exit_code == ExitCode.REDIS
    assert result.stdout == ""
    assert result.stderr.startswith("error: cannot connect to Redis at redis://127.0.0.1:1/0")


def test_dry_run_json_stays_one_valid_document_when_redis_fails():
    result = runner.invoke(
        app,
        [
            "--url",
            "redis://127.0.0.1:1/0",
            "--connect-timeout",
            "0.5",
            "invalidate",
            "--tag",
            "t",
            "--dry-run",
            "--json",
        ],
        env={"CACHECTL_RETRIES": "0"},
    )
    assert result.exit_code == ExitCode.REDIS
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["error"]["code"] == "redis.unreachable"
    assert envelope["data"]["keys"] == []


# --- a set that does not exist, nothing matched, --strict ------------------------------------


def test_missing_tag_exits_0_and_says_so_naming_the_closest_tags(redis_url, client):
    fill(client, 2, tag="user_123", endpoint="a")
    fill(client, 2, tag="products", endpoint="b")
    result = invoke(redis_url, "--tag", "user_132", "--yes")
    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if "user_132" in line]
    assert warning.startswith("warning: tag set tag:user_132 does not exist")
    assert "user_123" in warning and "products" not in warning
    assert client.exists(LAYOUT.tag("user_123"), LAYOUT.tag("products")) == 2


def test_missing_dependency_says_so_and_json_names_it(redis_url, client):
    client.sadd(LAYOUT.dependency("product_42"), LAYOUT.entry("e", {"id": 1}))
    result = invoke(redis_url, "--depends-on", "product_24", "--yes", "--json")
    assert result.exit_code == 0, result.output
    assert "dependency set depends_on:product_24 does not exist" in result.stderr
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is True
    assert envelope["data"]["missing_sets"] == [
        {
            "kind": "dependency",
            "name": "product_24",
            "key": "depends_on:product_24",
            "closest": ["product_42"],
        }
    ]


def test_existing_tag_has_no_missing_sets(redis_url, client):
    fill(client, 3)
    result = invoke(redis_url, "--tag", "t", "--yes", "--json", "--strict")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["missing_sets"] == []
    assert "does not exist" not in result.stderr


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--strict"], {}),
        ([], {"CACHECTL_STRICT": "true"}),
    ],
    ids=["flag", "env"],
)
def test_strict_makes_a_missing_tag_exit_5(redis_url, client, args, env):
    result = runner.invoke(
        app, ["--url", redis_url, "invalidate", "--tag", "nope", "--yes", *args], env=env
    )
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert result.stderr.splitlines()[-1].startswith("error: tag set tag:nope does not exist")


def test_strict_in_the_config_file_and_no_strict_overrides_it(redis_url, client, tmp_path):
    config = tmp_path / "cachectl.yaml"
    config.write_text("strict: true\n")
    base = ["--config", str(config), "--url", redis_url, "invalidate", "--tag", "nope", "--yes"]
    assert runner.invoke(app, base).exit_code == ExitCode.NOT_FOUND
    assert runner.invoke(app, [*base, "--no-strict"]).exit_code == 0


def test_strict_missing_set_is_exit_5_after_the_rest_is_done_and_json_says_why(redis_url, client):
    keys = fill(client, 4)
    result = invoke(redis_url, "--tag", "t", "--depends-on", "gone", "--yes", "--strict", "--json")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["error"]["code"] == "not_found"
    assert envelope["data"]["deleted"] == 4
    assert [m["key"] for m in envelope["data"]["missing_sets"]] == ["depends_on:gone"]
    assert client.exists(*keys) == 0


@pytest.mark.parametrize(
    "selection",
    [
        ["--pattern", "api_cache:nothing:*"],
        ["--endpoint", "nothing"],
        ["--key", "api_cache:e:gone"],
        ["--endpoint", "e", "--param", "id=999"],
    ],
    ids=["pattern", "endpoint", "key", "endpoint-param"],
)
def test_nothing_matched_is_exit_0_and_exit_5_under_strict(redis_url, client, selection):
    keys = fill(client, 3)
    assert invoke(redis_url, *selection, "--yes").exit_code == 0
    result = invoke(redis_url, *selection, "--yes", "--strict")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    assert result.stderr.splitlines()[-1].startswith("error: nothing matched")
    assert client.exists(*keys) == 3


def test_strict_dry_run_of_a_missing_tag_is_exit_5(redis_url, client):
    result = invoke(redis_url, "--tag", "nope", "--dry-run", "--strict")
    assert result.exit_code == ExitCode.NOT_FOUND, result.output
    result = invoke(redis_url, "--tag", "nope", "--dry-run")
    assert result.exit_code == 0 and "tag set tag:nope does not exist" in result.stderr
    result = invoke(redis_url, "--tag", "nope", "--dry-run", "--strict", "--json")
    assert result.exit_code == ExitCode.NOT_FOUND
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["error"]["code"] == "not_found"
    assert envelope["data"]["missing_sets"][0]["key"] == "tag:nope"


# --- the index cleanup auto skips -----------------------------------------------------------


@pytest.mark.parametrize(
    "selection",
    [
        ["--depends-on", "r"],
        ["--endpoint", "e", "--param", "id=0"],
        ["--key", LAYOUT.entry("e", {"id": 0})],
    ],
    ids=["depends-on", "endpoint-param", "key"],
)
def test_skipped_index_cleanup_says_what_it_left_and_what_removes_it(redis_url, client, selection):
    [key, *_] = fill(client, 3)  # every entry is in tag:t
    client.sadd(LAYOUT.dependency("r"), key)
    result = invoke(redis_url, *selection, "--yes")
    assert result.exit_code == 0, result.output
    assert not client.exists(key) and client.sismember(LAYOUT.tag("t"), key)  # dangling
    [row] = [line for line in result.stdout.splitlines() if "index cleanup" in line]
    assert row.startswith("  index cleanup: skipped")
    assert "1 deleted entry" in row
    assert "cachectl prune" in row and "--index-cleanup sweep" in row

    client.set(key, "v")
    client.sadd(LAYOUT.dependency("r"), key)
    result = invoke(redis_url, *selection, "--yes", "--json")
    data = json.loads(result.stdout)["data"]
    assert data["index_cleanup"] == "skipped" and data["unswept_entries"] == 1


def test_index_cleanup_is_not_needed_when_nothing_was_deleted(redis_url, client):
    fill(client, 3)
    result = invoke(redis_url, "--key", LAYOUT.entry("e", {"id": 99}), "--yes", "--json")
    data = json.loads(result.stdout)["data"]
    assert data["index_cleanup"] == "not needed" and data["unswept_entries"] == 0


# --- real processes: signals, a terminal, a server that dies -------------------------------


def cachectl(url, *args, env=None, **kw):
    return subprocess.Popen(
        [sys.executable, "-m", "cachectl", "--url", url, "invalidate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
        **kw,
    )


def wait_until(condition, what: str, timeout: float = 30) -> None:
    """Polls an observable state (a line printed, keys gone) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def deleting_started(client, keys):
    return lambda: client.exists(*keys) < len(keys)


def test_ctrl_c_during_the_delay_deletes_nothing(redis_url, client):
    keys = fill(client, 5)
    proc = cachectl(redis_url, "--tag", "t", "--yes", "--delay", "30s")
    first_line = proc.stderr.readline()  # printed once the wait has begun
    assert "before deleting (Ctrl-C cancels)" in first_line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == ExitCode.INTERRUPTED
    assert "cancelled during --delay: nothing was deleted" in err
    assert client.exists(*keys) == 5


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_mid_run_stops_after_the_batch_reports_and_a_rerun_finishes(redis_url, client, stop):
    keys = fill(client, 4000)
    proc = cachectl(
        redis_url, "--tag", "t", "--yes", "--json", "--rate", "1000", "--batch-size", "50"
    )
    wait_until(deleting_started(client, keys), "the first deletions")
    proc.send_signal(stop)
    if stop == signal.SIGTERM:
        proc.send_signal(stop)  # forwarded by a parent: ignored, the summary still comes
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    envelope = json.loads(out)
    assert envelope["ok"] is False and envelope["error"]["code"] == "interrupted"
    data = envelope["data"]
    assert data["interrupted"] is True and 0 < data["deleted"] < 4000
    assert 4000 - client.exists(*keys) == data["deleted"]
    assert data["pending_sets"] == ["tag:{tag:t}:invalidating"]

    rerun = invoke(redis_url, "--tag", "t", "--yes", "--json")
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["data"]["deleted"] == 4000 - data["deleted"]
    assert client.exists(*keys) == 0 and client.keys("tag:*") == []


def test_server_lost_mid_run_exits_6_with_what_was_deleted(make_redis):
    server = make_redis()
    client = server.client()
    keys = fill(client, 4000)
    proc = cachectl(
        server.url,
        "--tag",
        "t",
        "--yes",
        "--json",
        "--rate",
        "1000",
        "--batch-size",
        "50",
        env={"CACHECTL_RETRIES": "1"},
    )
    wait_until(deleting_started(client, keys), "the first deletions")
    server.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.PARTIAL, err
    envelope = json.loads(out)
    assert envelope["error"]["code"] == "partial"
    assert envelope["error"]["details"]["cause"]["code"] == "redis.unreachable"
    assert 0 < envelope["data"]["deleted"] < 4000
    assert err.strip().splitlines()[-1].startswith("error: stopped part way: cannot connect")


def ask_on_a_terminal(url, answer: bytes, *args) -> tuple[int, str]:
    """Runs the command with a pseudo-terminal as stdin/stdout/stderr and answers its question."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: exec, never return
        os.execv(
            sys.executable,
            [sys.executable, "-m", "cachectl", "--url", url, "--no-color", "invalidate", *args],
        )
    seen = b""
    answered = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(fd, answer + b"\n")
            answered = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_terminal_question_shows_the_count_and_no_keeps_everything(redis_url, client):
    keys = fill(client, 12)
    code, screen = ask_on_a_terminal(redis_url, b"n", "--tag", "t", "--show", "2")
    assert "12 entries will be deleted (tag t)" in screen
    assert "Delete 12 entries? [y/N]" in screen
    assert code == ExitCode.INTERRUPTED
    assert client.exists(*keys) == 12


def test_terminal_question_answered_yes_deletes(redis_url, client):
    keys = fill(client, 12)
    code, screen = ask_on_a_terminal(redis_url, b"y", "--tag", "t")
    assert code == 0, screen
    assert client.exists(*keys) == 0
    assert "deleted" in screen


def test_dry_run_into_a_closed_pipe_ends_quietly(redis_url, client):
    client.set("api_cache:big:no_params", "v")
    pipe = client.pipeline(transaction=False)
    for i in range(50_000):  # more than a pipe's buffer holds
        pipe.sadd("tag:t", f"api_cache:e:id:{i}")
    pipe.execute()
    proc = subprocess.run(
        f"{sys.executable} -m cachectl --url {redis_url} invalidate --tag t --dry-run --json"
        " | head -c 100 > /dev/null; echo ${PIPESTATUS[0]}",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.stdout.strip() == "141"  # ExitCode.CLOSED_PIPE
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr


def test_terminal_run_of_a_missing_tag_asks_nothing_and_strict_is_exit_5(redis_url, client):
    fill(client, 2, tag="user_123")
    code, screen = ask_on_a_terminal(redis_url, b"y", "--tag", "user_132")
    assert code == 0, screen
    assert "tag set tag:user_132 does not exist" in screen and "user_123" in screen
    assert "[y/N]" not in screen
    code, screen = ask_on_a_terminal(redis_url, b"y", "--tag", "user_132", "--strict")
    assert code == ExitCode.NOT_FOUND, screen
    assert "error: tag set tag:user_132 does not exist" in screen


def restarts_seen(monkeypatch, run_ids: list[str]) -> None:
    """The primaries' run_id as each look at the deployment's epoch finds it (the last one
    repeats): a change is how a run sees a server restart (real restarts:
    tests/integration/test_invalidate_restart.py)."""
    from cachectl.store import Epoch

    seen = iter(run_ids)
    last = {}

    def epoch(store):
        last["id"] = next(seen, last.get("id"))
        return Epoch(("node",), {"node": last["id"]}, {})

    monkeypatch.setattr("cachectl.store.Store.epoch", epoch)


def test_dry_run_that_saw_a_restart_in_every_pass_exits_non_zero_naming_it(
    redis_url, client, monkeypatch
):
    keys = fill(client, 50)
    restarts_seen(monkeypatch, ["a", "b", "c", "d"])
    result = invoke(redis_url, "--tag", "t", "--dry-run", "--json")
    assert result.exit_code == ExitCode.REDIS, result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: servers restarted during each of 3 passes over the selection")
    assert "tag t" in line and "could not be counted" in line
    assert client.exists(*keys) == 50


def test_dry_run_that_saw_one_restart_counts_the_clean_pass(redis_url, client, monkeypatch):
    keys = fill(client, 50)
    restarts_seen(monkeypatch, ["a", "b"])
    result = invoke(redis_url, "--tag", "t", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["matched"] == 50 and sorted(data["keys"]) == sorted(keys)
    assert any("restarted during the dry run" in note for note in data["notes"])
