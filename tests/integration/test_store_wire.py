"""The store's connection-level I/O (cachectl/store_wire.py): which way replies are read, and
a dialogue's connection never reused in a state it was left in, a sent-ahead chain run out."""

from __future__ import annotations

import pytest

from cachectl import store_wire
from cachectl.config import Settings
from cachectl.errors import RedisError
from cachectl.store import Store


def _path_of(store: Store) -> str:
    pool = store.client.connection_pool
    conn = pool.get_connection()
    try:
        return store_wire.reply_path(conn)
    finally:
        pool.release(conn)


def test_replies_are_read_by_hiredis_with_the_pinned_redis_py(redis_url):
    # The redis bound in pyproject.toml holds while this passes: a redis-py that moved its
    # hiredis parser would still work (one by one), only slower, and this says so.
    pytest.importorskip("hiredis")
    with Store(Settings(url=redis_url)) as store:
        assert _path_of(store) == store_wire.HIREDIS


def test_without_redis_pys_hiredis_parser_replies_are_read_one_by_one_and_alike(
    redis_url, monkeypatch
):
    groups = [[("SET", f"w{i}", i), ("INCR", f"w{i}")] for i in range(50)]
    groups.append([("SET", "w-x", "1"), ("NO-SUCH-COMMAND",)])
    with Store(Settings(url=redis_url)) as store:
        fast = store.transactions(groups)
        fast_types = store.types(["w1", "missing"])
    monkeypatch.setattr(store_wire, "_HiredisParser", None)
    with Store(Settings(url=redis_url)) as store:
        assert _path_of(store) == store_wire.ONE_BY_ONE
        slow = store.transactions(groups)
        assert store.types(["w1", "missing"]) == fast_types == ["string", "none"]
    assert slow[:-1] == [[b"OK", i + 1] for i in range(50)] == fast[:-1]
    assert isinstance(slow[-1], RedisError) and isinstance(fast[-1], RedisError)
    assert slow[-1].message == fast[-1].message


def test_a_client_of_another_kind_is_read_one_by_one():
    import fakeredis

    client = fakeredis.FakeRedis()
    client.set("k", "v")
    with Store(Settings(url="redis://localhost:1/0"), client=client) as store:
        assert _path_of(store) == store_wire.ONE_BY_ONE
        assert store.types(["k", "missing"]) == ["string", "none"]


def test_an_exchange_gives_refused_replies_as_errors_in_place(redis_url):
    def talk():
        replies = yield [("SET", "x", "1"), ("NO-SUCH-COMMAND",), ("GET", "x")]
        return replies

    with Store(Settings(url=redis_url)) as store:
        [node] = store.primaries()
        ok, refused, value = store.exchange(node, talk(), "SET")
    assert ok == b"OK" and value == b"1"
    assert isinstance(refused, RedisError) and "no-such-command" in refused.message.lower()


def test_an_exchange_that_stops_inside_multi_never_lends_that_connection_again(redis_url):
    def talk():
        yield [("MULTI",)]
        raise RuntimeError("the dialogue gave up inside MULTI")

    with Store(Settings(url=redis_url)) as store:
        [node] = store.primaries()
        with pytest.raises(RuntimeError):
            store.exchange(node, talk(), "MULTI")
        # On a connection still in MULTI this SET would only be QUEUED.
        assert store.execute("SET", "after-multi", "1") is True
        assert store.execute("GET", "after-multi") == b"1"


def test_a_chain_runs_until_following_says_none(redis_url):
    with Store(Settings(url=redis_url)) as store:
        store.execute("MSET", *[x for i in range(30) for x in (f"all{i}", i)])
        [node] = store.primaries()

        def following(reply):
            return None if int(reply[0]) == 0 else ("SCAN", reply[0], "MATCH", "all*")

        keys = {
            k
            for reply in store.pages(node, ("SCAN", 0, "MATCH", "all*"), following, "SCAN")
            for k in reply[1]
        }
    assert keys == {f"all{i}".encode() for i in range(30)}
