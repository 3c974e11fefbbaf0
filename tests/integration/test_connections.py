"""Reaching Redis for real: TLS, ACL users, passwords, dead ports, unix sockets, replicas and
cluster detection, and the one-line errors each failure becomes."""

from __future__ import annotations

import json

import pytest
from redis.crc import key_slot

from cachectl.config import Settings, TLSConfig
from cachectl.devserver import CLUSTER_SLOTS, free_port
from cachectl.errors import (
    ConfigError,
    RedisAuthError,
    RedisError,
    RedisPermissionError,
    RedisReadOnly,
    RedisTimeout,
    RedisTLSError,
    RedisUnreachable,
)
from cachectl.store import NodeRef, Store
from tests.conftest import ACL_ADMIN_PASSWORD

# As in tests/integration/test_cluster_connections.py: every command but the dangerous ones
# (INFO among them), and one also refused every other way of telling a cluster node.
NO_DANGEROUS = "nodanger on >nodanger-pass ~* &* +@all -@dangerous"
BLIND = "blind on >blind-pass ~* &* +@all -@dangerous -cluster|myid -cluster|info -readonly"


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff sleeps redis-py's retries ask for, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr("redis.retry.sleep", asked.append)
    return asked


def assert_one_line_without(error, secret: str) -> None:
    assert "\n" not in error.message
    assert secret not in json.dumps(error.to_dict()) and secret not in str(error)


# -- TLS ------------------------------------------------------------------------------------


def test_tls_with_the_ca_connects(tls_redis):
    settings = Settings(url=tls_redis.url, tls=TLSConfig(ca_file=tls_redis.files.ca_file))
    with Store(settings) as store:
        store.execute("SET", "api_cache:status:no_params", "{}")
        assert list(store.scan()) == [b"api_cache:status:no_params"]


def test_tls_with_a_client_certificate_connects(tls_redis):
    files = tls_redis.files
    tls = TLSConfig(ca_file=files.ca_file, cert_file=files.client_cert, key_file=files.client_key)
    with Store(Settings(url=tls_redis.url, tls=tls)) as store:
        assert store.ping_latency(2)[0] >= 0


def test_tls_without_the_ca_fails_at_once_with_one_line(tls_redis, sleeps):
    with Store(Settings(url=tls_redis.url)) as store, pytest.raises(RedisTLSError) as caught:
        store.dbsize()
    error = caught.value
    assert error.message.startswith(f"TLS with Redis at {tls_redis.url} failed: ")
    assert "certificate verify failed" in error.message
    assert "\n" not in error.message
    assert sleeps == []  # a certificate that fails verification fails again: no retries


def test_tls_verification_can_be_switched_off(tls_redis):
    settings = Settings(url=tls_redis.url, tls=TLSConfig(verify=False))
    with Store(settings) as store:
        assert store.dbsize() == store.dbsize()


def test_plain_url_to_a_tls_server_hints_at_rediss(tls_redis, sleeps):
    plain = tls_redis.url.replace("rediss://", "redis://")
    with Store(Settings(url=plain, retries=0)) as store, pytest.raises(RedisUnreachable) as caught:
        store.dbsize()
    assert "rediss://" in caught.value.hint


def test_rediss_url_to_a_plain_server_says_it_does_not_speak_tls(redis_url, sleeps):
    url = redis_url.replace("redis://", "rediss://")
    settings = Settings(url=url, retries=0, connect_timeout=0.5)
    with Store(settings) as store, pytest.raises(RedisTLSError) as caught:
        store.dbsize()
    assert caught.value.message == (
        f"Redis at {url} does not speak TLS: it answered a plain-text PING"
    )
    assert "redis://" in caught.value.hint


# -- ACL users and passwords ----------------------------------------------------------------


def test_acl_user_without_unlink_gets_a_permission_error_naming_it(acl_redis, acl_url):
    with Store(Settings(url=acl_url)) as admin:
        admin.execute("SET", "api_cache:a", "1")
    url = acl_redis.url_for("limited", "limited-pass")
    with Store(Settings(url=url)) as store, pytest.raises(RedisPermissionError) as caught:
        store.unlink([b"api_cache:a"])
    error = caught.value
    assert error.message == "the ACL user 'limited' may not run UNLINK"
    assert error.command == "UNLINK"
    assert_one_line_without(error, "limited-pass")
    with Store(Settings(url=acl_url)) as admin:
        assert admin.exists_many([b"api_cache:a"]) == [True]


def test_read_only_acl_user_may_scan_but_not_write(acl_redis, acl_url):
    with Store(Settings(url=acl_url)) as admin:
        admin.execute("SET", "api_cache:a", "1")
    with Store(Settings(url=acl_redis.url_for("reader", "reader-pass"))) as store:
        assert list(store.scan()) == [b"api_cache:a"]
        with pytest.raises(RedisPermissionError, match="'reader' may not run SET"):
            store.execute("SET", "api_cache:b", "1")


def test_acl_user_without_info_still_connects_as_a_single_server(acl_redis, acl_url):
    with Store(Settings(url=acl_redis.url_for("noinfo", "noinfo-pass"))) as store:
        assert store.is_cluster is False
        assert store.dbsize() == 0


def test_a_user_refused_info_finds_a_single_server_without_guessing(make_redis):
    server = make_redis(password=ACL_ADMIN_PASSWORD, acl_users=[NO_DANGEROUS, BLIND])
    url = f"redis://nodanger:nodanger-pass@{server.host}:{server.port}/0"
    with Store(Settings(url=url)) as store:
        assert store.is_cluster is False
        store.execute("SET", "api_cache:a", "1")
        assert list(store.scan()) == [b"api_cache:a"]


def test_a_user_who_may_not_ask_is_told_to_choose_cluster_or_not(make_redis):
    server = make_redis(password=ACL_ADMIN_PASSWORD, acl_users=[BLIND])
    url = f"redis://blind:blind-pass@{server.host}:{server.port}/0"
    with Store(Settings(url=url)) as store, pytest.raises(RedisPermissionError) as caught:
        store.dbsize()
    error = caught.value
    assert error.message == (
        f"cluster mode could not be detected at redis://blind:****@{server.host}:{server.port}/0:"
        " INFO is refused to the ACL user 'blind', and so are CLUSTER MYID and READONLY"
    )
    assert "--cluster or --no-cluster" in error.hint and "grant the user INFO" in error.hint
    assert_one_line_without(error, "blind-pass")
    with Store(Settings(url=url, cluster=False)) as store:  # told: it works
        assert store.dbsize() == 0


def test_a_password_holding_url_characters_works_percent_encoded(make_redis):
    password = "p/a#s?s"
    server = make_redis(acl_users=[f"odd on >{password} ~* &* +@all"])
    url = f"redis://odd:p%2Fa%23s%3Fs@{server.host}:{server.port}/0"
    with Store(Settings(url=url)) as store:
        assert store.dbsize() == 0


def test_wrong_password_is_an_auth_error_that_never_shows_it(acl_redis, sleeps):
    settings = Settings(url=acl_redis.url_for("default", "not-the-pass-1234"))
    with Store(settings) as store, pytest.raises(RedisAuthError) as caught:
        store.dbsize()
    assert "refused the user name or password" in caught.value.message
    assert_one_line_without(caught.value, "not-the-pass-1234")
    assert sleeps == []  # a refused password is refused again: no retries


def test_password_from_settings_overrides_the_urls(acl_redis):
    url = acl_redis.url_for("default", "stale-pass-in-url")
    with Store(Settings(url=url, password=ACL_ADMIN_PASSWORD)) as store:
        assert store.dbsize() >= 0


def test_missing_password_says_one_is_needed(acl_redis):
    server = acl_redis.server
    settings = Settings(url=f"redis://{server.host}:{server.port}/0")
    with Store(settings) as store, pytest.raises(RedisAuthError, match="requires a password"):
        store.dbsize()


# -- unreachable ----------------------------------------------------------------------------


def test_unreachable_port_is_retried_then_reported_with_the_url_masked(sleeps):
    url = f"redis://ops:door-key-5678@127.0.0.1:{free_port()}/0"
    with Store(Settings(url=url, retries=2)) as store, pytest.raises(RedisUnreachable) as caught:
        store.dbsize()
    assert caught.value.message == (
        f"cannot connect to Redis at {url.replace('door-key-5678', '****')}: connection refused"
    )
    assert_one_line_without(caught.value, "door-key-5678")
    assert len(sleeps) == 2


def test_unresolvable_host_is_unreachable(sleeps):
    settings = Settings(url="redis://no-such-host.invalid:7000/0", retries=0)
    with Store(settings) as store, pytest.raises(RedisUnreachable, match="does not resolve"):
        store.dbsize()


def test_a_command_that_outlasts_the_timeout_is_a_timeout_error(redis_url):
    settings = Settings(url=redis_url, timeout=0.2, retries=0)
    with (
        Store(settings) as store,
        pytest.raises(RedisTimeout, match="not answer BLPOP within 0.2s"),
    ):
        store.execute("BLPOP", "nothing-will-come", 5)


# -- kinds of server ------------------------------------------------------------------------


def test_unix_socket_connection(make_redis, tmp_path):
    socket_path = str(tmp_path / "redis.sock")
    make_redis(extra_args=("--unixsocket", socket_path, "--unixsocketperm", "700"))
    with Store(Settings(url=f"unix://{socket_path}")) as store:
        store.execute("SET", "api_cache:status:no_params", "{}")
        assert store.primaries() == [NodeRef(socket_path)]
        assert list(store.scan()) == [b"api_cache:status:no_params"]
        assert store.server_mode() == "standalone"


def test_cluster_is_detected_from_the_server(redis_cluster, cluster_url):
    with Store(Settings(url=cluster_url)) as store:
        assert store.is_cluster
        assert store.server_mode() == "cluster"
        assert {node.port for node in store.primaries()} == {n.port for n in redis_cluster.nodes}


def test_single_server_is_not_taken_for_a_cluster(redis_url):
    with Store(Settings(url=redis_url)) as store:
        assert not store.is_cluster
        assert store.server_mode() == "standalone"


def test_cluster_node_used_as_one_server_hints_at_cluster_setting(cluster_url):
    key = "api_cache:products:id:9"
    assert key_slot(key.encode()) >= CLUSTER_SLOTS // 3  # not on the first node, the URL's
    with (
        Store(Settings(url=cluster_url, cluster=False)) as store,
        pytest.raises(RedisError) as caught,
    ):
        store.execute("SET", key, "{}")
    assert "cluster: true" in caught.value.hint


def test_cluster_forced_on_a_plain_server_is_one_clear_line(redis_url):
    settings = Settings(url=redis_url, cluster=True, sources={"cluster": "flag --cluster"})
    with Store(settings) as store, pytest.raises(RedisError) as caught:
        store.dbsize()
    assert caught.value.message == (
        f"the server at {redis_url} is not a cluster node, but cluster mode is on (flag --cluster)"
    )
    assert "drop --cluster" in caught.value.hint


def test_cluster_has_only_database_zero(cluster_url):
    settings = Settings(url=cluster_url.rsplit("/", 1)[0] + "/2")
    with Store(settings) as store, pytest.raises(ConfigError, match="only database 0"):
        store.dbsize()


def test_replica_is_named_and_refuses_writes(make_redis):
    primary = make_redis()
    replica = make_redis(extra_args=("--replicaof", primary.host, str(primary.port)))
    with Store(Settings(url=replica.url)) as store:
        assert store.server_mode() == "replica"
        with pytest.raises(RedisReadOnly, match="read-only replica and refused UNLINK"):
            store.unlink([b"api_cache:a"])


def _connections_received(server) -> int:
    with server.client() as admin:
        return int(admin.info("stats")["total_connections_received"])


def test_detecting_a_single_server_costs_no_second_connection(redis_server, redis_url):
    before = _connections_received(redis_server)
    with Store(Settings(url=redis_url)) as store:  # cluster: detect
        assert not store.is_cluster
        store.execute("PING")
        store.dbsize()
    # One for the store, one for our own INFO: the cluster probe reused the store's.
    assert _connections_received(redis_server) - before == 2


def test_detection_for_another_database_still_asks_database_0(redis_server, redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/3"
    with Store(Settings(url=url)) as store:
        assert not store.is_cluster
        store.execute("SET", "k", "v")
    with redis_server.client() as admin:
        admin.select(3)
        assert admin.get("k") == b"v"
        admin.flushdb()
