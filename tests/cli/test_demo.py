"""The README's first command: `cachectl demo` runs end to end against a throwaway Redis."""

from __future__ import annotations

import json
import subprocess
import sys

from cachectl.devserver import find_redis_server


def test_demo_runs_end_to_end_and_cleans_up():
    assert find_redis_server(), "redis-server not found on PATH: install it (apt-get install redis-server)"
    proc = subprocess.run(
        [sys.executable, "-m", "cachectl", "demo", "--json"],
        capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    envelope = json.loads(proc.stdout.strip().splitlines()[-1])
    assert envelope["ok"] is True
    steps = envelope["data"]["steps"]
    assert steps and all(step["exit_code"] == 0 for step in steps)
    port = int(envelope["data"]["redis_url"].rsplit(":", 1)[1].split("/")[0])
    # The throwaway server is gone.
    import socket

    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0
