"""`cachectl prune` end to end: --json parsed, dry run changes nothing, no terminal needs --yes."""

from __future__ import annotations

import json

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
    assert (data["members_removed"], data["sets_deleted"], data["sets_updated"],
            data["entries_log_removed"]) == (2, 1, 1, 1)
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
