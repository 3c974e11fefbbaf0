"""APICache against a three-primary Redis Cluster: entries, sets and logs in different slots."""

from __future__ import annotations

import threading

import pytest
from redis.cluster import RedisCluster

from cachectl import APICache

pytestmark = pytest.mark.cluster


@pytest.fixture
def conn(cluster_url):
    client = RedisCluster.from_url(cluster_url)
    yield client
    client.close()


@pytest.fixture
def make_cache(cluster_url):
    caches: list[APICache] = []

    def make(**options) -> APICache:
        cache = APICache(cluster_url, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


def _nodes_holding(conn: RedisCluster, keys: list[str]) -> set[str]:
    return {conn.get_node_from_key(k).name for k in keys}


def test_entries_sets_and_logs_land_on_their_own_nodes(make_cache, conn):
    cache = make_cache()
    keys = [
        cache.set("items", {"id": i}, {"i": i}, ttl=60, tags=["items"], depends_on=[f"cat:{i % 3}"])
        for i in range(30)
    ]
    assert len(_nodes_holding(conn, keys)) == 3  # the test covers every primary
    assert all(cache.get("items", {"id": i}) == {"i": i} for i in range(30))
    assert conn.scard("tag:items") == 30
    assert sum(conn.scard(f"depends_on:cat:{n}") for n in range(3)) == 30
    assert conn.zcard("cache_entries") == 30


def test_counters_and_logs_are_written_across_slots(make_cache, conn):
    cache = make_cache()
    for i in range(10):
        cache.cache_api_call("items", {"id": i}, lambda: 1, 60)
        cache.cache_api_call("items", {"id": i}, lambda: 1, 60)
    cache.flush()
    assert conn.hget("cache_metrics:hits", "total") == b"10"
    assert conn.hget("cache_metrics:misses:items", "count") == b"10"
    assert conn.zcard("cache_access") == 10
    assert conn.zcard("cache_metrics:response_times") == 20


def test_invalidating_a_tag_deletes_entries_on_every_node(make_cache, conn):
    cache = make_cache()
    keys = [cache.set("items", {"id": i}, i, ttl=60, tags=["sale"]) for i in range(40)]
    kept = cache.set("items", {"id": 99}, 99, ttl=60)
    assert cache.invalidate_tag("sale") == 40
    assert sum(conn.exists(k) for k in keys) == 0 and conn.exists(kept)
    assert not conn.exists("tag:sale")


def test_a_hundred_concurrent_misses_across_caches_make_one_origin_call(make_cache, conn):
    caches = [make_cache() for _ in range(10)]
    calls = []
    barrier = threading.Barrier(100)
    answers = []

    def origin():
        calls.append(1)
        threading.Event().wait(0.2)
        return {"price": 42}

    def caller(cache):
        barrier.wait()
        answers.append(cache.cache_api_call("quote", {"id": 1}, origin, 60))

    threads = [threading.Thread(target=caller, args=(caches[i % 10],)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(calls) == 1 and answers == [{"price": 42}] * 100
    assert list(conn.scan_iter(match="api_cache_lock:*", target_nodes=RedisCluster.PRIMARIES)) == []


def test_write_behind_loses_no_write_on_close(cluster_url, conn):
    cache = APICache(cluster_url, strategy="write_behind")
    for i in range(1000):
        cache.set("bulk", {"id": i}, i, ttl=600, tags=["bulk"])
    cache.close()
    assert sum(conn.exists(f"api_cache:bulk:id:{i}") for i in range(1000)) == 1000
    assert conn.scard("tag:bulk") == 1000


def test_an_applications_cluster_client_is_used_and_left_open(cluster_url, conn):
    client = RedisCluster.from_url(cluster_url, decode_responses=True)
    cache = APICache(client)
    assert cache.cache_api_call("e", {"id": 1}, lambda: [1], 60) == [1]
    assert cache.get("e", {"id": 1}) == [1]
    cache.close()
    assert client.ping()
    client.close()


def test_add_points_keeps_every_bucket_across_the_nodes(make_cache, conn, cluster_url):
    import asyncio
    import json
    import time

    from cachectl import AsyncAPICache

    start = (int(time.time()) // 3600 - 1) * 3600
    make_cache().add_points([(f"s{i}", float(i), start + 30) for i in range(12)])

    async def add_async():
        async with AsyncAPICache(cluster_url) as cache:
            await cache.add_points([(f"s{i}", 1.0, start + 40) for i in range(12)])

    asyncio.run(add_async())
    buckets = [f"agg:s{i}:1h:{start * 1000}" for i in range(12)]
    assert len(_nodes_holding(conn, buckets)) > 1
    for i, key in enumerate(buckets):
        data = json.loads(conn.hget(key, "data"))
        assert data["count"] == 2 and data["sum"] == i + 1.0
