"""`memory` against real servers: exact figures on a known cache, a sample that says so, every
primary of a cluster, scripts refused, and a scan cut short."""

from __future__ import annotations

import pytest
import redis

from cachectl.config import Settings
from cachectl.errors import PartialFailure
from cachectl.layout import Layout
from cachectl.ops.memory import analyze_memory, raise_if_incomplete
from cachectl.store import Store

LAYOUT = Layout()


def load(client, n: int = 60) -> dict[str, list[bytes]]:
    """n entries over two endpoints, a tenth without TTL and one large; tag sets (one all
    dangling), the write log, counters, and n keys of another application."""
    made: dict[str, list[bytes]] = {"users": [], "orders": [], "no_ttl": []}
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        endpoint = "users" if i % 3 else "orders"
        key = LAYOUT.entry(endpoint, {"id": i}).encode()
        value = "x" * (20_000 if i == 7 else 100)
        pipe.set(key, value, ex=None if i % 10 == 0 else 30 + i * 100)
        pipe.sadd(LAYOUT.tag(endpoint), key)
        pipe.zadd(LAYOUT.entries_log(), {key: i})
        made[endpoint].append(key)
        if i % 10 == 0:
            made["no_ttl"].append(key)
    pipe.sadd(LAYOUT.tag("gone"), *[LAYOUT.entry("users", {"id": -i}) for i in range(1, 60)])
    pipe.hincrby(*LAYOUT.hits_total(), 5)
    for i in range(n):
        pipe.set(f"other:{i}", "o")
    pipe.execute()
    return made


def test_exact_figures_on_a_known_cache(redis_url):
    with Store(Settings(url=redis_url, scan_count=9)) as store:
        made = load(store.client)
        sizes = {k: store.client.memory_usage(k) for keys in made.values() for k in keys}
        report = analyze_memory(store, LAYOUT, top=3)
    assert report.complete and not report.sampled
    assert report.keys_scanned == report.dbsize == 60 + 3 + 1 + 1 + 60
    assert report.other_keys == 60
    users = report.groups["users"]
    assert users.keys == len(made["users"])
    assert users.total_bytes == sum(sizes[k] for k in made["users"])
    assert report.entries.keys == 60
    assert report.ttl_buckets["no_expiry"].keys == len(made["no_ttl"])
    assert sum(b.keys for b in report.ttl_buckets.values()) == 60
    assert report.largest[0].key == LAYOUT.entry("users", {"id": 7})
    assert report.largest[0].size_bytes == sizes[LAYOUT.entry("users", {"id": 7}).encode()]
    assert set(report.overhead) == {"tag sets", "write log", "hit/miss metrics"}
    assert report.overhead["tag sets"].keys == 3
    gone = next(p for p in report.dangling_probe if p["key"] == LAYOUT.tag("gone"))
    assert gone["dangling_share"] == 1.0
    codes = {r.code for r in report.recommendations}
    assert {"entries_without_ttl", "tag_sets_dangling"} <= codes


def test_a_sample_reads_part_of_the_keyspace_and_scales_up(redis_url):
    with Store(Settings(url=redis_url)) as store:
        load(store.client, n=300)
        report = analyze_memory(store, LAYOUT, sample=100)
    assert report.sampled and report.complete
    assert 100 <= report.keys_scanned < report.dbsize
    assert report.scale == pytest.approx(report.dbsize / report.keys_scanned)
    # Scaled counts land near the truth (300 entries) for a sample of a third...
    assert 150 < report.entries.keys < 450
    # ...and every figure is scaled alike.
    assert sum(b.keys for b in report.ttl_buckets.values()) == pytest.approx(
        report.entries.keys, abs=6
    )
    assert sum(g.keys for g in report.groups.values()) == pytest.approx(report.entries.keys, abs=3)


def test_every_primary_of_a_cluster_is_analysed(cluster_url):
    with Store(Settings(url=cluster_url, scan_count=20)) as store:
        made = load(store.client, n=90)
        report = analyze_memory(store, LAYOUT)
    assert len(report.nodes) == 3
    assert report.entries.keys == 90
    assert report.groups["orders"].keys == len(made["orders"])
    assert report.other_keys == 90


def test_scripts_refused_give_the_same_figures(acl_redis, acl_url):
    with redis.Redis.from_url(acl_url) as admin:
        load(admin)
    with Store(Settings(url=acl_url)) as store:
        scripted = analyze_memory(store, LAYOUT)
    with Store(Settings(url=acl_redis.url_for("reader", "reader-pass"), retries=0)) as store:
        piped = analyze_memory(store, LAYOUT)
    assert piped.read_by == "pipeline" and scripted.read_by == "script"
    assert piped.entries.total_bytes == scripted.entries.total_bytes
    assert {n: g.keys for n, g in piped.groups.items()} == {
        n: g.keys for n, g in scripted.groups.items()
    }


def test_a_scan_cut_short_reports_what_it_covered_and_fails(make_redis):
    server = make_redis()
    with server.client() as client:
        load(client, n=400)
    settings = Settings(url=server.url, retries=0, scan_count=10, connect_timeout=0.5, timeout=1)
    seen = []

    def kill_midway(done: int, total: int) -> None:
        seen.append(done)
        if len(seen) == 5:
            server.kill()

    with Store(settings) as store:
        report = analyze_memory(store, LAYOUT, on_progress=kill_midway)
    assert not report.complete
    assert 0 < report.keys_scanned < report.dbsize
    assert "the scan stopped" in report.stopped
    with pytest.raises(PartialFailure):
        raise_if_incomplete(report)
