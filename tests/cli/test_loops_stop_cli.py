"""The commands that run until stopped (`stats --every`, `history record`, `check --every`),
stopped for real: a child process, Ctrl-C (SIGINT) or a cancelled job's SIGTERM, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cachectl.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
STOPS = pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])


def _start(*args: str) -> tuple[subprocess.Popen, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachectl", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    ).start()
    return proc, lines


def _stop_after(proc: subprocess.Popen, lines: list[str], count: int, stop) -> str:
    deadline = time.monotonic() + 30
    while len(lines) < count:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError(f"{count} lines never came: {lines} {proc.stderr.read()}")
        time.sleep(0.05)
    proc.send_signal(stop)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()  # one left running would go on writing into the shared test server
        _, stderr = proc.communicate()
        raise AssertionError(f"still running 30 s after signal {stop}: {stderr}") from None
    return stderr


@STOPS
def test_the_watch_leaves_with_exit_0(redis_url, stop):
    proc, lines = _start("--url", redis_url, "stats", "--json", "--every", "0.2")
    stderr = _stop_after(proc, lines, 2, stop)
    assert proc.returncode == 0, stderr
    assert stderr == ""
    ticks = [json.loads(line)["tick"] for line in lines]
    assert ticks[:2] == [1, 2]


@STOPS
def test_history_record_leaves_with_exit_0(redis_url, stop):
    proc, lines = _start("--url", redis_url, "history", "record", "--every", "200ms", "--json")
    stderr = _stop_after(proc, lines, 2, stop)
    assert proc.returncode == 0, stderr
    assert stderr == ""
    assert all(json.loads(line)["error"] is None for line in lines)


@STOPS
def test_a_stopped_alerting_loop_exits_with_its_last_rounds_verdict(redis_url, stop):
    # No application counters on this server: --min-hit-rate cannot hold, every round fails.
    proc, lines = _start(
        "--url",
        redis_url,
        "check",
        "--every",
        "200ms",
        "--sample",
        "50ms",
        "--min-hit-rate",
        "90",
        "--json",
    )
    stderr = _stop_after(proc, lines, 2, stop)
    assert proc.returncode == ExitCode.CHECK_FAILED, stderr
    assert "check condition(s) failed" in stderr
    assert [json.loads(line)["ok"] for line in lines] == [False] * len(lines)


@STOPS
def test_a_stopped_alerting_loop_that_holds_exits_0(redis_url, stop):
    proc, lines = _start(
        "--url",
        redis_url,
        "check",
        "--every",
        "200ms",
        "--sample",
        "50ms",
        "--max-memory",
        "100%",
        "--json",
    )
    stderr = _stop_after(proc, lines, 2, stop)
    assert proc.returncode == 0, stderr
    assert json.loads(lines[-1])["ok"] is True
