"""A destructive run that Redis fails before it changed anything has still not done its job: its
error says nothing was changed and that the same command, run again, does it (exit 4 kept).
The fault matrix met this when a server froze after `prune` scanned its sets but before it
removed a member: the error named only the timeout."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode, RedisTimeout

runner = CliRunner()


def _timeout(redis_url: str) -> RedisTimeout:
    return RedisTimeout(f"Redis at {redis_url} did not answer EXISTS within 0.5s")


@pytest.mark.parametrize("command", ["prune", "invalidate"])
def test_a_redis_error_before_any_change_says_the_job_is_left_and_to_rerun(
    redis_url, monkeypatch, command
):
    if command == "prune":
        import cachectl.ops.prune as module
        from cachectl.ops.prune import PruneResult as Result

        name, args, changed_word = "prune", ["prune", "--yes"], "nothing was pruned"
    else:
        import cachectl.ops.invalidate as module
        from cachectl.ops.invalidate import InvalidateResult as Result

        name, args = "invalidate", ["invalidate", "--pattern", "api_cache:products:*", "--yes"]
        changed_word = "nothing was deleted"

    def failed(*_args, **_kwargs):
        result = Result()
        result.failure = _timeout(redis_url)
        assert not result.changed
        return result

    monkeypatch.setattr(module, name, failed)
    result = runner.invoke(app, ["--url", redis_url, *args])
    assert result.exit_code == ExitCode.REDIS, result.output
    (line,) = result.stderr.strip().splitlines()
    assert changed_word in line and "rerun" in line, line
