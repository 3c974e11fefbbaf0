"""`invalidate` against real servers, single node and a three-primary cluster: every selection
deletes exactly its entries, every other key keeps its value and TTL, the indexes stay true."""

from __future__ import annotations

import threading
import time

import pytest

from cachectl.config import Settings
from cachectl.errors import RedisPermissionError, UsageError
from cachectl.layout import Layout
from cachectl.ops.invalidate import (
    InvalidateOptions,
    InvalidateResult,
    invalidate,
    preview,
)
from cachectl.ops.selection import Filters, SelectionSpec, make_filters, resolve_selection
from cachectl.store import Store
from tests.integration.test_invalidate_keyspace import (
    LAYOUT,
    assert_exactly_deleted,
    build_keyspace,
    snapshot,
    target_fixture,
)

target = pytest.fixture(params=["single", "cluster"])(target_fixture)


@pytest.fixture
def space(target):
    return build_keyspace(target.client)


def run(store, filters=None, options=None, **spec):
    selection = resolve_selection(LAYOUT, SelectionSpec(**spec))
    return invalidate(
        store,
        selection,
        filters or Filters(),
        options or InvalidateOptions(batch_size=7, scan_count=10),
    )


SELECTIONS = {
    "tag": ({"tags": ["user_1"]}, lambda s: s.tagged("user_1"), False),
    "two tags": (
        {"tags": ["cat_0", "glob"]},
        lambda s: s.tagged("cat_0") | s.tagged("glob"),
        False,
    ),
    "depends on": ({"depends_on": ["product_2"]}, lambda s: s.depending_on("product_2"), False),
    "pattern": (
        {"patterns": ["api_cache:user_profile:id:1*"]},
        lambda s: {
            k for k in s.of_endpoint("user_profile") if k.startswith(b"api_cache:user_profile:id:1")
        },
        True,
    ),
    "endpoint": ({"endpoints": ["products"]}, lambda s: s.of_endpoint("products"), True),
    "endpoint with glob characters": (
        {"endpoints": ["we[ir]d*"]},
        lambda s: s.of_endpoint("we[ir]d*"),
        True,
    ),
    "endpoint with params, both encodings": (
        {"endpoints": ["products"], "params": ["category=electronics", "limit=10"]},
        lambda s: {k for k in s.of_endpoint("products") if b"electronics" in k},
        False,
    ),
    "unicode endpoint": ({"endpoints": ["café ☕"]}, lambda s: s.of_endpoint("café ☕"), True),
    "exact keys": (
        {
            "keys": [
                "api_cache:status:no_params",
                # As `keys` prints it: the key's two backslashes doubled.
                'api_cache:star*:q:"a*b?c[d]\\\\\\\\"',
                "api_cache:never:no_params",
            ]
        },
        lambda s: {b"api_cache:status:no_params", b'api_cache:star*:q:"a*b?c[d]\\\\"'},
        False,
    ),
    "union": (
        {"tags": ["user_2"], "endpoints": ["status"], "patterns": ["api_cache:dash*"]},
        lambda s: s.tagged("user_2") | s.of_endpoint("status") | s.of_endpoint("dashboard"),
        True,
    ),
}


@pytest.mark.parametrize("name", list(SELECTIONS))
def test_each_selection_deletes_exactly_its_entries(target, space, name):
    spec, expected_of, swept = SELECTIONS[name]
    expected = expected_of(space)
    assert expected, "the selection should reach something"
    before = snapshot(target.client, space.all_keys)
    result = run(target.store, **spec)
    assert result.failure is None
    assert result.deleted == len(expected)
    assert result.matched == result.deleted + result.already_gone
    assert_exactly_deleted(target.client, space, before, expected, swept=swept)


@pytest.mark.parametrize(
    ("mode", "spec", "swept"),
    [("sweep", {"tags": ["user_4"]}, True), ("skip", {"endpoints": ["products"]}, False)],
)
def test_index_cleanup_can_be_asked_for_or_skipped(target, space, mode, spec, swept):
    expected = space.tagged("user_4") if "tags" in spec else space.of_endpoint("products")
    before = snapshot(target.client, space.all_keys)
    result = run(target.store, options=InvalidateOptions(index_cleanup=mode), **spec)
    assert result.index_cleanup == ("swept" if swept else "skipped")
    assert_exactly_deleted(target.client, space, before, expected, swept=swept)
    if not swept:  # the other tags still name the deleted entries
        assert target.client.smembers(LAYOUT.tag("cat_0")) & expected


def test_force_pattern_deletes_only_entries(target, space):
    before = snapshot(target.client, space.all_keys)
    result = run(target.store, patterns=["*"], force=True)
    assert result.deleted == len(space.entries)
    assert result.not_entries_skipped == len(space.bookkeeping) + len(space.unrelated) - sum(
        1 for k in space.bookkeeping if before[k] is None
    )
    assert_exactly_deleted(target.client, space, before, set(space.entries), swept=True)
    assert target.client.exists(*space.unrelated) == len(space.unrelated)


def test_invalidated_tag_set_is_deleted_and_rerun_is_a_no_op(target, space):
    tag_key = LAYOUT.tag("cat_1")
    first = run(target.store, tags=["cat_1"])
    assert first.sets_deleted == 1 and first.pending_sets == []
    assert not target.client.exists(tag_key)
    assert not target.client.exists(LAYOUT.pending_set(tag_key.encode()))
    again = run(target.store, tags=["cat_1"])
    assert (again.matched, again.deleted, again.sets_deleted) == (0, 0, 0)


def test_dry_run_lists_the_selection_and_changes_nothing(target, space):
    before = snapshot(target.client, space.all_keys)
    selection = resolve_selection(LAYOUT, SelectionSpec(tags=["user_3"], endpoints=["status"]))
    result = InvalidateResult()
    keys = list(preview(target.store, selection, Filters(), InvalidateOptions(), result))
    expected = space.tagged("user_3") | space.of_endpoint("status")
    assert sorted(keys) == sorted(expected)
    assert result.matched == len(expected) and result.dry_run
    assert_exactly_deleted(target.client, space, before, set(), swept=True)


def test_filters_narrow_a_selection(target, space):
    products = space.of_endpoint("products")
    short_ttl = {k for k in products if 0 < target.client.pttl(k) < 120_000}
    result = run(target.store, make_filters(ttl_below="120"), endpoints=["products"])
    assert result.deleted == len(short_ttl)
    assert not any(target.client.exists(k) for k in short_ttl)
    assert all(target.client.exists(k) for k in products - short_ttl)


def test_filtered_tag_keeps_its_set_with_the_rest(target, space):
    tag_key = LAYOUT.tag("cat_2")
    members = space.tagged("cat_2")
    old = {
        k
        for k in members
        if target.client.zscore(LAYOUT.entries_log(), k) < (time.time() - 1500) * 1000
    }
    assert old and old != members
    result = run(target.store, make_filters(older_than="25m"), tags=["cat_2"])
    assert result.deleted == len(old)
    assert target.client.smembers(tag_key) == members - old
    assert result.sets_updated == 1


def test_larger_than_and_ttl_above(target, space):
    big = b"api_cache:big:no_params"
    target.client.set(big, b"x" * 5000)
    target.client.sadd(LAYOUT.tag("size"), big, b"api_cache:status:no_params")
    result = run(target.store, make_filters(larger_than="4kb", ttl_above="1h"), tags=["size"])
    assert result.deleted == 1
    assert not target.client.exists(big)
    assert target.client.exists(b"api_cache:status:no_params")


def test_non_entry_members_of_a_tag_are_never_deleted(target, space):
    target.client.sadd(LAYOUT.tag("mixed"), b"session:1", b"api_cache:status:no_params")
    result = run(target.store, tags=["mixed"])
    assert result.deleted == 1 and result.not_entries_skipped == 1
    assert target.client.exists(b"session:1")


def test_set_key_of_another_type_is_left_alone(target, space):
    target.client.set(LAYOUT.tag("oops"), "not a set")
    result = run(target.store, tags=["oops"])
    assert result.deleted == 0
    assert target.client.get(LAYOUT.tag("oops")) == b"not a set"
    assert "not a set" in result.notes[0]


def test_tag_written_to_during_its_invalidation_leaves_no_orphan(target):
    """Writers keep adding entries to the tag (SET, then SADD) while it is invalidated: each
    entry ends up deleted or still in the tag's set, never alive and untagged."""
    client, tag_key = target.client, LAYOUT.tag("busy")
    for i in range(3000):
        key = LAYOUT.entry("busy", {"id": i})
        client.set(key, "v")
        client.sadd(tag_key, key)
    written: list[bytes] = []
    done = threading.Event()

    def writer():
        i = 10_000
        while not done.is_set():
            key = LAYOUT.entry("busy", {"id": i}).encode()
            client.set(key, "v")
            client.sadd(tag_key, key)
            written.append(key)
            i += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = run(
            target.store,
            options=InvalidateOptions(batch_size=50, scan_count=50, rate=20_000),
            tags=["busy"],
        )
    finally:
        done.set()
        thread.join()
    assert result.failure is None and result.deleted >= 3000
    assert written, "the writer should have raced the invalidation"
    members = client.smembers(tag_key)
    orphans = [k for k in written if client.exists(k) and k not in members]
    assert orphans == []
    for i in range(3000):
        assert not client.exists(LAYOUT.entry("busy", {"id": i}))


def tag_entries(client, tag: str, ids) -> list[str]:
    keys = [LAYOUT.entry(tag, {"id": i}) for i in ids]
    for key in keys:
        client.set(key, "v")
        client.sadd(LAYOUT.tag(tag), key)
    return keys


def stopped_after_first_batch(store, selection):
    """A run of `selection` stopped (as by Ctrl-C) once its first batch is deleted."""
    stop = threading.Event()

    def stop_after_first_batch(progress):
        if progress.deleted:
            stop.set()

    return invalidate(
        store,
        selection,
        Filters(),
        InvalidateOptions(batch_size=20, scan_count=20),
        on_progress=stop_after_first_batch,
        stop=stop,
    )


def test_stopped_run_leaves_a_pending_set_that_a_rerun_finishes(target):
    client, tag_key = target.client, LAYOUT.tag("big")
    keys = tag_entries(client, "big", range(500))
    selection = resolve_selection(LAYOUT, SelectionSpec(tags=["big"]))
    first = stopped_after_first_batch(target.store, selection)
    assert first.interrupted and 0 < first.deleted < 500
    pending = LAYOUT.pending_set(tag_key.encode())
    assert first.pending_sets == [pending.decode()]
    assert client.smembers(pending) == {k.encode() for k in keys}  # left whole
    assert not client.exists(tag_key)
    second = invalidate(target.store, selection, Filters(), InvalidateOptions())
    assert second.deleted == 500 - first.deleted and second.pending_sets == []
    assert second.already_gone == first.deleted
    assert client.exists(*keys) == 0 and not client.exists(pending)


def test_a_rerun_finishes_the_pending_set_and_takes_the_tag_writers_recreated(target):
    """Production's case: after a stopped run, applications keep tagging new entries, so the
    rerun finds both the pending set and a fresh tag set. It must delete the members of both
    (it once drained the pending set twice and left the fresh set whole, exit 0)."""
    client, tag_key = target.client, LAYOUT.tag("big")
    old = tag_entries(client, "big", range(300))
    selection = resolve_selection(LAYOUT, SelectionSpec(tags=["big"]))
    first = stopped_after_first_batch(target.store, selection)
    assert first.interrupted and first.pending_sets
    new = tag_entries(client, "big", range(1000, 1050))  # the applications write on
    unrelated = LAYOUT.entry("other", {"id": 1})
    client.set(unrelated, "v")
    second = invalidate(target.store, selection, Filters(), InvalidateOptions(batch_size=20))
    assert second.failure is None and not second.interrupted
    assert second.deleted == len(old) - first.deleted + len(new)
    assert second.sets_deleted == 2 and second.pending_sets == []
    assert client.exists(*old, *new) == 0
    assert not client.exists(tag_key) and not client.exists(LAYOUT.pending_set(tag_key.encode()))
    assert client.exists(unrelated)


def test_rerun_of_an_interrupted_pattern_run_finishes_the_index_cleanup(target, space):
    """The first run stops before its sweep: the entries it deleted are still named by their
    tags. The rerun no longer finds those entries, yet its sweep takes them out as well."""
    expected = space.of_endpoint("products")
    before = snapshot(target.client, space.all_keys)
    selection = resolve_selection(LAYOUT, SelectionSpec(endpoints=["products"]))
    stop = threading.Event()

    def stop_after_first_batch(progress):
        if progress.deleted:
            stop.set()

    first = invalidate(
        target.store,
        selection,
        Filters(),
        InvalidateOptions(batch_size=5, scan_count=10),
        on_progress=stop_after_first_batch,
        stop=stop,
    )
    assert first.interrupted and 0 < first.deleted < len(expected)
    assert first.index_cleanup == "not finished"
    assert target.client.smembers(LAYOUT.tag("cat_0")) & expected  # not swept yet
    second = invalidate(target.store, selection, Filters(), InvalidateOptions())
    assert second.failure is None and second.index_cleanup == "swept"
    assert first.deleted + second.deleted == len(expected)
    assert_exactly_deleted(target.client, space, before, expected, swept=True)


def test_lfu_policy_refuses_idle_filter_with_a_clear_error(make_redis):
    server = make_redis(extra_args=["--maxmemory-policy", "allkeys-lfu"])
    client = server.client()
    client.set("api_cache:a:no_params", "v")
    client.sadd("tag:t", "api_cache:a:no_params")
    with Store(Settings(url=server.url)) as store, pytest.raises(UsageError, match="LFU"):
        run(store, make_filters(idle_above="10"), tags=["t"])
    assert client.exists("api_cache:a:no_params")


def test_idle_filter_selects_entries_not_read_lately(redis_server, redis_url):
    client = redis_server.client()
    for name in ("stale", "fresh"):
        client.set(f"api_cache:{name}:no_params", "v")
    # Until the server counts the entries idle for 2 s (its LRU clock ticks in whole seconds:
    # a fixed sleep could still read 1), then one is read again.
    while client.object("idletime", "api_cache:stale:no_params") < 2:
        time.sleep(0.1)
    client.get("api_cache:fresh:no_params")
    with Store(Settings(url=redis_url)) as store:
        result = run(store, make_filters(idle_above="1"), patterns=["api_cache:[fs]*"])
    assert result.deleted == 1
    assert client.exists("api_cache:fresh:no_params")


def test_acl_user_without_unlink_changes_nothing(acl_redis, acl_url):
    admin = acl_redis.server.client()
    admin.set("api_cache:a:no_params", "v")
    admin.sadd("tag:t", "api_cache:a:no_params")
    from cachectl.ops.invalidate import check_permissions

    url = acl_redis.url_for("limited", "limited-pass")
    selection = resolve_selection(LAYOUT, SelectionSpec(tags=["t"]))
    with Store(Settings(url=url)) as store, pytest.raises(RedisPermissionError) as caught:
        check_permissions(store, Layout(), selection)
    assert caught.value.message == "the ACL user 'limited' may not run UNLINK"
    assert admin.smembers("tag:t") == {b"api_cache:a:no_params"}
    assert admin.exists("api_cache:a:no_params")


def test_unlink_batch_sends_extra_commands_in_the_same_round_trip(target):
    client = target.client
    keys = [f"k{i}".encode() for i in range(50)]
    for key in keys:
        client.set(key, "v")
    client.zadd("log", {k: 1 for k in keys[:10]})
    removed, replies = target.store.unlink_batch(keys + [b"missing"], ("ZREM", "log", *keys))
    assert (removed, replies) == (50, [10])
    assert client.exists(*keys) == 0


def test_write_log_created_during_the_run_loses_the_deleted_entries(target):
    client, log = target.client, LAYOUT.entries_log()
    keys = [LAYOUT.entry("late", {"id": i}) for i in range(100)]
    for key in keys:
        client.set(key, "v")
        client.sadd(LAYOUT.tag("late"), key)
    selection = resolve_selection(LAYOUT, SelectionSpec(tags=["late"]))

    def application_writes_the_log(progress):
        if progress.deleted and not client.exists(log):
            client.zadd(log, {key: 1 for key in keys} | {"api_cache:other:no_params": 1})

    result = invalidate(
        target.store,
        selection,
        Filters(),
        InvalidateOptions(batch_size=10, scan_count=10),
        on_progress=application_writes_the_log,
    )
    assert result.deleted == 100
    assert client.zrange(log, 0, -1) == [b"api_cache:other:no_params"]


def test_pattern_within_entries_never_deletes_a_nested_kind_of_key(redis_server, redis_url):
    """With entries under `shop:` and tags under `shop:tags:`, a pattern inside the entry
    prefix also matches tag sets: they must be skipped, not deleted."""
    from cachectl.layout import LayoutConfig

    layout = Layout(LayoutConfig(prefix="shop", tag_prefix="shop:tags"))
    client = redis_server.client()
    entry = layout.entry("t_products", {"id": 1})
    client.set(entry, "v")
    client.sadd(layout.tag("sale"), entry)
    selection = resolve_selection(layout, SelectionSpec(patterns=["shop:t*"]))
    with Store(Settings(url=redis_url, layout=layout.config)) as store:
        result = invalidate(store, selection, Filters(), InvalidateOptions(index_cleanup="skip"))
    assert (result.deleted, result.not_entries_skipped) == (1, 1)
    assert client.smembers(layout.tag("sale")) == {entry.encode()}


def test_a_key_unlink_did_not_remove_is_never_counted_gone_while_it_exists(target, monkeypatch):
    """UNLINK answers how many keys of a batch it removed, not which: a key left in place (here
    by an UNLINK that skips one, as a write landing between two deletes would look) is looked at
    again, key by key, and is deleted, or counted not deleted; never `already_gone`."""
    keys = [LAYOUT.entry("e", {"id": i}).encode() for i in range(5)]
    for key in keys:
        target.client.set(key, "v")
    missing = LAYOUT.entry("e", {"id": "missing"}).encode()
    unlink_batch = type(target.store).unlink_batch
    skipped = keys[2]

    def skipping(self, batch, *extra):
        removed, replies = unlink_batch(self, [k for k in batch if k != skipped], *extra)
        return removed, replies

    monkeypatch.setattr(type(target.store), "unlink_batch", skipping)
    result = run(target.store, keys=[k.decode() for k in [*keys, missing]])
    assert (result.matched, result.deleted, result.already_gone) == (6, 5, 1)
    assert target.client.exists(*keys) == 0
