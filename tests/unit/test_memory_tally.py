"""`memory`'s arithmetic on recorded pages: groups, TTL buckets, the largest entries, the
bookkeeping, unexpected types, sampling, and what it recommends."""

from __future__ import annotations

import pytest

from cachectl.errors import Interrupted
from cachectl.layout import Layout
from cachectl.ops.memory import MemoryReport, _scale, _Tally, recommend
from cachectl.ops.scanning import SizedPage
from cachectl.render.memory import render_memory
from cachectl.render.output import Output
from cachectl.store import NodeRef

NODE = NodeRef("127.0.0.1", 1)
LAYOUT = Layout()


def _page(rows: list[tuple[bytes, str, int, int]], scanned: int | None = None) -> SizedPage:
    keys, types, pttls, sizes = (list(col) for col in zip(*rows)) if rows else ([], [], [], [])
    return SizedPage(NODE, len(rows) if scanned is None else scanned, keys, types, pttls, sizes)


def _tally(pages: list[SizedPage], *, depth: int | None = None, top: int = 3) -> MemoryReport:
    report = MemoryReport("endpoint" if depth is None else f"prefix:{depth}")
    tally = _Tally(report, LAYOUT, depth, top)
    for page in pages:
        tally.add_page(page)
    tally.finish()
    return report


def entry(endpoint: str, n: int) -> bytes:
    return LAYOUT.entry(endpoint, {"id": n}).encode()


PAGES = [
    _page(
        [
            (entry("users", 1), "string", -1, 100),
            (entry("users", 2), "string", 30_000, 300),  # under a minute
            (entry("a:b", 3), "string", 7_200_000, 50),  # an endpoint holding ":"
            (b"tag:users", "set", -1, 1000),
            (b"cache_entries", "zset", -1, 5000),
            (b"cache_metrics:hits", "hash", -1, 80),
        ],
        scanned=10,  # four keys of other applications were not returned
    ),
    _page(
        [
            (entry("users", 4), "hash", 86_400_000 * 3, 700),  # an entry that is not a string
            (entry("orders", 5), "string", 86_400_000 * 30, 20),
            (entry("orders", 6), "string", -2, -1),  # gone between SCAN and sizing
            (b"depends_on:product:1", "string", -1, 60),  # an index that is not a set
        ]
    ),
]


def test_entries_are_grouped_by_the_endpoint_read_from_the_key():
    report = _tally(PAGES)
    groups = {name: (g.keys, g.total_bytes, g.max_bytes) for name, g in report.groups.items()}
    assert groups == {"users": (3, 1100, 700), "a:b": (1, 50, 50), "orders": (1, 20, 20)}
    assert (report.entries.keys, report.entries.total_bytes, report.entries.max_bytes) == (
        5,
        1170,
        700,
    )


def test_ttl_buckets_hold_every_entry_once_with_its_memory():
    buckets = {b.name: (b.keys, b.total_bytes) for b in _tally(PAGES).ttl_buckets.values()}
    assert buckets == {
        "no_expiry": (1, 100),
        "under_1m": (1, 300),
        "under_1h": (0, 0),
        "under_1d": (1, 50),
        "under_1w": (1, 700),
        "longer": (1, 20),
    }


def test_bookkeeping_is_counted_apart_and_other_keys_only_counted():
    report = _tally(PAGES)
    overhead = {name: (g.keys, g.total_bytes) for name, g in report.overhead.items()}
    assert overhead == {
        "tag sets": (1, 1000),
        "write log": (1, 5000),
        "hit/miss metrics": (1, 80),
        "dependency sets": (1, 60),
    }
    assert report.other_keys == 4
    assert report.cache_bytes == 1170 + 6140


def test_keys_of_an_unexpected_type_are_reported_as_such():
    report = _tally(PAGES)
    assert report.unexpected_types == {"entry:hash": 1, "dependency:string": 1}
    assert any("users" in example and "(hash)" in example for example in report.unexpected_examples)


def test_the_largest_entries_come_biggest_first():
    report = _tally(PAGES, top=2)
    assert [(e.endpoint, e.size_bytes) for e in report.largest] == [("users", 700), ("users", 300)]
    assert report.largest[1].ttl_seconds == 30.0


def test_prefix_grouping_cuts_keys_at_the_chosen_depth():
    report = _tally(PAGES, depth=2)
    assert set(report.groups) == {"api_cache:users", "api_cache:a", "api_cache:orders"}


def test_a_sample_is_scaled_to_the_whole_keyspace_but_its_largest_entries_are_not():
    report = _tally(PAGES)
    _scale(report, 10.0)
    assert report.entries.keys == 50 and report.entries.total_bytes == 11700
    assert report.groups["users"].keys == 30
    assert report.ttl_buckets["no_expiry"].total_bytes == 1000
    assert report.other_keys == 40
    assert report.largest[0].size_bytes == 700


def test_recommendations_name_what_an_operator_should_fix():
    report = _tally(PAGES)
    report.maxmemory_policy, report.maxmemory_bytes = "noeviction", 0
    report.dangling_probe = [
        {"key": "tag:users", "members_probed": 10, "dangling": 8, "dangling_share": 0.8}
    ]
    codes = {r.code for r in recommend(report)}
    assert {
        "entries_without_ttl",
        "tag_sets_dangling",
        "bookkeeping_heavy",
        "policy_noeviction",
    } <= codes
    report.maxmemory_policy, report.maxmemory_bytes = "allkeys-lru", 10**9
    assert "policy_noeviction" not in {r.code for r in recommend(report)}


def test_outsized_entries_are_recommended_against():
    rows = [(entry("small", i), "string", 60_000, 100) for i in range(200)]
    rows.append((entry("huge", 1), "string", 60_000, 1_000_000))
    report = _tally([_page(rows)])
    recs = {r.code: r.message for r in recommend(report)}
    assert "outsized_entries" in recs and "api_cache:huge:id:1" in recs["outsized_entries"]


def test_people_see_sampled_figures_marked_and_no_colour_off_a_terminal():
    import io

    report = _tally(PAGES)
    report.sampled, report.keys_scanned, report.dbsize = True, 14, 140
    _scale(report, 10.0)
    report.recommendations = recommend(report)
    stream = io.StringIO()
    render_memory(Output(stdout=stream, stderr=io.StringIO()), report)
    text = stream.getvalue()
    assert "sampled" in text and "~" in text and "\x1b[" not in text
    assert "about 10 entries" in text  # the recommendation says its count is an estimate
    assert "users" in text and "no expiry" in text


def test_primaries_that_disagree_on_the_policy_are_named_and_the_worst_is_judged():
    from cachectl.ops.memory import _server_figures

    class Store:
        def server_info(self, section):
            return {
                "n1:1": {"used_memory": 10, "maxmemory": 100, "maxmemory_policy": "allkeys-lru"},
                "n2:2": {"used_memory": 20, "maxmemory": 100, "maxmemory_policy": "noeviction"},
            }

    report = _tally(PAGES)
    _server_figures(Store(), report)
    assert report.maxmemory_policy == "noeviction" and report.maxmemory_bytes == 200
    assert report.to_dict()["server"]["maxmemory_policy_by_node"] == {
        "n1:1": "allkeys-lru",
        "n2:2": "noeviction",
    }
    recs = {r.code: r.message for r in recommend(report)}
    assert "policy_noeviction" in recs
    assert "n1:1 allkeys-lru, n2:2 noeviction" in recs["policy_differs_between_primaries"]


def test_a_volatile_policy_with_entries_that_never_expire_is_recommended_against():
    report = _tally(PAGES)
    report.maxmemory_policy, report.maxmemory_bytes = "volatile-lru", 10**9
    assert "policy_volatile_with_no_ttl" in {r.code for r in recommend(report)}
    report.maxmemory_policy, report.maxmemory_bytes = "allkeys-lru", 0
    assert "no_maxmemory" in {r.code for r in recommend(report)}


def test_ctrl_c_after_the_scan_keeps_its_figures_and_says_it_was_interrupted(monkeypatch):
    from cachectl.ops import memory as memory_ops

    class Store:
        settings = type("S", (), {"scan_count": 10})()

        def for_each_primary(self):
            return [(NODE, None)]

        def server_info(self, section):
            raise KeyboardInterrupt

    monkeypatch.setattr(memory_ops, "_node_sizes", lambda store: {NODE.name: 14})
    monkeypatch.setattr(memory_ops, "scan_sized", lambda *a, **k: iter(PAGES))
    report = memory_ops.analyze_memory(Store(), LAYOUT)
    assert not report.complete and report.stopped == "interrupted (Ctrl-C)"
    assert report.entries.keys == 5
    with pytest.raises(Interrupted):
        memory_ops.raise_if_incomplete(report)
