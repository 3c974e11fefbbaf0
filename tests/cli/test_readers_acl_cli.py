"""`tags`, `tags show`, `keys`, `memory` and `inspect` for an ACL user that may run some of the
commands they send and not others: a refusal ends a listing with one line naming the refused
command (exit 4), never an internal error, a false "not found" or a silent zero; `inspect` shows
what it could read and says which figures the ACL kept from it."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode
from cachectl.layout import Layout

LAYOUT = Layout()
runner = CliRunner()
HINT = "(grant it with ACL SETUSER, or connect as a user that may)"
ENTRY = LAYOUT.entry("users", {"id": 1})


@pytest.fixture
def admin(acl_redis, acl_url):
    with redis.Redis.from_url(acl_url) as client:
        pipe = client.pipeline(transaction=False)
        for i in range(5):
            key = LAYOUT.entry("users", {"id": i})
            pipe.set(key, json.dumps({"id": i}), ex=900)
            pipe.sadd(LAYOUT.tag("users"), key)
        pipe.sadd(LAYOUT.dependency("user:1"), ENTRY)
        pipe.zadd(LAYOUT.entries_log(), {ENTRY: 1_700_000_000_000})
        pipe.zadd(LAYOUT.access_log(), {ENTRY: 1_700_000_500_000})
        pipe.execute()
        yield client


def user(acl_redis, admin, name: str, *rules: str) -> str:
    """The URL of a new ACL user `name` with `rules` after `+@all` (key patterns among them)."""
    admin.execute_command("ACL", "SETUSER", name, "reset", "on", f">{name}-pass", "+@all", *rules)
    return acl_redis.url_for(name, f"{name}-pass")


def run(url: str, *args: str):
    return runner.invoke(app, ["--url", url, *args])


def refusal_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "-pass" not in result.output
    return lines[0]


@pytest.mark.parametrize("command", ["PTTL", "TYPE", "SCARD"])
def test_tags_show_with_a_refused_command_is_that_refusal(acl_redis, admin, command):
    url = user(acl_redis, admin, f"show-no-{command.lower()}", f"-{command.lower()}", "~*")
    result = run(url, "tags", "show", "users")
    assert result.exit_code == ExitCode.REDIS, result.output
    assert refusal_line(result) == (
        f"error: the ACL user 'show-no-{command.lower()}' may not run {command} {HINT}"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("command", ["PTTL", "TYPE", "SCARD"])
def test_tags_listing_with_a_refused_command_is_that_refusal(acl_redis, admin, command):
    # A refused SCARD used to list every set with 0 members, exit 0.
    url = user(acl_redis, admin, f"list-no-{command.lower()}", f"-{command.lower()}", "~*")
    result = run(url, "tags", "--json")
    assert result.exit_code == ExitCode.REDIS, result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["error"]["code"] == "redis.permission"
    assert envelope["error"]["details"]["command"] == command


@pytest.mark.parametrize(("command", "rule"), [("PTTL", "-pttl"), ("MEMORY USAGE", "-memory")])
@pytest.mark.parametrize("scripts", ["script", "pipeline"])
def test_keys_and_memory_name_the_command_refused_whether_read_by_script_or_pipeline(
    acl_redis, admin, command, rule, scripts
):
    # A user who may run EVAL but not a command the script runs used to read "Redis refused
    # EVAL: the user executing the script can't run this command...", naming no command.
    name = f"{scripts}-{rule[1:]}"
    url = user(acl_redis, admin, name, rule, "~*", *(["-eval"] if scripts == "pipeline" else []))
    field, rest = (
        ("ttl", "type,size,endpoint,params")
        if command == "PTTL"
        else ("size", "type,ttl,endpoint,params")
    )
    for args, hint in (
        # `keys` reads a figure only to show it: the hint says how to list without it.
        (["keys"], f"{HINT[:-1]}; or leave the {field} out: --fields {rest})"),
        (["memory"], HINT),
    ):
        result = run(url, *args)
        assert result.exit_code == ExitCode.REDIS, result.output
        line = refusal_line(result)
        said = f"error: the ACL user '{name}' may not run {command} (the scan "
        assert line.startswith(said), line
        assert "EVAL" not in line and line.endswith(hint), line
    assert run(url, "keys", "--fields", rest).exit_code == 0


@pytest.mark.parametrize("scripts", ["script", "pipeline"])
def test_a_key_pattern_refusal_names_the_command_and_says_the_keys_are_excluded(
    acl_redis, admin, scripts
):
    # May read entries, tags and the logs, not the dependency sets `memory` sizes too.
    name = f"nodeps-{scripts}"
    url = user(
        acl_redis,
        admin,
        name,
        "~api_cache:*",
        "~tag:*",
        "~cache_*",
        *(["-eval"] if scripts == "pipeline" else []),
    )
    result = run(url, "memory")
    assert result.exit_code == ExitCode.REDIS, result.output
    line = refusal_line(result)
    assert line.startswith(f"error: the ACL user '{name}' may not run TYPE on "), line
    if scripts == "pipeline":
        assert "on depends_on:user:1 (the ACL's key patterns exclude it)" in line
    else:
        assert "on some of the keys the scan found (the ACL's key patterns exclude them)" in line
    assert run(url, "keys").exit_code == 0  # entries alone: every one readable


def test_inspect_says_the_log_times_are_unknown_when_zscore_is_refused(acl_redis, admin):
    url = user(acl_redis, admin, "inspect-no-zscore", "-zscore", "~*")
    result = run(url, "inspect", ENTRY, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert (data["last_write_ms"], data["last_access_ms"]) == (None, None)
    assert data["refused"] == {"last_write_ms": "ZSCORE", "last_access_ms": "ZSCORE"}
    assert data["notes"] == [
        (
            "last write and last access unknown: the ACL user 'inspect-no-zscore' may not run "
            "ZSCORE on cache_entries and cache_access"
        )
    ]
    people = run(url, "inspect", ENTRY)
    assert "last write and last access unknown" in people.stdout
    rows = {line.split("  ")[0].strip(): line for line in people.stdout.splitlines()}
    assert "not in the log" not in people.stdout  # it may well be: unknown, not absent
    assert rows["last write"].endswith("unknown (ZSCORE refused)")
    assert rows["last access"].endswith("unknown (ZSCORE refused)")


def test_inspect_reads_the_log_it_may_and_says_which_it_may_not(acl_redis, admin):
    url = user(acl_redis, admin, "inspect-no-access-log", "~api_cache:*", "~cache_entries")
    data = json.loads(run(url, "inspect", ENTRY, "--json").stdout)["data"]
    assert (data["last_write_ms"], data["last_access_ms"]) == (1_700_000_000_000, None)
    assert data["refused"] == {"last_access_ms": "ZSCORE"}
    assert data["notes"] == [
        (
            "last access unknown: the ACL user 'inspect-no-access-log' may not run ZSCORE on "
            "cache_access"
        )
    ]


def test_inspect_tags_shows_the_tags_when_the_dependency_sets_are_refused(acl_redis, admin):
    url = user(acl_redis, admin, "inspect-no-deps", "~api_cache:*", "~tag:*", "~cache_*")
    result = run(url, "inspect", ENTRY, "--tags", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["tags"] == ["users"] and data["dependencies"] is None
    assert data["refused"] == {"dependencies": "SISMEMBER"}
    assert data["notes"] == [
        (
            "the dependency sets could not be read: the ACL user 'inspect-no-deps' may not run "
            "SISMEMBER on depends_on:*"
        )
    ]
    people = run(url, "inspect", ENTRY, "--tags").stdout
    rows = {line.split("  ")[0].strip(): line for line in people.splitlines()}
    assert rows["tags"].rstrip().endswith("users")
    assert rows["dependencies"].rstrip().endswith("unknown (SISMEMBER refused)")
    # An admin reads both: the note is about the ACL, not the key.
    both = json.loads(run(acl_redis.admin_url, "inspect", ENTRY, "--tags", "--json").stdout)
    assert both["data"]["dependencies"] == ["user:1"] and both["data"]["refused"] == {}


def test_inspect_says_the_memory_is_unknown_when_memory_usage_is_refused(acl_redis, admin):
    url = user(acl_redis, admin, "inspect-no-memory", "-memory", "~*")
    data = json.loads(run(url, "inspect", ENTRY, "--json").stdout)["data"]
    assert data["size_bytes"] is None and data["refused"] == {"size_bytes": "MEMORY USAGE"}
    assert data["notes"] == [
        "memory unknown: the ACL user 'inspect-no-memory' may not run MEMORY USAGE"
    ]
    assert data["last_write_ms"] == 1_700_000_000_000  # the rest as an admin sees it
