"""`manifest validate` on a plan whose duplicate-key check spills hashes to disk: stopped by
SIGTERM or Ctrl-C, it leaves no temporary folder behind; past CACHECTL_MAX_KEY_CHECK it is
refused before any work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from cachectl.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = """\
version: 1
defaults: {base_url: 'https://api.example.com', ttl: 1m}
endpoints:
  - {name: items, url: /a, matrix: {id: {range: [1, %d]}}}
  - {name: 'items:v2', url: /b, matrix: {id: {range: [1, %d]}}}
"""


COMMANDS = pytest.mark.parametrize(
    "command", [("manifest", "validate"), ("warm", "--dry-run")], ids=["validate", "warm"]
)


# The real command, with hashes spilled to disk after 10,000 in memory rather than 4 million: the
# folder is there at once instead of after seconds of hashing.
SPILL_EARLY = (
    "import sys; import cachectl.manifest.keys as keys; keys.KEY_CHECK_HASHES_IN_MEMORY = 10_000; "
    "from cachectl.cli.app import main; sys.argv[0] = 'cachectl'; main()"
)


def _validate(
    tmp_path: Path, size: int, command=("manifest", "validate"), **env: str
) -> subprocess.Popen:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST % (size, size))
    return subprocess.Popen(
        [sys.executable, "-c", SPILL_EARLY, *command, str(manifest)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", **env},
    )


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_stopped_key_check_removes_its_temporary_folder(tmp_path, stop):
    spill = tmp_path / "tmp"
    spill.mkdir()
    proc = _validate(tmp_path, 500_000_000, TMPDIR=str(spill), CACHECTL_MAX_KEY_CHECK="2000000000")
    try:
        while not list(spill.glob("cachectl-keycheck-*")):  # polled: no timing assumed
            assert proc.poll() is None, proc.communicate()
        proc.send_signal(stop)
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert list(spill.iterdir()) == []


@COMMANDS
def test_a_plan_past_the_key_check_limit_is_refused_at_once(tmp_path, command):
    proc = _validate(tmp_path, 9007199254740991, command)
    _, err = proc.communicate()
    assert proc.returncode == ExitCode.BAD_INPUT
    assert "CACHECTL_MAX_KEY_CHECK" in err and "items, items:v2" in err
