"""The Redis service layer against real redis-server processes: one server and a 3-primary
cluster. SCAN over every primary, UNLINK grouped by slot, pipelined reads, and a server that
dies in the middle of a scan."""

from __future__ import annotations

import pytest

from cachectl.config import Settings
from cachectl.devserver import RedisCluster
from cachectl.errors import RedisUnreachable
from cachectl.store import Store


@pytest.fixture(params=["single", pytest.param("cluster", marks=pytest.mark.cluster)])
def deployment(request):
    """(store, a raw redis-py client on the same data), for a single server and for the cluster."""
    if request.param == "single":
        url = request.getfixturevalue("redis_url")
        raw = request.getfixturevalue("redis_server").client()
    else:
        url = request.getfixturevalue("cluster_url")
        raw = request.getfixturevalue("redis_cluster").client()
    with Store(Settings(url=url)) as store, raw:
        yield store, raw


@pytest.fixture
def no_backoff(monkeypatch):
    """Retries still happen, without the backoff sleeps; returns the sleeps asked for."""
    sleeps: list[float] = []
    monkeypatch.setattr("redis.retry.sleep", sleeps.append)
    return sleeps


def write(raw, keys, value=b"{}", ex=None) -> None:
    pipe = raw.pipeline(transaction=False)
    for key in keys:
        pipe.set(key, value, ex=ex)
    pipe.execute()


def test_scan_finds_every_key_on_every_primary(deployment):
    store, raw = deployment
    written = {f"api_cache:products:id:{i}".encode() for i in range(5000)}
    write(raw, written)

    found = list(store.scan(match="api_cache:*", count=250))

    assert set(found) == written
    assert store.dbsize() == 5000
    per_node: dict[str, int] = {}
    for node, keys in store.scan_nodes(count=250):
        per_node[node.name] = per_node.get(node.name, 0) + len(keys)
    assert per_node == {node.name: client.dbsize() for node, client in store.for_each_primary()}
    if store.is_cluster:
        assert len(per_node) == 3 and all(per_node.values())


def test_scan_filters_by_match_and_type(deployment):
    store, raw = deployment
    raw.sadd("tag:electronics", "api_cache:products:id:1")
    raw.sadd("tag:books", "api_cache:products:id:2")
    raw.set("tag:not-a-set", "x")
    raw.sadd("depends_on:product:1", "api_cache:products:id:1")

    assert set(store.scan(match="tag:*", type="set")) == {b"tag:electronics", b"tag:books"}


def test_unlink_removes_exactly_the_given_keys_across_slots(deployment):
    store, raw = deployment
    doomed = [f"api_cache:users:id:{i}".encode() for i in range(1200)]
    kept = [f"api_cache:orders:id:{i}".encode() for i in range(300)]
    write(raw, doomed, ex=3600)
    write(raw, kept, value=b'{"ok":true}', ex=3600)
    missing = [f"api_cache:gone:{i}".encode() for i in range(40)]
    batches = []

    removed = store.unlink(
        doomed + missing, batch_size=97, on_batch=lambda sent, n: batches.append((sent, n))
    )

    assert removed == 1200
    assert sum(sent for sent, _ in batches) == 1240 and sum(n for _, n in batches) == 1200
    assert not any(store.exists_many(doomed))
    assert store.pipelined("GET", kept) == [b'{"ok":true}'] * 300
    assert all(0 < ttl <= 3600 for ttl in store.ttls(kept))
    assert store.dbsize() == 300


def test_unlink_sends_one_command_per_slot_in_each_batch(deployment):
    store, raw = deployment
    # 20 hash tags: each tag's 25 keys share one slot, so a cluster needs 20 UNLINKs.
    keys = [f"{{user{t}}}:api_cache:profile:{i}".encode() for t in range(20) for i in range(25)]
    write(raw, keys)
    for _, client in store.for_each_primary():
        client.config_resetstat()

    assert store.unlink(keys, batch_size=1000) == 500

    calls = sum(
        client.info("commandstats").get("cmdstat_unlink", {}).get("calls", 0)
        for _, client in store.for_each_primary()
    )
    assert calls == (20 if store.is_cluster else 1)


def test_ttls_types_and_memory_usage(deployment):
    store, raw = deployment
    raw.set("api_cache:status:no_params", "x" * 500, ex=600)
    raw.sadd("tag:status", "api_cache:status:no_params")
    raw.hset("cache_metrics:hits", "total", 3)
    keys = ["api_cache:status:no_params", "tag:status", "cache_metrics:hits", "missing"]

    ttls = store.ttls(keys)
    assert 0 < ttls[0] <= 600 and ttls[1:] == [-1, -1, -2]
    assert 0 < store.ttls(keys[:1], ms=True)[0] <= 600_000
    assert store.types(keys) == ["string", "set", "hash", "none"]
    usage = store.memory_usage(keys)
    assert usage[0] > 500 and usage[1] > 0 and usage[2] > 0 and usage[3] is None
    assert store.exists_many(keys) == [True, True, True, False]


def test_set_members_in_batches_and_by_sscan(deployment):
    store, raw = deployment
    big = {f"api_cache:products:id:{i}".encode() for i in range(1500)}
    raw.sadd("tag:big", *big)
    raw.sadd("depends_on:product:7", "api_cache:products:id:7")

    assert set(store.sscan("tag:big", count=100)) == big
    assert store.smembers_batched(["depends_on:product:7", "tag:none"]) == [
        {b"api_cache:products:id:7"},
        set(),
    ]


# -- a server that dies mid-scan ------------------------------------------------------------


def test_scan_resumes_after_the_server_restarts(make_redis):
    server = make_redis()
    with server.client() as raw:
        write(raw, [f"before:{i}" for i in range(3000)])
    store = Store(Settings(url=server.url))
    pages = store.scan_nodes(count=100)
    next(pages)

    server.kill()
    server.restart()  # persistence is off: it comes back empty
    with server.client() as raw:
        write(raw, [f"after:{i}" for i in range(3000)])
    rest = [key for _, keys in pages for key in keys]

    assert rest  # the scan went on against the restarted server, from its cursor
    assert all(key.startswith(b"after:") for key in rest)
    store.close()


def test_scan_reports_how_far_it_got_when_the_server_stays_down(make_redis, no_backoff):
    server = make_redis()
    with server.client() as raw:
        write(raw, [f"k:{i}" for i in range(3000)])
    store = Store(Settings(url=server.url, retries=2))
    pages = store.scan_nodes(count=100)
    _, first = next(pages)

    server.kill()
    with pytest.raises(RedisUnreachable) as caught:
        list(pages)

    error = caught.value
    assert error.details == {
        "node": f"127.0.0.1:{server.port}",
        "nodes_done": 0,
        "nodes_total": 1,
        "keys_found": len(first),
    }
    assert "\n" not in error.message
    assert error.message.startswith(f"cannot connect to Redis at {server.url}: connection refused")
    assert f"after 0 of 1 nodes and {len(first)} keys" in error.message
    assert no_backoff  # it retried before giving up
    store.close()


@pytest.fixture
def own_cluster():
    """A cluster for this test alone: the test kills one of its nodes, and a restarted node
    refuses writes (CLUSTERDOWN) for a while, which the next test would trip on."""
    with RedisCluster(3) as cluster:
        with cluster.client() as raw:
            write(raw, [f"k:{i}" for i in range(3000)])
        yield cluster


@pytest.mark.cluster
def test_cluster_scan_rides_out_a_node_restart(own_cluster):
    store = Store(Settings(url=own_cluster.url))
    nodes = store.primaries()
    store.dbsize()  # every node client now holds a connection that the kill will break
    pages = store.scan_nodes(count=100)
    next(pages)

    last = next(n for n in own_cluster.nodes if n.port == nodes[-1].port)
    last.kill()
    last.restart()
    seen_nodes = {node for node, _ in pages}

    assert nodes[-1] in seen_nodes
    store.close()


@pytest.mark.cluster
def test_cluster_scan_names_the_node_that_stays_down(own_cluster, no_backoff):
    store = Store(Settings(url=own_cluster.url, retries=1))
    nodes = store.primaries()
    pages = store.scan_nodes(count=100)
    found = len(next(pages)[1])

    last = next(n for n in own_cluster.nodes if n.port == nodes[-1].port)
    last.kill()
    with pytest.raises(RedisUnreachable) as caught:
        for node, keys in pages:
            if node != nodes[-1]:
                found += len(keys)

    assert caught.value.details == {
        "node": nodes[-1].name,
        "nodes_done": 2,
        "nodes_total": 3,
        "keys_found": found,
    }
    store.close()


def test_epoch_changes_when_the_stores_connections_are_broken_and_made_again(deployment):
    """What a restart does to a run's connections, without the restart: a user who may not send
    INFO still sees it, by the connections made again (redis-py's silent reconnect included)."""
    store, raw = deployment
    before = store.epoch()
    assert store.epoch() == before  # nothing happened: a pass would be trusted
    assert before.run_ids and before.reconnects is not None and not before.blind
    kill = {"target_nodes": "primaries"} if store.is_cluster else {}
    raw.client_kill_filter(_type="normal", skipme=True, **kill)
    after = store.epoch()
    assert after.run_ids == before.run_ids
    assert after != before
    assert sum(after.reconnects.values()) > sum(before.reconnects.values())


def test_epoch_holds_when_a_connection_was_closed_on_purpose(deployment):
    """A connection closed on purpose (a pool trimmed by redis-py as the cluster client starts,
    a scan left with a page asked for ahead) is made again quietly: no restart, so no extra
    pass for a run."""
    store, raw = deployment
    keys = [f"api_cache:e:id:{i}" for i in range(200)]
    write(raw, keys)
    with Store(store.settings) as fresh:
        before = fresh.epoch()
        assert sum(fresh.exists_many(keys)) == 200
        pages = fresh.scan_nodes(match="api_cache:*", count=10)
        next(pages)
        pages.close()
        assert list(fresh.scan(match="api_cache:*", count=10))
        assert fresh.epoch() == before
