"""`prune` against real servers, single node and cluster: dangling members go, live ones stay,
emptied sets are gone, the logs are trimmed, and nothing outside the indexes is touched."""

from __future__ import annotations

import threading
import time

import pytest

from cachectl.config import Settings
from cachectl.ops.prune import PruneOptions, drop_dangling, prune
from cachectl.store import Store
from tests.integration.test_invalidate_keyspace import (
    INDEX_KEYS_KINDS,
    LAYOUT,
    build_keyspace,
    snapshot,
    target_fixture,
)

target = pytest.fixture(params=["single", "cluster"])(target_fixture)


def expire_some(client, space, n: int) -> set[bytes]:
    """Deletes entries behind the indexes' back, as expiry does."""
    gone = set(list(space.entries)[::n])
    for key in gone:
        client.delete(key)
    return gone


def test_prune_removes_exactly_the_dangling_members(target):
    client = target.client
    space = build_keyspace(client)
    gone = expire_some(client, space, 4)
    now_ms = int(time.time() * 1000)
    client.zadd(
        LAYOUT.response_times(),
        {"old-1": now_ms - 7_200_000, "old-2": now_ms - 3_700_000, "recent": now_ms - 60_000},
    )
    for key in space.tagged("glob"):  # every member of tag:glob dangles: the set must go
        client.delete(key)
        gone.add(key)
    before = snapshot(client, space.all_keys)

    dry = prune(target.store, PruneOptions(batch_size=13, scan_count=10, dry_run=True))
    assert snapshot(client, space.all_keys).keys() == before.keys()
    assert client.zcard(LAYOUT.response_times()) == 4

    result = prune(target.store, PruneOptions(batch_size=13, scan_count=10))
    assert result.failure is None
    for field in (
        "members_removed",
        "sets_deleted",
        "sets_updated",
        "entries_log_removed",
        "access_log_removed",
        "response_times_removed",
    ):
        assert getattr(result, field) == getattr(dry, field), field
    assert result.response_times_removed == 2
    assert set(client.zrange(LAYOUT.response_times(), 0, -1)) == {
        b'{"endpoint":"products"}',
        b"recent",
    }
    assert not client.exists(LAYOUT.tag("glob"))
    sets = {k: v[1] for k, v in before.items() if v and LAYOUT.kind(k) in ("tag", "dependency")}
    emptied = {k for k, members in sets.items() if members <= gone}
    assert result.sets_deleted == len(emptied) > 1
    assert result.sets_updated == sum(1 for k, m in sets.items() if m & gone and k not in emptied)

    after = snapshot(client, space.all_keys)
    removed = 0
    for key, was in before.items():
        if was is None:
            continue
        if LAYOUT.kind(key) in INDEX_KEYS_KINDS:
            now = after[key][1] if after[key] else frozenset()
            assert now == was[1] - gone, key
            removed += len(was[1] & gone) if LAYOUT.kind(key) in ("tag", "dependency") else 0
        elif key != LAYOUT.response_times().encode():
            assert after[key][:2] == was[:2], key
    assert result.members_removed == removed
    assert result.entries_log_removed == len(gone)


def test_second_prune_finds_nothing(target):
    space = build_keyspace(target.client)
    expire_some(target.client, space, 3)
    prune(target.store, PruneOptions())
    again = prune(target.store, PruneOptions())
    assert (
        again.members_removed,
        again.entries_log_removed,
        again.access_log_removed,
        again.sets_deleted,
    ) == (0, 0, 0, 0)


def test_stop_event_ends_prune_early(target):
    client = target.client
    for i in range(300):
        client.sadd(LAYOUT.tag(f"t{i}"), f"api_cache:gone:id:{i}")
    stop = threading.Event()

    def stop_soon(progress):
        if progress.members_checked >= 20:
            stop.set()

    result = prune(
        target.store, PruneOptions(batch_size=10, scan_count=10), on_progress=stop_soon, stop=stop
    )
    assert result.interrupted
    assert 20 <= result.members_removed < 300
    assert (
        sum(1 for _ in client.scan_iter(match="tag:*", count=1000)) == 300 - result.members_removed
    )


def test_pending_invalidations_are_reported_and_left_whole(target):
    """A half-done invalidation's set is its rerun's to finish: prune neither trims it (nor,
    by emptying it, deletes it) nor counts it among the sets it scanned."""
    pending = LAYOUT.pending_set("tag:x")
    assert pending == "tag:{tag:x}:invalidating"
    target.client.sadd(pending, "api_cache:a:no_params", "api_cache:gone:no_params")
    target.client.sadd("depends_on:{depends_on:y}:invalidating", "api_cache:gone:no_params")
    target.client.set("api_cache:a:no_params", "v")
    result = prune(target.store, PruneOptions())
    assert sorted(result.pending_invalidations) == [
        "depends_on:{depends_on:y}:invalidating",
        pending,
    ]
    assert (result.sets_scanned, result.members_removed) == (0, 0)
    assert target.client.smembers(pending) == {
        b"api_cache:a:no_params",
        b"api_cache:gone:no_params",
    }
    assert target.client.exists("depends_on:{depends_on:y}:invalidating")


def test_prune_is_paced_by_what_it_reads(target, monkeypatch):
    """--rate charges the pacer every set member and log member prune looks at."""
    import cachectl.store

    taken = []

    class Recording(cachectl.store.Pacer):
        def take(self, n=1):
            taken.append(n)

    monkeypatch.setattr(cachectl.store, "Pacer", Recording)
    space = build_keyspace(target.client)
    expire_some(target.client, space, 4)
    result = prune(target.store, PruneOptions(batch_size=13, scan_count=10, rate=1_000_000))
    assert result.members_checked > 0
    assert sum(taken) >= result.members_checked


class RacingStore:
    """A store whose first EXISTS round finds the entries gone, after which an application
    re-creates one (SET, then SADD), as can happen between prune's EXISTS and its SREM."""

    def __init__(self, store, client, recreate):
        self._store, self._client, self._recreate = store, client, recreate
        self._rounds = 0

    def exists_many(self, keys):
        self._rounds += 1
        if self._rounds == 1:
            return [False] * len(keys)
        return self._store.exists_many(keys)

    def send_many(self, commands):
        replies = self._store.send_many(commands)
        if commands[0][0] == "SREM":
            self._client.set(self._recreate, "v")
            self._client.sadd("tag:t", self._recreate)
        return replies


@pytest.mark.parametrize("racing_sadd", [True, False])
def test_entry_recreated_during_prune_stays_in_its_set(redis_url, redis_server, racing_sadd):
    client = redis_server.client()
    client.sadd("tag:t", "api_cache:a:no_params", "api_cache:b:no_params")
    racing = RacingStore(Store(Settings(url=redis_url)), client, "api_cache:a:no_params")
    if not racing_sadd:  # the application wrote the entry but its SADD came before our SREM
        racing.send_many = lambda commands: (
            client.set("api_cache:a:no_params", "v"),
            racing._store.send_many(commands),
        )[1]
    removed = drop_dangling(
        racing, [(b"tag:t", b"api_cache:a:no_params"), (b"tag:t", b"api_cache:b:no_params")]
    )
    assert client.smembers("tag:t") == {b"api_cache:a:no_params"}
    # Our SREM took both; the application's SADD, or ours, put the live one back.
    assert removed == {b"tag:t": 2 if racing_sadd else 1}
