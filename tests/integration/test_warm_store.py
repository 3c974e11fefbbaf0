"""The store's bulk write primitives that warm relies on: transactions() and send_many()."""

from __future__ import annotations

import socket

import pytest

from cachectl.config import Settings
from cachectl.errors import RedisError, RedisPermissionError
from cachectl.store import Store


def test_each_group_is_its_own_transaction_in_one_round_trip(redis_url, redis_server):
    with redis_server.client() as conn:
        conn.set("a-string", "x")
    with Store(Settings(url=redis_url)) as store:
        results = store.transactions(
            [
                [("SADD", "tag:t", "k1"), ("SET", "k1", "v1", "PX", 60000)],
                [("SADD", "a-string", "k2"), ("SET", "k2", "v2")],  # WRONGTYPE at run time
                [("SET", "k3", "v3"), ("NO-SUCH-COMMAND", "x")],  # refused while queued
            ]
        )
    assert results[0] == [1, b"OK"]
    # A runtime error does not undo the rest of its group: that is why warm checks types first.
    assert isinstance(results[1][0], RedisError) and "WRONGTYPE" in results[1][0].message
    assert results[1][1] == b"OK"
    # A command refused while queued discards its whole group.
    assert isinstance(results[2], RedisError) and "no-such-command" in results[2].message.lower()
    with redis_server.client() as conn:
        assert conn.get("k1") == b"v1" and conn.pttl("k1") > 0
        assert conn.get("k3") is None


def test_a_group_refused_by_the_acl_names_the_command(acl_redis, acl_url):
    with Store(Settings(url=acl_redis.url_for("reader", "reader-pass"))) as store:
        results = store.transactions([[("SET", "k", "v")]])
    assert isinstance(results[0], RedisPermissionError)


def test_transactions_need_a_single_server(cluster_url):
    with Store(Settings(url=cluster_url)) as store, pytest.raises(TypeError):
        store.transactions([[("SET", "k", "v")]])


def test_send_many_routes_each_command_by_slot_and_returns_errors_in_place(
    cluster_url, redis_cluster
):
    keys = [f"key:{i}" for i in range(50)]
    with Store(Settings(url=cluster_url)) as store:
        store.execute("SET", "a-string", "x")
        replies = store.send_many(
            [("SET", k, k, "PX", 60000) for k in keys]
            + [("SADD", "a-string", "m"), ("SADD", "s", "m")]
        )
        assert replies[:50] == [True] * 50
        assert isinstance(replies[50], RedisError) and "WRONGTYPE" in replies[50].message
        assert replies[51] == 1
        assert store.pipelined("GET", keys) == [k.encode() for k in keys]


def test_a_connection_killed_between_batches_is_reconnected_and_replies_stay_in_step(
    redis_url, redis_server
):
    with Store(Settings(url=redis_url)) as store:
        first = store.transactions([[("SET", "a", "1")], [("SADD", "a", "x")]])
        assert first[0] == [b"OK"] and isinstance(first[1][0], RedisError)
        own_id = store.execute("CLIENT", "ID")  # the pool's one connection
        with redis_server.client() as admin:
            assert admin.execute_command("CLIENT", "KILL", "ID", own_id) == 1
        # The pooled connection is dead: the batch is sent again on a fresh one, and every
        # reply lands with its own group (nothing left over from the batch before).
        groups = [[("SET", f"k{i}", i), ("INCR", f"k{i}")] for i in range(300)]
        replies = store.transactions(groups)
        assert replies == [[b"OK", i + 1] for i in range(300)]
        assert store.types(["a", "k1", "missing"]) == ["string", "string", "none"]


def test_arguments_hiredis_does_not_pack_are_packed_by_redis_py(redis_url):
    with Store(Settings(url=redis_url)) as store:
        assert store.transactions([[("SET", "m", bytearray(b"view"))]]) == [[b"OK"]]
        assert store.execute("GET", "m") == b"view"


def test_replies_bigger_than_one_socket_read_over_tls(tls_redis):
    from cachectl.config import TLSConfig

    settings = Settings(url=tls_redis.url, tls=TLSConfig(ca_file=tls_redis.files.ca_file))
    value = b"v" * 5000
    keys = [f"big{i}" for i in range(100)]
    with Store(settings) as store:
        try:
            groups = [[("SET", key, value), ("GET", key)] for key in keys]
            # ~500 KB of replies: many socket reads, every reply with its own group.
            assert store.transactions(groups) == [[b"OK", value]] * 100
            assert store.types([*keys, "none"]) == ["string"] * 100 + ["none"]
        finally:
            store.execute("UNLINK", *keys)  # the TLS server is shared by the session's tests


def test_a_connection_lost_in_the_middle_of_a_round_trip_is_retried_whole(redis_url, monkeypatch):
    import redis.connection

    real_send = redis.connection.AbstractConnection.send_packed_command
    lost = []

    def send_then_lose_the_socket(self, command, check_health=True):
        real_send(self, command, check_health)
        if not lost:  # the commands are out; the replies will never be read on this socket
            lost.append(True)
            self._sock.shutdown(socket.SHUT_RDWR)

    with Store(Settings(url=redis_url)) as store:
        store.execute("PING")
        monkeypatch.setattr(
            redis.connection.AbstractConnection, "send_packed_command", send_then_lose_the_socket
        )
        replies = store.transactions([[("SET", "k", "v"), ("GET", "k")], [("SADD", "k", "m")]])
        types = store.types(["k", "nothing"])
    assert lost == [True]
    assert replies[0] == [b"OK", b"v"] and "WRONGTYPE" in replies[1][0].message
    assert types == ["string", "none"]
