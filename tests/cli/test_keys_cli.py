"""`cachectl keys`, `inspect`, `tags` and `memory` end to end: exit codes, JSON that parses (also
when a listing is cut short), people's output without colour codes off a terminal, one-line
errors on stderr."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode, RedisUnreachable
from cachectl.layout import Layout

LAYOUT = Layout()
runner = CliRunner()


@pytest.fixture
def url(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        pipe = client.pipeline(transaction=False)
        for i in range(25):
            key = LAYOUT.entry("users" if i % 2 else "orders", {"id": i})
            pipe.set(key, json.dumps({"id": i, "name": f"user {i}"}), ex=None if i == 0 else 900)
            pipe.sadd(LAYOUT.tag("all"), key)
        pipe.sadd(LAYOUT.tag("all"), LAYOUT.entry("users", {"id": -1}))
        pipe.set(b"api_cache:odd:\x1b[31m", "{}")  # a terminal escape inside a key
        pipe.execute()
    return redis_url


def run(url: str, *args: str):
    return runner.invoke(app, ["--url", url, *args])


def test_keys_jsonl_is_one_entry_per_line(url):
    result = run(url, "keys", "--jsonl")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 26
    row = next(r for r in rows if r["key"] == LAYOUT.entry("users", {"id": 1}))
    assert row["endpoint"] == "users" and row["params"] == {"id": 1} and row["type"] == "string"
    assert 0 < row["ttl_seconds"] <= 900 and row["size_bytes"] > 0
    assert any(r["key"] == "api_cache:odd:\\x1b[31m" for r in rows)


def test_keys_json_is_one_envelope_with_the_rows_and_a_summary(url):
    result = run(url, "keys", "--json", "--endpoint", "orders")
    assert result.exit_code == 0
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is True and envelope["command"] == "keys"
    assert {r["endpoint"] for r in envelope["data"]} == {"orders"} and len(envelope["data"]) == 13
    assert envelope["summary"]["rows"] == 13


def test_keys_for_people_off_a_terminal_has_no_escape_codes(url):
    result = run(url, "keys", "--tag", "all", "--limit", "5")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout
    assert "api_cache:" in result.stdout and "endpoint" in result.stdout
    assert "5 entries (stopped at --limit 5)" in result.stderr


def test_a_reader_that_stops_early_ends_the_listing_quietly(url):
    import subprocess
    import sys

    with redis.Redis.from_url(url) as client:  # more than a pipe's buffer holds
        client.mset({LAYOUT.entry("many", {"id": i}): "{}" for i in range(5000)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cachectl", "--url", url, "keys", "--jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(proc.stdout.readline())["type"] == "string"
    proc.stdout.close()  # as `| head -1` does
    stderr = proc.stderr.read()
    assert proc.wait(timeout=30) == 141  # ExitCode.CLOSED_PIPE, as a shell reports SIGPIPE
    assert stderr == b""


def test_keys_of_a_tag_that_does_not_exist_is_not_found(url):
    result = run(url, "keys", "--tag", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert result.stderr.strip().splitlines() == ["error: no tag set tag:nope (tag 'nope')"]


def test_keys_with_an_unknown_type_is_a_usage_error(url):
    assert run(url, "keys", "--type", "blob").exit_code == ExitCode.USAGE


def test_a_listing_cut_short_still_closes_its_json(url, monkeypatch):
    from cachectl.ops import keys as keys_ops

    real = keys_ops.scan_sized

    def dies_after_one_page(*args, **kwargs):
        pages = real(*args, **kwargs)
        yield next(pages)
        raise RedisUnreachable("cannot connect to Redis at redis://h:1/0: connection refused")

    monkeypatch.setattr(keys_ops, "scan_sized", dies_after_one_page)
    result = runner.invoke(app, ["--url", url, "keys", "--json"], env={"CACHECTL_SCAN_COUNT": "5"})
    # Rows were listed: a partial result (exit 6, as memory and tags), the cause kept.
    assert result.exit_code == ExitCode.PARTIAL
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["error"]["code"] == "partial"
    assert envelope["error"]["details"]["cause"] == "redis.unreachable"
    assert len(envelope["data"]) > 0
    assert result.stderr.startswith("error: the listing is incomplete: cannot connect")


def test_a_listing_that_fails_before_reading_anything_is_the_redis_error(url, monkeypatch):
    from cachectl.ops import keys as keys_ops

    def dies_at_once(*args, **kwargs):
        raise RedisUnreachable("cannot connect to Redis at redis://h:1/0: connection refused")
        yield  # a generator, as scan_sized is

    monkeypatch.setattr(keys_ops, "scan_sized", dies_at_once)
    result = run(url, "keys", "--jsonl")
    assert result.exit_code == ExitCode.REDIS
    assert result.stdout == "" and result.stderr.startswith("error: cannot connect")


def test_keys_fields_list_only_what_is_asked_for(url):
    result = run(url, "keys", "--jsonl", "--fields", "endpoint,params")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 26 and all(set(r) == {"key", "endpoint", "params"} for r in rows)
    assert {
        "key": LAYOUT.entry("users", {"id": 3}),
        "endpoint": "users",
        "params": {"id": 3},
    } in rows
    ttl_only = [
        json.loads(line) for line in run(url, "keys", "--jsonl", "-f", "ttl").stdout.splitlines()
    ]
    assert all(set(r) == {"key", "ttl_seconds"} for r in ttl_only)
    assert sum(r["ttl_seconds"] is None for r in ttl_only) == 2  # id 0 and the odd key
    envelope = json.loads(run(url, "keys", "--json", "--fields", "size,type").stdout)
    assert envelope["summary"]["fields"] == ["key", "type", "size"]
    assert all(
        set(r) == {"key", "type", "size_bytes"} and r["size_bytes"] > 0 for r in envelope["data"]
    )
    people = run(url, "keys", "--fields", "params", "--endpoint", "users")
    assert people.exit_code == 0 and "params" in people.stdout and '{"id":1}' in people.stdout
    assert "size" not in people.stdout


def test_keys_fields_with_an_unknown_name_is_a_usage_error(url):
    result = run(url, "keys", "--fields", "ttl,colour")
    assert result.exit_code == ExitCode.USAGE
    assert "colour" in result.stderr and result.stdout == ""


def test_a_pattern_beyond_the_entries_is_warned_about(url):
    result = run(url, "keys", "*", "--jsonl")
    assert result.exit_code == 0
    assert "warning: the pattern * reaches beyond the cache's entries" in result.stderr
    assert len(result.stdout.splitlines()) == 26
    assert "warning" not in run(url, "keys", "api_cache:users:*").stderr


def test_an_endpoint_holding_control_characters_or_markup_is_shown_safely(url):
    with redis.Redis.from_url(url) as client:
        client.set(b"api_cache:\x1b[31mred:id:1", "{}")
        client.set(b"api_cache:[bold]x:id:1", "{}")
        client.set(b"api_cache:\xff\xfe:no_params", "{}")
    table = run(url, "keys", "--fields", "endpoint")
    assert table.exit_code == 0 and "\x1b" not in table.stdout
    endpoint_cells = {line.split()[-1] for line in table.stdout.splitlines() if line.strip()}
    assert {"\\x1b[31mred", "[bold]x", "\\xff\\xfe"} <= endpoint_cells
    rows = {r["key"]: r for r in map(json.loads, run(url, "keys", "--jsonl").stdout.splitlines())}
    # Not UTF-8: the endpoint is escaped as the key is, not turned into U+FFFD.
    assert rows["api_cache:\\xff\\xfe:no_params"]["endpoint"] == "\\xff\\xfe"
    assert rows["api_cache:\\x1b[31mred:id:1"]["endpoint"] == "\x1b[31mred"  # JSON escapes it
    memory = run(url, "memory", "--top", "0")
    assert memory.exit_code == 0 and "\x1b" not in memory.stdout
    first_cells = {line.split("\u2502")[0].strip() for line in memory.stdout.splitlines()}
    assert {"\\x1b[31mred", "[bold]x", "\\xff\\xfe", "users"} <= first_cells
    inspected = run(url, "inspect", "api_cache:\\x1b[31mred:id:1")
    assert inspected.exit_code == 0 and "\x1b" not in inspected.stdout
    assert "endpoint     \\x1b[31mred" in inspected.stdout


def test_inspect_shows_an_entry_for_people_and_machines(url):
    people = run(url, "inspect", "--endpoint", "users", "--param", "id=1")
    assert people.exit_code == 0
    assert "users" in people.stdout and '"name": "user 1"' in people.stdout
    machines = json.loads(
        run(url, "inspect", LAYOUT.entry("users", {"id": 1}), "--json", "--tags").stdout
    )
    data = machines["data"]
    assert data["value"]["json"] == {"id": 1, "name": "user 1"} and data["tags"] == ["all"]


def test_inspect_shows_a_terminal_escape_in_a_key_escaped(url):
    result = run(url, "inspect", "api_cache:odd:\\x1b[31m")
    assert result.exit_code == 0
    assert "\x1b" not in result.stdout and "\\x1b[31m" in result.stdout


def test_inspect_of_a_missing_key_exits_not_found(url):
    result = run(url, "inspect", "api_cache:nope:no_params", "--json")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert json.loads(result.stdout)["error"]["code"] == "not_found"
    assert result.stderr.strip() == "error: no key api_cache:nope:no_params"


def test_tags_list_and_show(url):
    listing = json.loads(run(url, "tags", "a*", "--json").stdout)
    assert listing["data"]["sets"][0]["name"] == "all"
    assert (listing["data"]["totals"]["existing"], listing["data"]["totals"]["dangling"]) == (25, 1)
    people = run(url, "tags")
    assert people.exit_code == 0 and "all" in people.stdout and "1 dangling" in people.stdout
    members = run(url, "tags", "show", "all", "--jsonl")
    assert members.exit_code == 0
    rows = [json.loads(line) for line in members.stdout.splitlines()]
    assert len(rows) == 26 and sum(not r["exists"] for r in rows) == 1
    parent_json = json.loads(run(url, "tags", "--json", "show", "all").stdout)
    assert parent_json["ok"] is True and len(parent_json["data"]) == 26
    assert parent_json["command"] == "tags show"
    assert parent_json["summary"] == {
        "name": "all",
        "key": "tag:all",
        "kind": "tag",
        "members": 26,
        "ttl_seconds": None,
        "members_listed": 26,
        "existing": 25,
        "dangling": 1,
    }


def test_tags_show_of_a_missing_tag_exits_not_found(url):
    result = run(url, "tags", "show", "nope")
    assert result.exit_code == ExitCode.NOT_FOUND
    assert "no tag set tag:nope" in result.stderr


def test_memory_for_machines_and_people(url):
    machines = run(url, "memory", "--json", "--top", "2")
    assert machines.exit_code == 0
    data = json.loads(machines.stdout)["data"]
    assert data["entries"]["keys"] == 26 and len(data["largest"]) == 2
    assert data["entries_without_ttl"]["keys"] == 2
    people = run(url, "memory", "--depth", "2")
    assert people.exit_code == 0 and "\x1b" not in people.stdout
    assert "api_cache:users" in people.stdout and "Recommendations" in people.stdout


def test_memory_interrupted_shows_what_it_gathered_and_exits_130(url, monkeypatch):
    from cachectl.ops import memory as memory_ops

    calls = []
    real = memory_ops._Tally.add_page

    def interrupted(self, page):
        calls.append(page)
        if len(calls) > 1:
            raise KeyboardInterrupt
        real(self, page)

    monkeypatch.setattr(memory_ops._Tally, "add_page", interrupted)
    result = runner.invoke(
        app, ["--url", url, "memory", "--json"], env={"CACHECTL_SCAN_COUNT": "5"}
    )
    assert result.exit_code == ExitCode.INTERRUPTED
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["data"]["complete"] is False
    assert envelope["data"]["keys_scanned"] > 0


def test_an_unreachable_redis_is_exit_4_for_every_command():
    url = "redis://127.0.0.1:1/0"
    for args in (["keys"], ["inspect", "k"], ["tags"], ["tags", "show", "t"], ["memory"]):
        # No retries: each would wait its backoff on a port that refuses at once.
        result = runner.invoke(
            app, ["--url", url, "--connect-timeout", "0.2", *args], env={"CACHECTL_RETRIES": "0"}
        )
        assert result.exit_code == ExitCode.REDIS, (args, result.output)
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stdout == "", (args, result.stdout)  # not a table header over no rows


def test_memory_progress_is_a_bar_of_keys_scanned_against_dbsize(url, monkeypatch):
    from contextlib import contextmanager

    from cachectl.render.output import Output

    opened, updates = [], []

    class Handle:
        def update(self, **kw):
            updates.append(kw)

    @contextmanager
    def progress(self, description, total=None):
        opened.append(total)
        yield Handle()

    monkeypatch.setattr(Output, "progress", progress)
    result = runner.invoke(
        app, ["--url", url, "memory", "--json"], env={"CACHECTL_SCAN_COUNT": "5"}
    )
    assert result.exit_code == 0
    dbsize = json.loads(result.stdout)["data"]["dbsize"]
    assert opened == [dbsize]  # opened with the total, so the bar is drawn against it
    assert updates[-1] == {"completed": dbsize, "total": dbsize}
    assert len(updates) > 2


def test_tags_show_cut_short_exits_6_with_the_members_listed(url, monkeypatch):
    from cachectl.store import Store

    real = Store.ttls

    def fails_on_the_second_page(self, keys, *, ms=False):
        if fails_on_the_second_page.calls:
            raise RedisUnreachable("cannot connect to Redis at redis://h:1/0: connection refused")
        fails_on_the_second_page.calls += 1
        return real(self, keys, ms=ms)

    fails_on_the_second_page.calls = 0
    monkeypatch.setattr(Store, "ttls", fails_on_the_second_page)
    result = runner.invoke(
        app, ["--url", url, "tags", "show", "all", "--jsonl"], env={"CACHECTL_BATCH_SIZE": "10"}
    )
    assert result.exit_code == ExitCode.PARTIAL
    assert len(result.stdout.splitlines()) == 10
    assert result.stderr.startswith("error: the listing is incomplete after 10 of 26 members")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("keys", "--jsonl", "--type", "blob"), ExitCode.USAGE),
        (("keys", "--jsonl", "--tag", "nope"), ExitCode.NOT_FOUND),
        (("tags", "show", "nope", "--jsonl"), ExitCode.NOT_FOUND),
        (("--profile", "nope", "keys", "--jsonl"), ExitCode.BAD_INPUT),
    ],
    ids=["usage", "no-tag", "no-set", "no-profile"],
)
def test_jsonl_errors_are_one_line_on_stderr_and_nothing_on_stdout(url, args, code):
    """--jsonl's stdout holds rows only: an error is never written there as a row-shaped
    envelope (a Redis error never was), whatever kind it is."""
    result = run(url, *args)
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: ")


ODD_KEYS = [
    b"api_cache:bin:\xff\x00",
    b"api_cache:nl:a\nb",
    b"api_cache:bs:a\\b",
    b"api_cache:bs:a\\\\b",  # two backslashes: printed as a\\\\b, never found as a\\b
    b'api_cache:q:q:"a\\"b\\u0001"',
    b"api_cache:c1:\xc2\x85",
]


@pytest.mark.parametrize("raw", ODD_KEYS)
def test_a_key_as_keys_prints_it_is_what_inspect_and_invalidate_key_take(redis_url, raw):
    with redis.Redis.from_url(redis_url) as client:
        for key in ODD_KEYS:
            client.set(key, "{}")
        listed = run(redis_url, "keys", "--jsonl")
        assert listed.exit_code == 0, listed.output
        printed = {json.loads(line)["key"] for line in listed.stdout.splitlines()}
        from cachectl.keytext import show_bytes

        shown = show_bytes(raw)
        assert shown in printed
        inspected = run(redis_url, "inspect", shown, "--json")
        assert inspected.exit_code == 0, inspected.output
        assert json.loads(inspected.stdout)["data"]["key"] == shown
        preview = runner.invoke(
            app, ["--url", redis_url, "invalidate", "--key", shown, "--dry-run"]
        )
        assert preview.exit_code == 0, preview.output
        assert shown in preview.stdout
        gone = runner.invoke(
            app, ["--url", redis_url, "invalidate", "--key", shown, "--yes", "--json"]
        )
        assert gone.exit_code == 0, gone.output
        data = json.loads(gone.stdout)["data"]
        assert (data["deleted"], data["already_gone"]) == (1, 0)
        assert not client.exists(raw)
        assert client.exists(*[k for k in ODD_KEYS if k != raw]) == len(ODD_KEYS) - 1


def test_a_key_typed_with_a_backslash_that_starts_no_escape_is_a_usage_error(redis_url):
    for args in (["inspect", "api_cache:x:a\\yb"], ["invalidate", "--key", "api_cache:x:\\q"]):
        result = run(redis_url, *args)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "starts no escape" in result.stderr and "\\\\" in result.stderr


@pytest.mark.parametrize("raw", ODD_KEYS)
def test_a_printed_key_typed_as_a_glob_finds_it_in_keys_and_invalidate_pattern(redis_url, raw):
    from cachectl.keytext import show_bytes

    with redis.Redis.from_url(redis_url) as client:
        for key in ODD_KEYS:
            client.set(key, "{}")
        # The printed key with the glob's own characters escaped, as a user types it to match it.
        glob = "".join("\\" + c if c in "*?[]" else c for c in show_bytes(raw))
        listed = run(redis_url, "keys", glob, "--jsonl")
        assert listed.exit_code == 0, listed.output
        assert [json.loads(line)["key"] for line in listed.stdout.splitlines()] == [show_bytes(raw)]
        gone = runner.invoke(
            app, ["--url", redis_url, "invalidate", "--pattern", glob, "--yes", "--json"]
        )
        assert gone.exit_code == 0, gone.output
        assert json.loads(gone.stdout)["data"]["deleted"] == 1
        assert not client.exists(raw)
        assert client.exists(*[k for k in ODD_KEYS if k != raw]) == len(ODD_KEYS) - 1
