"""`keys` and the sized SCAN under it, against real servers: a single node, a 3-primary cluster,
an ACL user that may not run scripts, and a server that dies mid-scan."""

from __future__ import annotations

import pytest
import redis

from cachectl.config import Settings
from cachectl.errors import NotFoundError, PartialFailure, RedisError, UsageError
from cachectl.layout import Layout
from cachectl.layout_parse import glob_to_regex
from cachectl.ops.keys import KeyQuery, list_keys
from cachectl.ops.scanning import ScanPlan, ScanState, scan_sized
from cachectl.store import Store

LAYOUT = Layout()


def load(client, n: int = 30) -> dict[bytes, dict]:
    """n entries over three endpoints (one with glob characters), tags and a dependency set,
    some without TTL; plus keys of other applications. Returns {key: what it is}."""
    entries: dict[bytes, dict] = {}
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        endpoint = ("users", "orders", "prices[eu]")[i % 3]
        key = LAYOUT.entry(endpoint, {"id": i})
        ttl = None if i % 5 == 0 else 600 + i
        pipe.set(key, f'{{"n":{i}}}', ex=ttl)
        pipe.sadd(LAYOUT.tag(f"t{i % 2}"), key)
        if endpoint == "orders":
            pipe.sadd(LAYOUT.dependency("order"), key)
        entries[key.encode()] = {"endpoint": endpoint, "id": i, "ttl": ttl}
    pipe.sadd(LAYOUT.tag("t0"), LAYOUT.entry("users", {"id": -1}))  # dangling
    pipe.hset(LAYOUT.entry("users", {"id": 999}), "x", "y")  # an entry of the wrong type
    pipe.set(b"api_cache:bin:\xff\x00", b"v")  # not UTF-8
    for i in range(n):
        pipe.set(f"session:{i}", "s")
    pipe.execute()
    return entries


def rows_of(store: Store, query: KeyQuery) -> list:
    _, rows = list_keys(store, LAYOUT, query)
    return list(rows)


@pytest.fixture
def store(redis_url):
    with Store(Settings(url=redis_url, scan_count=7, batch_size=5)) as store:
        yield store


def test_every_entry_is_listed_once_with_its_figures(store):
    entries = load(store.client)
    rows = rows_of(store, KeyQuery())
    by_key = {row.key: row for row in rows}
    assert len(rows) == len(by_key) == len(entries) + 2  # the hash entry and the binary key
    for key, what in entries.items():
        row = by_key[key]
        assert (row.endpoint, row.params, row.type) == (
            what["endpoint"],
            {"id": what["id"]},
            "string",
        )
        assert row.size_bytes == store.client.memory_usage(key)
        if what["ttl"] is None:
            assert row.pttl_ms == -1
        else:
            assert 0 < row.pttl_ms <= what["ttl"] * 1000
    assert not any(row.key.startswith(b"session:") for row in rows)
    assert by_key[b"api_cache:bin:\xff\x00"].shown == "api_cache:bin:\\xff\\x00"


def test_an_endpoint_with_glob_characters_finds_exactly_its_entries(store):
    entries = load(store.client)
    store.client.set(
        LAYOUT.entry("prices[eu]x", {"id": 1}), "{}"
    )  # what an unescaped glob would add
    store.client.set(LAYOUT.entry("pricese", {"id": 1}), "{}")
    rows = rows_of(store, KeyQuery(endpoint="prices[eu]"))
    assert {r.key for r in rows} == {k for k, w in entries.items() if w["endpoint"] == "prices[eu]"}


def test_filters_narrow_the_listing(store):
    entries = load(store.client)
    no_ttl = rows_of(store, KeyQuery(no_ttl=True))
    assert {r.key for r in no_ttl} == {k for k, w in entries.items() if w["ttl"] is None} | {
        LAYOUT.entry("users", {"id": 999}).encode(),
        b"api_cache:bin:\xff\x00",
    }
    hashes = rows_of(store, KeyQuery(type="hash"))
    assert [r.key for r in hashes] == [LAYOUT.entry("users", {"id": 999}).encode()]
    assert len(rows_of(store, KeyQuery(limit=4))) == 4
    pattern = rows_of(store, KeyQuery(pattern="api_cache:orders:*"))
    assert {r.endpoint for r in pattern} == {"orders"}


def test_tag_and_dependency_listings_read_the_sets_and_skip_dangling_members(store):
    entries = load(store.client)
    tagged = rows_of(store, KeyQuery(tag="t0"))
    assert {r.key for r in tagged} == {k for k, w in entries.items() if w["id"] % 2 == 0}
    both = rows_of(store, KeyQuery(tag="t0", depends_on="order"))
    assert {r.key for r in both} == {
        k for k, w in entries.items() if w["id"] % 2 == 0 and w["endpoint"] == "orders"
    }
    narrowed = rows_of(store, KeyQuery(tag="t1", pattern="api_cache:users:*"))
    assert {r.key for r in narrowed} == {
        k for k, w in entries.items() if w["id"] % 2 == 1 and w["endpoint"] == "users"
    }
    with pytest.raises(NotFoundError):
        rows_of(store, KeyQuery(tag="nope"))


def test_a_pattern_beyond_the_entries_lists_only_entries(store):
    entries = load(store.client)
    listing, rows = list_keys(store, LAYOUT, KeyQuery(pattern="*"))
    rows = list(rows)
    assert listing.pattern_outside_entries
    # Every entry, and nothing else: an empty listing would pass an all() alone.
    assert {r.key for r in rows} == set(entries) | {
        LAYOUT.entry("users", {"id": 999}).encode(),
        b"api_cache:bin:\xff\x00",
    }
    assert all(LAYOUT.is_entry(r.key) for r in rows)
    assert listing.skipped_not_entries == 0  # the script sized only keys in the entry prefix


def test_bad_queries_are_usage_errors(store):
    with pytest.raises(UsageError):
        rows_of(store, KeyQuery(type="blob"))


def test_the_script_and_the_pipeline_read_the_same_figures(store):
    load(store.client)
    plan = ScanPlan(match=LAYOUT.entry_pattern(), prefixes=(b"api_cache:",))
    scripted = {
        k: f for p in scan_sized(store, plan) for k, *f in zip(p.keys, p.types, p.pttls, p.sizes)
    }
    state = ScanState(method="pipeline")
    piped = {
        k: f
        for p in scan_sized(store, plan, state)
        for k, *f in zip(p.keys, p.types, p.pttls, p.sizes)
    }
    assert set(scripted) == set(piped)
    for key, (type_, pttl, size) in scripted.items():
        assert piped[key][0] == type_ and piped[key][2] == size
        assert abs(piped[key][1] - pttl) < 5000


def test_an_acl_user_without_scripts_gets_the_same_listing_by_pipelining(acl_redis, acl_url):
    with redis.Redis.from_url(acl_url) as admin:
        entries = load(admin)
    reader = acl_redis.url_for("reader", "reader-pass")
    with Store(Settings(url=reader, retries=0, scan_count=10)) as store:
        listing, rows = list_keys(store, LAYOUT, KeyQuery())
        keys = {r.key for r in rows}
    assert listing.state.method == "pipeline"
    assert set(entries) <= keys


def test_every_primary_of_a_cluster_is_listed(cluster_url):
    with Store(Settings(url=cluster_url, scan_count=5)) as store:
        entries = load(store.client, n=60)
        rows = rows_of(store, KeyQuery())
        nodes = {node.name for node, _ in store.for_each_primary()}
        tagged = rows_of(store, KeyQuery(tag="t1"))
    assert {r.key for r in rows} >= set(entries)
    assert len(nodes) == 3
    assert {r.key for r in tagged} == {k for k, w in entries.items() if w["id"] % 2 == 1}


def test_a_server_lost_mid_scan_is_reported_with_how_far_the_scan_got(make_redis):
    server = make_redis()
    with server.client() as client:
        load(client, n=300)
    settings = Settings(url=server.url, retries=1, scan_count=10, connect_timeout=0.5, timeout=1)
    with Store(settings) as store:
        _, rows = list_keys(store, LAYOUT, KeyQuery())
        next(rows)
        server.kill()
        with pytest.raises(PartialFailure) as failure:
            list(rows)
    assert "the listing is incomplete" in failure.value.message
    assert "the scan stopped" in failure.value.message
    assert failure.value.details["keys_scanned"] > 0
    assert failure.value.details["cause"].startswith("redis")


def test_a_command_refused_to_the_script_mid_scan_is_named_in_the_partial_listing(
    acl_redis, acl_url
):
    # Redis names only the script's line ("... can't run this command ... @user_script:33"):
    # the listing names the command on it, on a page read ahead as on the first.
    with redis.Redis.from_url(acl_url) as admin:
        load(admin, n=150)
        admin.execute_command(
            "ACL", "SETUSER", "turned", "reset", "on", ">turned-pass", "+@all", "~*"
        )
        url = acl_redis.url_for("turned", "turned-pass")
        with Store(Settings(url=url, retries=0, scan_count=10)) as store:
            listing, rows = list_keys(store, LAYOUT, KeyQuery())
            next(rows)
            # The page after the next is asked for after this: refused PTTL.
            admin.execute_command("ACL", "SETUSER", "turned", "-pttl")
            with pytest.raises(PartialFailure) as failure:
                list(rows)
    assert listing.state.method == "script"
    assert failure.value.message.startswith(
        "the listing is incomplete: the ACL user 'turned' may not run PTTL (the scan stopped"
    ), failure.value.message
    assert failure.value.details["cause"] == "redis.permission"
    assert failure.value.details["command"] == "PTTL"


def test_a_script_refusal_without_a_line_lists_the_commands_the_script_runs(store):
    from cachectl.ops.scanning import _script_refusal

    said = RedisError(
        "Redis refused EVAL: the user executing the script can't run this command or subcommand"
    )
    refused = _script_refusal(store, said, "tp")
    assert refused.message == (
        "the ACL user 'default' was refused: it may run EVAL but not one of the commands the "
        "scan's script runs: SCAN, TYPE, PTTL"
    )
    assert _script_refusal(store, RedisError("Redis refused EVAL: out of memory"), "tp") is None


def test_a_server_gone_before_the_scan_is_the_redis_error_itself(make_redis):
    server = make_redis()
    settings = Settings(url=server.url, retries=0, connect_timeout=0.5, timeout=1)
    with Store(settings) as store:
        store.client.ping()
        _, rows = list_keys(store, LAYOUT, KeyQuery())
        server.kill()
        with pytest.raises(RedisError) as failure:
            list(rows)
    assert not isinstance(failure.value, PartialFailure)


def test_a_server_restarted_mid_scan_is_ridden_out(make_redis):
    server = make_redis()
    with server.client() as client:
        load(client, n=50)
    with Store(Settings(url=server.url, retries=5, scan_count=5)) as store:
        _, rows = list_keys(store, LAYOUT, KeyQuery())
        first = next(rows)
        server.restart()  # no persistence: it comes back empty, and the scan ends cleanly
        rest = list(rows)
    assert first.endpoint is not None
    assert len(rest) < 52


@pytest.mark.parametrize(
    "glob",
    ["api_cache:*", "api_cache:users:id:?", "*[0-3]", "*[^0-9]*", "api_cache:prices\\[eu\\]:*"],
)
def test_glob_matching_agrees_with_redis(store, glob):
    load(store.client)
    server_side = set(store.scan(match=glob))
    everything = set(store.scan())
    regex = glob_to_regex(glob.encode())
    assert {k for k in everything if regex.match(k)} == server_side


def test_fields_not_asked_for_are_not_read_and_the_rest_agree(store):
    load(store.client)
    full = {r.key: r for r in rows_of(store, KeyQuery())}
    listing, rows = list_keys(store, LAYOUT, KeyQuery(fields=("endpoint", "params")))
    names_only = {r.key: r for r in rows}
    assert listing.state.method == "scan"  # plain SCAN pages: nothing read per key
    assert set(names_only) == set(full)
    for key, row in names_only.items():
        assert (row.endpoint, row.params) == (full[key].endpoint, full[key].params)
        assert row.type is None and row.pttl_ms is None and row.size_bytes is None
    ttl_only = {r.key: r for r in rows_of(store, KeyQuery(fields=("ttl",)))}
    assert set(ttl_only) == set(full)
    assert all(
        r.type is None and r.size_bytes is None and r.endpoint is None for r in ttl_only.values()
    )
    assert {k for k, r in ttl_only.items() if r.pttl_ms == -1} == {
        k for k, r in full.items() if r.pttl_ms == -1
    }


def test_a_type_filter_says_the_type_without_reading_it(store):
    load(store.client)
    listing, rows = list_keys(store, LAYOUT, KeyQuery(type="hash", fields=("type", "endpoint")))
    rows = list(rows)
    assert listing.query.reads() == ""  # SCAN TYPE did the filtering: nothing to read per key
    assert [(r.key, r.type) for r in rows] == [
        (LAYOUT.entry("users", {"id": 999}).encode(), "hash")
    ]


def test_no_ttl_reads_the_ttl_even_when_it_is_not_shown(store):
    entries = load(store.client)
    rows = rows_of(store, KeyQuery(no_ttl=True, fields=("endpoint",)))
    assert {r.key for r in rows} == {k for k, w in entries.items() if w["ttl"] is None} | {
        LAYOUT.entry("users", {"id": 999}).encode(),
        b"api_cache:bin:\xff\x00",
    }


def test_a_tag_listing_with_few_fields_still_skips_dangling_members(store):
    entries = load(store.client)
    rows = rows_of(store, KeyQuery(tag="t0", fields=("endpoint",)))
    assert {r.key for r in rows} == {k for k, w in entries.items() if w["id"] % 2 == 0}
    assert all(r.size_bytes is None for r in rows)


def test_scripts_refused_read_only_the_asked_figures_by_pipelining(acl_redis, acl_url):
    with redis.Redis.from_url(acl_url) as admin:
        entries = load(admin)
    reader = acl_redis.url_for("reader", "reader-pass")
    with Store(Settings(url=reader, retries=0, scan_count=10)) as store:
        listing, rows = list_keys(store, LAYOUT, KeyQuery(fields=("ttl", "size")))
        rows = {r.key: r for r in rows}
    assert listing.state.method == "pipeline"
    assert set(entries) <= set(rows)
    assert all(r.type is None and r.size_bytes > 0 for r in rows.values())
    assert {k for k in entries if rows[k].pttl_ms == -1} == {
        k for k, w in entries.items() if w["ttl"] is None
    }


def test_every_primary_of_a_cluster_is_listed_by_names_alone(cluster_url):
    with Store(Settings(url=cluster_url, scan_count=5)) as store:
        entries = load(store.client, n=60)
        listing, rows = list_keys(store, LAYOUT, KeyQuery(fields=("endpoint",)))
        keys = {r.key for r in rows}
    assert listing.state.method == "scan" and listing.state.nodes_done == 3
    assert keys >= set(entries)
