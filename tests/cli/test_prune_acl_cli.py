"""`cachectl prune` as an ACL user that may not run one of the commands it sends: the refusal
is found before anything changes (exit 4 naming the command, every set and log as it was),
never a run that changes thousands of members and then asks for a rerun that cannot succeed."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode
from cachectl.layout import Layout

runner = CliRunner()
LAYOUT = Layout()
LIVE = LAYOUT.entry("live", {})
GONE = [LAYOUT.entry("gone", {"id": i}) for i in range(1500)]


@pytest.fixture
def admin(acl_redis, acl_url):
    """Dangling members in a tag set, a dependency set, both logs, and an old response time."""
    with redis.Redis.from_url(acl_url) as client:
        client.set(LIVE, "v")
        client.sadd(LAYOUT.tag("t"), LIVE, *GONE)
        client.sadd(LAYOUT.dependency("d"), LIVE, *GONE[:10])
        client.zadd(LAYOUT.entries_log(), {LIVE: 1, **{g: 1 for g in GONE}})
        client.zadd(LAYOUT.access_log(), {LIVE: 1, GONE[0]: 1})
        client.zadd(LAYOUT.response_times(), {json.dumps({"endpoint": "live", "ms": 1}): 1})
        yield client


HISTORY = ("metric:", "meta:", "agg:")  # the run's own record in `history`


def _keys(client) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter() if not k.decode().startswith(HISTORY))


def _state(client) -> dict:
    return {
        key.decode(): sorted(
            client.smembers(key) if client.type(key) == b"set" else client.zrange(key, 0, -1)
        )
        for key in map(str.encode, _keys(client))
        if client.type(key) in (b"set", b"zset")
    }


def _user(acl_redis, admin, name: str, *rules: str) -> str:
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{name}-pass", "+@all", *rules)
    return acl_redis.url_for(name, f"{name}-pass")


@pytest.mark.parametrize("command", ["ZREM", "SREM", "SADD", "ZADD", "SSCAN", "ZSCAN", "TIME"])
def test_prune_without_a_command_it_sends_changes_nothing_and_names_it(acl_redis, admin, command):
    before = _state(admin)
    url = _user(acl_redis, admin, f"prune-no-{command.lower()}", f"-{command.lower()}", "~*")
    result = runner.invoke(app, ["--url", url, "prune", "--yes"])
    assert result.exit_code == ExitCode.REDIS, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"may not run {command}" in lines[0], result.stderr
    assert "rerun" not in result.stderr
    assert _state(admin) == before


def test_prune_refused_a_log_by_key_pattern_changes_nothing_and_names_the_key(acl_redis, admin):
    before = _state(admin)
    # Every key but the response-time log.
    patterns = ["~api_cache:*", "~tag:*", "~depends_on:*", "~cache_entries", "~cache_access"]
    url = _user(acl_redis, admin, "prune-no-response-log", *patterns)
    result = runner.invoke(app, ["--url", url, "prune", "--yes", "--json"])
    assert result.exit_code == ExitCode.REDIS, result.output
    error = json.loads(result.stdout)["error"]
    assert LAYOUT.response_times() in error["message"]
    assert _state(admin) == before


def test_a_dry_run_needs_only_the_reads(acl_redis, admin):
    before = _state(admin)
    url = _user(acl_redis, admin, "prune-dry-no-writes", "-zrem", "-srem", "-sadd", "-zadd", "~*")
    result = runner.invoke(app, ["--url", url, "prune", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["members_removed"] == 1510
    assert _state(admin) == before


def test_the_probes_leave_no_key_behind(acl_redis, admin):
    url = _user(acl_redis, admin, "prune-all", "~*")
    result = runner.invoke(app, ["--url", url, "prune", "--yes"])
    assert result.exit_code == 0, result.output
    live = sorted([LIVE.encode()])
    assert _state(admin) == {
        LAYOUT.tag("t"): live,
        LAYOUT.dependency("d"): live,
        LAYOUT.entries_log(): live,
        LAYOUT.access_log(): live,
    }
    assert _keys(admin) == sorted(
        [LIVE, LAYOUT.tag("t"), LAYOUT.dependency("d"), LAYOUT.entries_log(), LAYOUT.access_log()]
    )
