"""`cachectl prune` end to end: --json parsed, dry run changes nothing, no terminal needs --yes,
Ctrl-C stops with a summary (exit 130), a server lost mid-run is exit 6 with what was done."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode

runner = CliRunner()


@pytest.fixture
def client(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.set("api_cache:live:no_params", "v")
    client.sadd("tag:t", "api_cache:live:no_params", "api_cache:gone:no_params")
    client.sadd("tag:empty", "api_cache:gone:no_params")
    client.zadd("cache_entries", {"api_cache:live:no_params": 1, "api_cache:gone:no_params": 1})
    yield client
    client.close()


def test_prune_json_reports_what_it_removed(redis_url, client):
    result = runner.invoke(app, ["--url", redis_url, "prune", "--yes", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert (
        data["members_removed"],
        data["sets_deleted"],
        data["sets_updated"],
        data["entries_log_removed"],
    ) == (2, 1, 1, 1)
    assert client.smembers("tag:t") == {b"api_cache:live:no_params"}
    assert not client.exists("tag:empty")


def test_dry_run_counts_and_changes_nothing(redis_url, client):
    result = runner.invoke(app, ["--url", redis_url, "prune", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "  dangling members would be removed: 2" in result.stdout.splitlines()
    assert "  sets would be deleted (emptied): 1" in result.stdout.splitlines()
    assert client.scard("tag:t") == 2 and client.exists("tag:empty")


def test_no_terminal_and_no_yes_refuses(redis_url, client):
    result = runner.invoke(app, ["--url", redis_url, "prune"])
    assert result.exit_code == ExitCode.USAGE
    assert "no terminal to ask on" in result.stderr
    assert client.scard("tag:t") == 2


def restarts_seen(monkeypatch, run_ids: list[str]) -> None:
    """The primaries' run_id as each look at the deployment's epoch finds it (the last one
    repeats): a change is how a run sees a server restart (real restarts:
    tests/integration/test_prune_restart.py)."""
    from cachectl.store import Epoch

    seen = iter(run_ids)
    last = {}

    def epoch(store):
        last["id"] = next(seen, last.get("id"))
        return Epoch(("node",), {"node": last["id"]}, {})

    monkeypatch.setattr("cachectl.store.Store.epoch", epoch)


def test_restart_during_every_pass_exits_6_naming_what_may_be_left(redis_url, client, monkeypatch):
    restarts_seen(monkeypatch, ["a", "b", "c", "d"])
    result = runner.invoke(app, ["--url", redis_url, "prune", "--yes", "--json"])
    assert result.exit_code == ExitCode.PARTIAL, result.output
    envelope = json.loads(result.stdout)
    assert envelope["data"]["passes"] == 3 and len(envelope["data"]["notes"]) == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: stopped part way: servers restarted during each of 3 passes")
    assert "dangling members may be left" in line and "rerun" in line


def test_restart_during_one_pass_is_noted_and_then_done(redis_url, client, monkeypatch):
    restarts_seen(monkeypatch, ["a", "b"])
    result = runner.invoke(app, ["--url", redis_url, "prune", "--yes"])
    assert result.exit_code == 0, result.output
    assert "  passes (a server restarted): 2" in result.stdout.splitlines()
    assert "a server restarted during the run" in result.stderr
    assert client.smembers("tag:t") == {b"api_cache:live:no_params"}


# --- real processes: a signal, a server that dies ----------------------------------------------


def many_dangling_tags(client, n: int) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.sadd(f"tag:t{i}", f"api_cache:gone:id:{i}")
    pipe.execute()


def start_prune(url, *args, env=None):
    return subprocess.Popen(
        [sys.executable, "-m", "cachectl", "--url", url, "prune", "--yes", "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


def tag_sets(client) -> int:
    return sum(1 for _ in client.scan_iter(match="tag:*", count=1000))


def wait_until_pruning(client, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while client.exists(*[f"tag:t{i}" for i in range(n)]) == n:  # a set goes with its member
        assert time.monotonic() < deadline, "prune never started removing"
        time.sleep(0.02)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_stops_prune_with_its_summary_and_exit_130(redis_url, stop):
    client = redis.Redis.from_url(redis_url)
    many_dangling_tags(client, 4000)
    proc = start_prune(redis_url, "--rate", "1000", "--batch-size", "50", "--count", "50")
    wait_until_pruning(client, 4000)
    proc.send_signal(stop)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    envelope = json.loads(out)
    assert envelope["error"]["code"] == "interrupted"
    data = envelope["data"]
    assert data["interrupted"] is True
    assert 0 < data["members_removed"] < 4000
    assert tag_sets(client) == 4000 - data["members_removed"]


def test_server_lost_mid_prune_exits_6_with_what_was_done(make_redis):
    server = make_redis()
    client = server.client()
    many_dangling_tags(client, 4000)
    proc = start_prune(
        server.url,
        "--rate",
        "1000",
        "--batch-size",
        "50",
        "--count",
        "50",
        env={"CACHECTL_RETRIES": "1"},
    )
    wait_until_pruning(client, 4000)
    server.kill()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.PARTIAL, err
    envelope = json.loads(out)
    assert envelope["error"]["code"] == "partial"
    assert envelope["error"]["details"]["cause"]["code"] == "redis.unreachable"
    assert 0 < envelope["data"]["members_removed"] < 4000
    assert err.strip().splitlines()[-1].startswith("error: stopped part way")
