"""The order warm writes an entry and its index sets in, held against invalidation racing it.

The rule (cachectl/ops/warm_write.py, the same as the library's): the entry first, then its
SADDs; an entry whose index writes fail is deleted again. These tests do not hope for a lucky
thread schedule: a real `invalidate --tag` (RENAME of the set, then its drain) is run between
two of the writer's round trips, at every point in turn, on real servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.manifest import Plan, load_manifests
from cachectl.ops.invalidate import InvalidateOptions, invalidate
from cachectl.ops.selection import Filters, SelectionSpec, resolve_selection
from cachectl.ops.warm_write import EntryWriter, ToWrite
from cachectl.store import Store

LAYOUT = Layout()
ENTRIES = 12


class InterleavingStore(Store):
    """A real Store that runs `between()` once, right after its `after`-th round trip of the
    calls the entry writer makes (TYPE reads, pipelines, transactions)."""

    def __init__(self, settings: Settings, after: int, between):
        super().__init__(settings)
        self.after = after
        self.between = between
        self.round_trips = 0

    def _tick(self) -> None:
        self.round_trips += 1
        if self.round_trips == self.after:
            self.between()

    def types(self, keys):
        replies = super().types(keys)
        self._tick()
        return replies

    def send_many(self, commands):
        replies = super().send_many(commands)
        self._tick()
        return replies

    def transactions(self, groups):
        replies = super().transactions(groups)
        self._tick()
        return replies


def _plan(tmp_path: Path) -> Plan:
    path = tmp_path / "warm.yaml"
    path.write_text(
        "version: 1\n"
        "defaults: {base_url: 'http://origin.invalid', ttl: 10m}\n"
        "endpoints:\n"
        "  - name: items\n"
        "    url: /items/{id}\n"
        f"    matrix: {{id: {{range: [1, {ENTRIES}]}}}}\n"
        "    tags: [catalog, 'item_{id}']\n"
        "    depends_on: ['product_{id}']\n"
    )
    return Plan(load_manifests([path], env={}), LAYOUT)


def _invalidate_tag(url: str, tag: str) -> None:
    with Store(Settings(url=url)) as store:
        selection = resolve_selection(LAYOUT, SelectionSpec(tags=[tag]))
        result = invalidate(store, selection, Filters(), InvalidateOptions())
        assert result.failure is None


def _orphans(url: str, keys: list[str]) -> list[str]:
    """Entries that exist but are missing from one of their index sets: a later invalidation of
    that tag or dependency would never find them."""
    with Store(Settings(url=url)) as store:
        client = store.client
        missing = []
        for number, key in enumerate(keys, start=1):
            if not client.exists(key):
                continue
            for index in ("tag:catalog", f"tag:item_{number}", f"depends_on:product_{number}"):
                if client.type(index) != b"set" or not client.sismember(index, key):
                    missing.append(f"{key} not in {index}")
        return missing


@pytest.fixture(params=["single", "cluster"])
def any_url(request) -> str:
    return request.getfixturevalue("redis_url" if request.param == "single" else "cluster_url")


@pytest.mark.parametrize("after", [1, 2, 3, 4])
def test_an_invalidation_between_any_two_round_trips_leaves_no_untagged_entry(
    tmp_path, any_url, after
):
    plan = _plan(tmp_path)
    requests = list(plan.requests())
    raced = []

    def between():
        raced.append(True)
        _invalidate_tag(any_url, "catalog")

    with InterleavingStore(Settings(url=any_url), after, between) as store:
        results = EntryWriter(store, LAYOUT).write(
            [ToWrite(r, {"id": r.params["id"]}) for r in requests]
        )
        trips = store.round_trips
    assert all(error is None for _, error in results)
    assert _orphans(any_url, [r.key for r in requests]) == []
    if after <= trips:
        assert raced, "the invalidation did not run between the writer's round trips"
    # Whatever survived the race is still reachable: invalidating the tag now removes it all.
    _invalidate_tag(any_url, "catalog")
    with Store(Settings(url=any_url)) as store:
        assert store.count_existing([r.key for r in requests]) == 0


@pytest.mark.parametrize("after", [1, 2])
def test_an_entry_whose_index_write_fails_is_deleted_again(tmp_path, any_url, after):
    """A tag key turned into a string after the writer checked its type: SET lands, SADD gets
    WRONGTYPE. The entry must not outlive the failure untagged, nor stay in the write log."""
    plan = _plan(tmp_path)
    requests = list(plan.requests())

    def between():
        with Store(Settings(url=any_url)) as other:
            other.client.set("tag:item_3", "not a set any more")

    with InterleavingStore(Settings(url=any_url), after, between) as store:
        results = EntryWriter(store, LAYOUT).write(
            [ToWrite(r, {"id": r.params["id"]}) for r in requests]
        )
        cluster = store.is_cluster
    failed = [r.key for r, (_, error) in zip(requests, results) if error is not None]
    # after 1: between the TYPE read and the writes; after 2: in a cluster, between the SETs
    # and the SADDs (on a single server the whole write is one round trip, already done).
    if after == 1 or cluster:
        assert failed == ["api_cache:items:id:3"]
        assert "wrong kind" in results[2][1].message.lower()
    else:
        assert failed == []
    with Store(Settings(url=any_url)) as store:
        client = store.client
        for key in failed:
            assert not client.exists(key), f"{key} outlived its failed index write"
            assert client.zscore("cache_entries", key) is None
        stored = [r.key for r, (_, error) in zip(requests, results) if error is None]
        assert store.count_existing(stored) == len(stored)
    if failed:
        assert _orphans(any_url, [r.key for r in requests]) == []
