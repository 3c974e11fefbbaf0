"""Recording that cannot store its figures (`history record`, `stats --every --record`): every
tick that fails is counted, the first of a run of them is said once on stderr (not once a
tick), and the run ends with exit 6 naming how many ticks were not stored."""

from __future__ import annotations

import signal

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode
from tests.cli.test_loops_stop_cli import _start, _stop_after

runner = CliRunner()


@pytest.fixture
def no_evalsha_url(acl_redis, acl_url):
    """A user that may sample the server but not run the history's aggregate script."""
    with redis.Redis.from_url(acl_url) as admin:
        admin.execute_command(
            "ACL", "SETUSER", "rec-no-evalsha", "reset", "on", ">rec-pass", "+@all", "-evalsha",
            "~*",
        )  # fmt: skip
    return acl_redis.url_for("rec-no-evalsha", "rec-pass")


RECORD = ["history", "record", "--every", "0.01s", "--rounds", "3"]
WATCH = ["stats", "--record", "--every", "0.01", "--rounds", "3"]


@pytest.mark.parametrize("command", [RECORD, WATCH], ids=["history-record", "watch-record"])
@pytest.mark.parametrize("json_mode", [False, True], ids=["text", "json"])
def test_ticks_that_store_nothing_are_said_once_and_exit_6(no_evalsha_url, command, json_mode):
    result = runner.invoke(
        app, ["--url", no_evalsha_url, *command, *(["--json"] if json_mode else [])]
    )
    assert result.exit_code == ExitCode.PARTIAL, result.output
    lines = result.stderr.strip().splitlines()
    said = [line for line in lines if "not stored" in line and line.startswith("warning:")]
    assert len(said) == 1, result.stderr
    assert "EVALSHA" in said[0]
    assert lines[-1].startswith("error: 3 of 3 ticks not stored"), result.stderr
    assert "rec-pass" not in result.output


def test_a_run_of_failures_is_said_at_its_start_and_its_end():
    from cachectl.ops.history import UnrecordedTicks

    failures = UnrecordedTicks()
    told = [failures.failed(1, "down"), failures.failed(2, "down"), failures.succeeded(3)]
    told += [failures.succeeded(4), failures.failed(5, "refused")]
    assert [t is not None for t in told] == [True, False, True, False, True]
    assert "after 2 failed ticks" in told[2]
    assert failures.count == 3
    problem = failures.problem(5)
    assert problem.exit_code == ExitCode.PARTIAL
    assert problem.message.startswith("3 of 5 ticks not stored") and "refused" in problem.message
    assert UnrecordedTicks().problem(5) is None


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stopped_recording_with_ticks_not_stored_exits_6(no_evalsha_url, stop):
    proc, lines = _start("--url", no_evalsha_url, "history", "record", "--every", "0.05s")
    stderr = _stop_after(proc, lines, 2, stop)
    assert proc.returncode == ExitCode.PARTIAL, stderr
    assert stderr.strip().splitlines()[-1].startswith("error: ")
    assert "ticks not stored" in stderr
