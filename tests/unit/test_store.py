"""The Redis service layer on fakeredis: pacing, batching, scanning, pipelined reads, and the
translation of redis-py's errors into cachectl's. Real servers are in tests/integration."""

from __future__ import annotations

import json
import ssl

import fakeredis
import pytest
import redis
from redis import exceptions as rx
from redis.cluster import RedisCluster

from cachectl.config import Settings, TLSConfig
from cachectl.errors import (
    ConfigError,
    ExitCode,
    RedisAuthError,
    RedisClusterDown,
    RedisError,
    RedisPermissionError,
    RedisReadOnly,
    RedisTimeout,
    RedisTLSError,
    RedisUnreachable,
)
from cachectl.store import NodeRef, Pacer, Store, _cluster_enabled

PASSWORD = "hunter2-very-secret"
# Nothing listens on port 1; these tests never connect anyway.
URL = f"redis://ops:{PASSWORD}@cache.internal:1/0"


class FakeClock:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self):
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class RecordingPacer:
    def __init__(self):
        self.taken: list[int] = []

    def take(self, n: int = 1) -> None:
        self.taken.append(n)


@pytest.fixture
def fake():
    return fakeredis.FakeRedis()


@pytest.fixture
def store(fake):
    return Store(Settings(url=URL, scan_count=10, batch_size=100), client=fake)


# -- Pacer ----------------------------------------------------------------------------------


def test_pacer_without_rate_never_sleeps():
    clock = FakeClock()
    pacer = Pacer(None, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        pacer.take(1000)
    assert clock.sleeps == []


def test_pacer_lets_one_seconds_worth_through_at_once():
    clock = FakeClock()
    pacer = Pacer(100, clock=clock, sleep=clock.sleep)
    pacer.take(60)
    pacer.take(40)
    assert clock.sleeps == []


def test_pacer_holds_the_long_run_rate_whatever_the_batch_size():
    clock = FakeClock()
    pacer = Pacer(100, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(10):
        pacer.take(250)
    # 2,500 units at 100/s, of which the first 100 ride on the full bucket.
    assert clock.now - start == pytest.approx(24.0)


def test_pacer_refills_while_the_caller_is_busy_elsewhere():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    pacer.take(10)
    clock.now += 0.5  # half a second of other work refills half the bucket
    pacer.take(5)
    assert clock.sleeps == []
    pacer.take(5)
    assert clock.sleeps == [pytest.approx(0.5)]


def test_pacer_bucket_never_holds_more_than_one_second():
    clock = FakeClock()
    pacer = Pacer(10, clock=clock, sleep=clock.sleep)
    clock.now += 3600  # an hour idle earns no hour-long burst
    pacer.take(30)
    assert clock.sleeps == [pytest.approx(2.0)]


@pytest.mark.parametrize("rate", [0, -5])
def test_pacer_rejects_a_rate_that_is_not_positive(rate):
    with pytest.raises(ConfigError):
        Pacer(rate)


# -- laziness and connection settings -------------------------------------------------------


def test_a_store_builds_its_client_on_first_use_only(monkeypatch):
    built = []
    monkeypatch.setattr(
        redis, "Redis", lambda **kwargs: built.append(kwargs) or fakeredis.FakeRedis()
    )
    store = Store(Settings(url="redis://127.0.0.1:1/0", cluster=False))
    assert built == []
    assert store.client is store.client
    assert len(built) == 1


def test_settings_credentials_override_the_urls():
    settings = Settings(
        url="redis://urluser:urlpass@10.0.0.5:7000/3",
        username="ops",
        password="from-settings",
        cluster=False,
    )
    kwargs = Store(settings).client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("ops", "from-settings")
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("10.0.0.5", 7000, 3)


def test_url_credentials_are_used_when_settings_have_none():
    kwargs = Store(Settings(url=URL, cluster=False)).client.connection_pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"]) == ("ops", PASSWORD)


def test_keys_come_back_as_bytes_and_timeouts_come_from_settings():
    settings = Settings(url=URL, cluster=False, connect_timeout=1.5, timeout=7.0)
    kwargs = Store(settings).client.connection_pool.connection_kwargs
    assert kwargs["decode_responses"] is False
    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1.5, 7.0)


def test_rediss_url_carries_the_tls_settings(tmp_path):
    files = [tmp_path / name for name in ("ca.pem", "c.pem", "c.key")]
    for file in files:
        file.write_text("")
    tls = TLSConfig(ca_file=str(files[0]), cert_file=str(files[1]), key_file=str(files[2]))
    client = Store(Settings(url="rediss://h:1/0", tls=tls, cluster=False)).client
    kwargs = client.connection_pool.connection_kwargs
    assert issubclass(client.connection_pool.connection_class, redis.SSLConnection)
    assert (kwargs["ssl_ca_certs"], kwargs["ssl_certfile"], kwargs["ssl_keyfile"]) == tuple(
        map(str, files)
    )
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_check_hostname"] is True


def test_tls_verification_can_be_turned_off():
    settings = Settings(url="rediss://h:1/0", tls=TLSConfig(verify=False), cluster=False)
    kwargs = Store(settings).client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "none" and kwargs["ssl_check_hostname"] is False


def test_unix_socket_url_connects_by_path():
    client = Store(Settings(url="unix:///run/redis/redis.sock?db=2")).client
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["path"], kwargs["db"]) == ("/run/redis/redis.sock", 2)


def test_connection_kwargs_are_public_and_fresh_each_call():
    """The library builds its asyncio clients from them: same options as the store's client."""
    tls = TLSConfig(ca_file="/etc/ca.pem", verify=False)
    store = Store(Settings(url="rediss://ops:pw@h:7000/2", tls=tls, timeout=3.0, cluster=False))
    kwargs = store.connection_kwargs()
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("h", 7000, 2)
    assert (kwargs["username"], kwargs["password"]) == ("ops", "pw")
    assert kwargs["ssl"] is True and kwargs["ssl_ca_certs"] == "/etc/ca.pem"
    assert kwargs["ssl_cert_reqs"] == "none" and kwargs["socket_timeout"] == 3.0
    assert "retry" not in kwargs
    kwargs["host"] = "changed"
    assert store.connection_kwargs()["host"] == "h"
    assert store._client is None  # building the options never connects


def test_connection_kwargs_of_a_unix_socket():
    kwargs = Store(Settings(url="unix:///run/redis.sock?db=1")).connection_kwargs()
    assert (kwargs["unix_socket_path"], kwargs["db"]) == ("/run/redis.sock", 1)
    assert "host" not in kwargs


def test_a_cluster_cannot_be_forced_over_a_unix_socket():
    with pytest.raises(ConfigError, match="unix socket"):
        _ = Store(Settings(url="unix:///run/redis.sock", cluster=True)).client


def test_an_invalid_url_is_a_config_error_with_the_password_masked():
    with pytest.raises(ConfigError) as caught:
        _ = Store(Settings(url=f"http://ops:{PASSWORD}@h:1/0")).client
    assert PASSWORD not in str(caught.value)
    assert "****" in str(caught.value)


@pytest.mark.parametrize("password", ["Xq7Zp/Wv9Kr", "Xq7Zp#Wv9Kr", "Xq7Zp?Wv9Kr", "4321/Wv9Kr"])
def test_a_password_that_breaks_the_url_is_never_quoted_by_the_store(password):
    # Settings made by an application, which never went through load_settings' checks.
    with pytest.raises(ConfigError) as caught:
        _ = Store(Settings(url=f"redis://app:{password}@h:6380/0")).client
    text = json.dumps(caught.value.to_dict())
    assert "Xq7Zp" not in text and "Wv9Kr" not in text and "4321" not in text
    assert "redis://app:****@h:6380/0" in caught.value.message
    assert "percent-encode" in caught.value.message


def test_a_missing_tls_file_is_a_setting_error_not_a_tls_failure(tmp_path):
    missing = str(tmp_path / "nope.pem")
    settings = Settings(
        url="rediss://h:1/0",
        tls=TLSConfig(ca_file=missing),
        sources={"tls.ca_file": "config /etc/cachectl.yaml:7"},
    )
    with pytest.raises(ConfigError) as caught:
        _ = Store(settings).client
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert caught.value.message == (
        f"tls.ca_file: no such file: {missing} (from config /etc/cachectl.yaml:7)"
    )


class StubServer:
    """A client whose commands answer as scripted: a value, or an exception raised."""

    def __init__(self, **answers):
        self.answers = answers
        self.sent: list[str] = []

    def _answer(self, name: str):
        self.sent.append(name)
        answer = self.answers[name]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def info(self, section=None):
        return self._answer("INFO")

    def execute_command(self, *args):
        return self._answer("INFO" if args[0] == "INFO" else " ".join(args))


NOPERM = rx.NoPermissionError("this user has no permissions to run the 'info' command")
DISABLED = rx.ResponseError("This instance has cluster support disabled")


@pytest.mark.parametrize(
    "answers, enabled, asked",
    [
        ({"INFO": {"cluster_enabled": 1}}, True, ["INFO"]),
        ({"INFO": {"cluster_enabled": 0}}, False, ["INFO"]),
        ({"INFO": NOPERM, "CLUSTER MYID": b"abc"}, True, ["INFO", "CLUSTER MYID"]),
        ({"INFO": NOPERM, "CLUSTER MYID": DISABLED}, False, ["INFO", "CLUSTER MYID"]),
        (
            {"INFO": NOPERM, "CLUSTER MYID": NOPERM, "READONLY": b"OK"},
            True,
            ["INFO", "CLUSTER MYID", "READONLY"],
        ),
        (
            {
                "INFO": NOPERM,
                "CLUSTER MYID": rx.ResponseError("unknown command"),
                "READONLY": DISABLED,
            },
            False,
            ["INFO", "CLUSTER MYID", "READONLY"],
        ),
        (
            {"INFO": NOPERM, "CLUSTER MYID": NOPERM, "READONLY": NOPERM},
            None,
            ["INFO", "CLUSTER MYID", "READONLY"],
        ),
        (
            {"INFO": rx.ResponseError("unknown command 'INFO'"), "CLUSTER MYID": DISABLED},
            False,
            ["INFO", "CLUSTER MYID"],
        ),
    ],
)
def test_cluster_detection_asks_another_way_when_info_is_refused(answers, enabled, asked):
    server = StubServer(**answers)
    assert _cluster_enabled(server) is enabled
    assert server.sent == asked


# -- scanning --------------------------------------------------------------------------------


def test_scan_finds_every_key_matching(store, fake):
    wanted = {f"api_cache:users:id:{i}".encode() for i in range(55)}
    for key in wanted:
        fake.set(key, b"{}")
    fake.set(b"api_cache_other", b"x")
    fake.sadd(b"tag:users", b"api_cache:users:id:1")
    assert set(store.scan(match="api_cache:*")) == wanted


def test_scan_filters_by_type(store, fake):
    fake.set(b"tag:not-a-set", b"x")
    fake.sadd(b"tag:a", b"m")
    fake.sadd(b"tag:b", b"m")
    assert set(store.scan(match="tag:*", type="set")) == {b"tag:a", b"tag:b"}


def test_scan_yields_keys_that_are_not_utf8(store, fake):
    fake.set(b"api_cache:\xff\xfe", b"x")
    assert list(store.scan()) == [b"api_cache:\xff\xfe"]


def test_scan_nodes_names_the_node_of_every_page(store, fake):
    for i in range(35):
        fake.set(f"k{i}", 1)
    pages = list(store.scan_nodes())
    assert len(pages) > 1  # COUNT 10 over 35 keys
    assert {node for node, _ in pages} == set(store.primaries())
    assert sum(len(keys) for _, keys in pages) >= 35


def test_scan_charges_the_pacer_count_per_call(store, fake):
    for i in range(35):
        fake.set(f"k{i}", 1)
    pacer = RecordingPacer()
    pages = list(store.scan_nodes(count=10, pacer=pacer))
    assert pacer.taken == [10] * len(pages)


def test_sscan_walks_a_big_set(store, fake):
    members = {f"api_cache:e:{i}".encode() for i in range(250)}
    fake.sadd(b"tag:big", *members)
    assert set(store.sscan(b"tag:big", count=20)) == members


def test_dbsize_counts_the_keys(store, fake):
    fake.mset({f"k{i}": 1 for i in range(7)})
    assert store.dbsize() == 7


# -- unlink ---------------------------------------------------------------------------------


def test_unlink_removes_exactly_the_given_keys(store, fake):
    fake.mset({f"drop:{i}": 1 for i in range(30)})
    fake.set(b"keep", b"value", ex=500)
    removed = store.unlink(f"drop:{i}".encode() for i in range(30))
    assert removed == 30
    assert fake.keys("*") == [b"keep"]
    assert fake.get(b"keep") == b"value" and 0 < fake.ttl(b"keep") <= 500


def test_unlink_counts_only_keys_that_existed(store, fake):
    fake.mset({"a": 1, "b": 2})
    assert store.unlink([b"a", b"missing", b"b", b"a"]) == 2


def test_unlink_reports_each_batch(store, fake):
    fake.mset({f"k{i}": 1 for i in range(250)})
    batches = []
    keys = [f"k{i}".encode() for i in range(260)]  # 10 of them missing
    removed = store.unlink(keys, batch_size=100, on_batch=lambda sent, n: batches.append((sent, n)))
    assert batches == [(100, 100), (100, 100), (60, 50)]
    assert removed == 250


def test_unlink_uses_the_settings_batch_size_and_paces_per_key(store, fake):
    fake.mset({f"k{i}": 1 for i in range(230)})
    pacer = RecordingPacer()
    store.unlink((f"k{i}".encode() for i in range(230)), pacer=pacer)
    assert pacer.taken == [100, 100, 30]


def test_unlink_of_nothing_sends_nothing(store):
    calls = []
    assert store.unlink([], on_batch=lambda *a: calls.append(a)) == 0
    assert calls == []


# -- pipelined reads ------------------------------------------------------------------------


def test_ttls_tell_missing_from_persistent_from_expiring(store, fake):
    fake.set(b"forever", 1)
    fake.set(b"soon", 1, ex=300)
    ttls = store.ttls([b"forever", b"soon", b"missing"])
    assert ttls[0] == -1 and 0 < ttls[1] <= 300 and ttls[2] == -2
    assert 0 < store.ttls([b"soon"], ms=True)[0] <= 300_000


def test_pipelined_reads_keep_key_order_across_batches(store, fake):
    keys = [f"k{i}".encode() for i in range(250)]
    for i, key in enumerate(keys):
        if i % 3 == 0:
            fake.set(key, 1)
    assert store.exists_many(keys) == [i % 3 == 0 for i in range(250)]


def test_types_name_each_keys_type(store, fake):
    fake.set(b"s", 1)
    fake.sadd(b"t", b"m")
    fake.hset(b"h", b"f", 1)
    fake.zadd(b"z", {b"m": 1})
    assert store.types([b"s", b"t", b"h", b"z", b"missing"]) == [
        "string",
        "set",
        "hash",
        "zset",
        "none",
    ]


def test_smembers_batched_reads_many_sets(store, fake):
    fake.sadd(b"tag:a", b"k1", b"k2")
    fake.sadd(b"tag:b", b"k3")
    assert store.smembers_batched([b"tag:a", b"tag:b", b"tag:none"]) == [
        {b"k1", b"k2"},
        {b"k3"},
        set(),
    ]


def test_pipelined_sends_extra_arguments_after_each_key(store, fake):
    fake.hset(b"h1", b"count", 3)
    fake.hset(b"h2", b"count", 5)
    assert store.pipelined("HGET", [b"h1", b"h2"], b"count", batch_size=1) == [b"3", b"5"]


def test_a_failing_command_in_a_pipeline_is_translated(store, fake):
    fake.set(b"not-a-set", b"x")
    with pytest.raises(RedisError, match="SMEMBERS"):
        store.smembers_batched([b"not-a-set"])


# -- error translation ----------------------------------------------------------------------


def translate(exc: BaseException, command: str | None = None, **settings):
    return Store(Settings(**{"url": URL, **settings})).translate(exc, command)


def assert_no_secret(error) -> None:
    assert PASSWORD not in json.dumps(error.to_dict())
    assert PASSWORD not in str(error) and PASSWORD not in repr(error)


def test_refused_connection_is_unreachable_with_the_url_masked():
    error = translate(
        rx.ConnectionError("Error 111 connecting to cache.internal:1. Connection refused.")
    )
    assert isinstance(error, RedisUnreachable)
    assert error.message == (
        "cannot connect to Redis at redis://ops:****@cache.internal:1/0: connection refused"
    )
    assert_no_secret(error)


def test_dns_failure_says_the_host_does_not_resolve():
    exc = rx.ConnectionError("Error -2 connecting to cache.internal:1. Name or service not known.")
    error = translate(exc)
    assert isinstance(error, RedisUnreachable)
    assert error.message.endswith("the host name does not resolve")


def test_wrong_password_is_an_auth_error_without_the_password():
    error = translate(rx.AuthenticationError("invalid username-password pair or user is disabled."))
    assert isinstance(error, RedisAuthError)
    assert "refused the user name or password" in error.message
    assert_no_secret(error)


@pytest.mark.parametrize(
    "exc",
    [
        rx.ResponseError("WRONGPASS invalid username-password pair or user is disabled."),
        rx.ResponseError("NOAUTH Authentication required."),
        rx.AuthenticationError("Authentication required."),
    ],
)
def test_wrongpass_and_noauth_replies_are_auth_errors(exc):
    assert isinstance(translate(exc), RedisAuthError)


def test_a_missing_password_is_named_as_such():
    error = translate(rx.AuthenticationError("Authentication required."), url="redis://h:1/0")
    assert error.message == "Redis at redis://h:1/0 requires a password and none was given"


def test_acl_refusal_names_the_user_and_the_command():
    exc = rx.NoPermissionError("this user has no permissions to run the 'unlink' command")
    error = translate(exc, "UNLINK", url="redis://limited:limited-pass@h:1/0")
    assert isinstance(error, RedisPermissionError)
    assert error.message == "the ACL user 'limited' may not run UNLINK"
    assert error.command == "UNLINK" and error.details["command"] == "UNLINK"


def test_acl_refusal_of_a_subcommand_names_it():
    exc = rx.NoPermissionError("User noinfo has no permissions to run the 'config|get' command")
    error = translate(exc, username="noinfo")
    assert error.message == "the ACL user 'noinfo' may not run CONFIG GET"


def test_acl_refusal_on_keys_falls_back_to_the_command_sent():
    exc = rx.NoPermissionError("this user has no permissions to access one of the keys used")
    error = translate(exc, "UNLINK")
    assert isinstance(error, RedisPermissionError)
    assert error.command == "UNLINK"
    assert error.message.startswith("the ACL user 'ops' may not run UNLINK")


def test_a_command_timeout_names_the_command_and_the_timeout():
    error = translate(rx.TimeoutError("Timeout reading from socket"), "SCAN", timeout=2.5)
    assert isinstance(error, RedisTimeout)
    assert error.message.endswith("did not answer SCAN within 2.5s")


def test_a_connect_timeout_says_how_often_it_tried():
    error = translate(rx.TimeoutError("Timeout connecting to server"), retries=2, connect_timeout=3)
    assert isinstance(error, RedisTimeout)
    assert error.message.endswith("(3 attempts, 3s each)")


def test_readonly_replica_is_named():
    error = translate(rx.ReadOnlyError("You can't write against a read only replica."), "UNLINK")
    assert isinstance(error, RedisReadOnly)
    assert "read-only replica and refused UNLINK" in error.message


def test_clusterdown_is_a_cluster_down_error():
    error = translate(rx.ClusterDownError("The cluster is down"))
    assert isinstance(error, RedisClusterDown)
    assert_no_secret(error)


def test_failed_certificate_check_is_a_one_line_tls_error():
    reason = (
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
        "self-signed certificate in certificate chain (_ssl.c:1006)"
    )
    exc = rx.ConnectionError(f"Error 1 connecting to h:1. {reason}.")
    exc.__context__ = ssl.SSLCertVerificationError(1, reason)  # as redis-py raises it
    error = translate(exc, url="rediss://h:1/0")
    assert isinstance(error, RedisTLSError)
    assert error.message == (
        "TLS with Redis at rediss://h:1/0 failed: certificate verify failed: "
        "self-signed certificate in certificate chain"
    )


def test_connection_reset_on_a_plain_url_hints_at_tls():
    exc = rx.ConnectionError("Error while reading from h:1 : (104, 'Connection reset by peer')")
    error = translate(exc, url="redis://h:1/0")
    assert error.message == "cannot connect to Redis at redis://h:1/0: connection reset by peer"
    assert "rediss://" in error.hint


def test_cluster_startup_failure_is_translated_from_its_cause():
    exc = rx.RedisClusterException("Redis Cluster cannot be connected.")
    exc.__cause__ = rx.ConnectionError("Error 111 connecting to h:1. Connection refused.")
    error = translate(exc)
    assert isinstance(error, RedisUnreachable)
    assert error.message.endswith("connection refused")


def test_a_failure_on_another_node_names_that_node_in_the_urls_form():
    exc = rx.ConnectionError("Error 111 connecting to 10.0.0.3:7002. Connection refused.")
    error = translate(exc, "SCAN")
    assert error.message == (
        "cannot connect to Redis at redis://ops:****@10.0.0.3:7002/0: connection refused"
    )
    assert_no_secret(error)


def test_a_failure_on_the_urls_own_node_keeps_the_url_as_given():
    exc = rx.ConnectionError("Error 111 connecting to cache.internal:1. Connection refused.")
    assert "redis://ops:****@cache.internal:1/0:" in translate(exc).message


def test_the_node_given_by_the_caller_is_named_even_when_redis_py_says_none():
    store = Store(Settings(url=URL))
    exc = rx.AuthenticationError("invalid username-password pair or user is disabled.")
    error = store.translate(exc, "SCAN", NodeRef("10.0.0.3", 7002))
    assert error.message.startswith("Redis at redis://ops:****@10.0.0.3:7002/0 refused the user")


def test_the_node_a_node_clients_connection_stamped_on_its_error_is_named():
    exc = rx.NoPermissionError("this user has no permissions to run the 'scan' command")
    exc.cachectl_node = NodeRef("10.0.0.3", 7002)
    assert translate(exc, "SCAN").message == "the ACL user 'ops' may not run SCAN on 10.0.0.3:7002"


def test_a_cluster_timeout_that_names_no_node_does_not_blame_the_urls():
    store = Store(Settings(url=URL))
    store._client = RedisClusterStandIn()
    error = store.translate(rx.TimeoutError("Timeout connecting to server"))
    assert error.message.startswith(
        "timed out connecting to a node of the Redis Cluster at redis://ops:****@cache.internal:1/0"
    )


class RedisClusterStandIn(RedisCluster):
    def __init__(self):  # never connects: only its type matters to translate()
        pass

    def close(self):
        pass


def test_forcing_cluster_mode_on_a_plain_server_says_it_is_not_a_cluster_node():
    exc = rx.RedisClusterException(
        "Redis Cluster cannot be connected. Please provide at least one reachable node: "
        "Cluster mode is not enabled on this node"
    )
    exc.__cause__ = rx.RedisClusterException("Cluster mode is not enabled on this node")
    settings = Settings(url=URL, cluster=True, sources={"cluster": "flag --cluster"})
    error = Store(settings).translate(exc)
    assert type(error) is RedisError
    assert error.message == (
        "the server at redis://ops:****@cache.internal:1/0 is not a cluster node, "
        "but cluster mode is on (flag --cluster)"
    )
    assert "drop --cluster" in error.hint and "cluster: auto" in error.hint


def test_a_secret_echoed_by_the_server_is_scrubbed():
    error = translate(rx.ResponseError(f"ERR syntax error near '{PASSWORD}'"), "EVAL")
    assert type(error) is RedisError
    assert error.message.startswith("Redis refused EVAL: ")
    assert_no_secret(error)


def test_errors_context_translates_redis_errors(store):
    with pytest.raises(RedisUnreachable) as caught, store.errors("PING"):
        raise rx.ConnectionError("Error 111 connecting to h:1. Connection refused.")
    assert isinstance(caught.value.__cause__, rx.ConnectionError)


def test_errors_context_leaves_other_exceptions_alone(store):
    with pytest.raises(KeyError), store.errors():
        raise KeyError("a bug, not a Redis problem")
