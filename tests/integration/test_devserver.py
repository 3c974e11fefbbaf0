"""The throwaway redis-server fixtures are real, isolated and shaped as the other tests expect."""

from __future__ import annotations

import socket
import sys

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from cachectl import devserver
from cachectl.devserver import DevServerError, RedisCluster, RedisServer, make_tls_files

# A refused connection should fail the assertion at once, not after redis-py's backoff.
NO_RETRY = Retry(NoBackoff(), 0)


def _slot_owners(conn) -> dict[int, tuple[int, int]]:
    """CLUSTER SLOTS as {owner port: (first slot, last slot)}."""
    return {
        int(owner[1]): (int(first), int(last)) for first, last, owner, *_ in conn.cluster("SLOTS")
    }


def test_single_node_answers_and_round_trips_a_value(redis_url):
    conn = redis.Redis.from_url(redis_url)
    assert conn.ping() is True
    conn.set("greeting", "hello")
    assert conn.get("greeting") == b"hello"
    assert redis_url.startswith("redis://127.0.0.1:")
    assert ":6379/" not in redis_url


def test_redis_url_hands_each_test_an_empty_server(redis_server, request):
    with redis_server.client() as conn:
        conn.set("left-over", "1")
    request.getfixturevalue("redis_url")
    with redis_server.client() as conn:
        assert conn.dbsize() == 0


def test_server_listens_on_loopback_only_and_never_persists(redis_server):
    with redis_server.client(decode_responses=True) as conn:
        config = conn.config_get("*")
    assert config["bind"] == "127.0.0.1"
    assert config["save"] == ""
    assert config["appendonly"] == "no"


def test_password_with_url_special_characters_survives_the_url(make_redis):
    server = make_redis(password="p@ss:w/rd")
    assert redis.Redis.from_url(server.url).ping() is True
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=server.host, port=server.port, password="wrong", retry=NO_RETRY).ping()


def test_cluster_has_three_primaries_covering_every_slot(redis_cluster):
    views = []
    for node in redis_cluster.nodes:
        with node.client() as conn:
            views.append(_slot_owners(conn))
    assert all(view == views[0] for view in views), "every node sees the same slot owners"
    owners = views[0]
    assert sorted(owners) == sorted(node.port for node in redis_cluster.nodes)
    ranges = sorted(owners.values())
    assert ranges[0][0] == 0 and ranges[-1][1] == 16383
    assert sum(last - first + 1 for first, last in ranges) == 16384


def test_cluster_client_write_lands_on_the_node_owning_its_slot(cluster_url, redis_cluster):
    client = redis_cluster.client()
    key = "api_cache:user_profile:id:123"
    client.set(key, "{}")
    slot = client.keyslot(key)
    with redis_cluster.nodes[0].client() as conn:
        owners = _slot_owners(conn)
    owner_port = next(port for port, (first, last) in owners.items() if first <= slot <= last)
    for node in redis_cluster.nodes:
        with node.client() as conn:
            if node.port == owner_port:
                assert conn.get(key) == b"{}"
            else:
                with pytest.raises(redis.exceptions.MovedError) as moved:
                    conn.get(key)
                assert moved.value.port == owner_port


def test_cluster_url_hands_each_test_every_primary_empty(redis_cluster, request):
    client = redis_cluster.client()
    for i in range(30):
        client.set(f"left-over:{i}", "1")
    request.getfixturevalue("cluster_url")
    for node in redis_cluster.nodes:
        with node.client() as conn:
            assert conn.dbsize() == 0


def test_tls_server_accepts_clients_that_trust_the_ca(tls_redis):
    assert tls_redis.url.startswith("rediss://127.0.0.1:")
    conn = redis.Redis.from_url(tls_redis.url, ssl_ca_certs=tls_redis.files.ca_file)
    assert conn.ping() is True
    with_client_cert = redis.Redis.from_url(
        tls_redis.url,
        ssl_ca_certs=tls_redis.files.ca_file,
        ssl_certfile=tls_redis.files.client_cert,
        ssl_keyfile=tls_redis.files.client_key,
    )
    assert with_client_cert.ping() is True


def test_tls_server_refuses_clients_without_the_ca_or_without_tls(tls_redis):
    server = tls_redis.server
    with pytest.raises(redis.ConnectionError, match="(?i)certificate"):
        redis.Redis(host=server.host, port=server.port, ssl=True, retry=NO_RETRY).ping()
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host=server.host, port=server.port, socket_timeout=2, retry=NO_RETRY).ping()


def test_openssl_certificates_serve_tls_when_trustme_is_missing(make_redis, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trustme", None)
    files = make_tls_files(tmp_path)
    server = make_redis(tls=files)
    assert server.client().ping() is True
    conn = redis.Redis.from_url(
        server.url,
        ssl_ca_certs=files.ca_file,
        ssl_certfile=files.client_cert,
        ssl_keyfile=files.client_key,
    )
    assert conn.ping() is True


def test_acl_admin_needs_the_password(acl_url, acl_redis):
    assert redis.Redis.from_url(acl_url).ping() is True
    server = acl_redis.server
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host=server.host, port=server.port, retry=NO_RETRY).set("k", "v")


def test_acl_limited_user_writes_and_scans_but_cannot_delete(acl_url, acl_redis):
    conn = redis.Redis.from_url(acl_redis.url_for("limited", "limited-pass"))
    conn.set("api_cache:a:no_params", "{}")
    conn.sadd("tag:t", "api_cache:a:no_params")
    assert conn.get("api_cache:a:no_params") == b"{}"
    assert list(conn.scan_iter(match="api_cache:*")) == [b"api_cache:a:no_params"]
    for command in ("UNLINK", "DEL"):
        with pytest.raises(redis.exceptions.NoPermissionError, match=command.lower()):
            conn.execute_command(command, "api_cache:a:no_params")
    with pytest.raises(redis.exceptions.NoPermissionError, match="flushall"):
        conn.flushall()
    assert conn.exists("api_cache:a:no_params") == 1


def test_acl_reader_reads_scans_and_sees_info_but_cannot_write(acl_url, acl_redis):
    redis.Redis.from_url(acl_url).set("k", "v")
    conn = redis.Redis.from_url(acl_redis.url_for("reader", "reader-pass"))
    assert conn.get("k") == b"v"
    assert list(conn.scan_iter()) == [b"k"]
    assert "redis_version" in conn.info("server")
    with pytest.raises(redis.exceptions.NoPermissionError, match="set"):
        conn.set("k", "w")


def test_acl_noinfo_user_does_everything_but_info(acl_url, acl_redis):
    conn = redis.Redis.from_url(acl_redis.url_for("noinfo", "noinfo-pass"))
    conn.set("k", "v")
    assert conn.unlink("k") == 1
    with pytest.raises(redis.exceptions.NoPermissionError, match="info"):
        conn.info()


def test_killed_server_restarts_on_the_same_port_and_empty(make_redis):
    server = make_redis()
    port = server.port
    with server.client() as conn:
        conn.set("k", "v")
    server.kill()
    assert not server.running
    with pytest.raises(redis.ConnectionError):
        server.client(socket_connect_timeout=1, retry=NO_RETRY).ping()
    server.restart()
    assert server.port == port
    with server.client() as conn:
        assert conn.ping() is True
        assert conn.exists("k") == 0


def test_failed_start_reports_the_servers_log_and_leaves_nothing_behind():
    server = RedisServer(extra_args=["--no-such-directive", "yes"])
    with pytest.raises(DevServerError, match="no-such-directive"):
        server.start()
    assert not server.running
    assert server.directory is None


def test_a_port_taken_meanwhile_is_replaced_by_a_free_one(make_redis, monkeypatch):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        real_free_port = devserver.free_port
        offers = iter([taken])
        monkeypatch.setattr(devserver, "free_port", lambda: next(offers, None) or real_free_port())
        server = make_redis()
        assert server.port != taken
        assert server.client().ping() is True


def test_a_port_asked_for_is_never_swapped(make_redis):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(DevServerError, match="Address already in use"):
            make_redis(port=taken)


def test_missing_redis_server_is_named_with_the_fix(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert devserver.find_redis_server() is None
    with pytest.raises(DevServerError, match="redis-server not found on PATH") as raised:
        RedisServer().start()
    assert "apt-get install redis-server" in raised.value.hint


@pytest.mark.cluster
def test_killed_cluster_node_restarts_into_the_cluster_with_its_slots():
    with RedisCluster(3) as cluster:
        node = cluster.nodes[1]
        with node.client() as conn:
            slots_before = _slot_owners(conn)
        node.kill()
        node.restart()
        cluster.wait_until_ok()
        with node.client() as conn:
            assert _slot_owners(conn) == slots_before
        client = cluster.client()
        for i in range(30):
            client.set(f"after-restart:{i}", i)
        assert sum(n.client().dbsize() for n in cluster.nodes) == 30
