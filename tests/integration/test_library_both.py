"""APICache and AsyncAPICache held to the same behaviour: every test here runs once per client.

`make_cache` gives a cache whose methods answer synchronously on either side: the asyncio
cache's coroutines are run on one event loop per test, the one the cache belongs to.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import threading
import time

import pytest
import redis
from redis.cluster import RedisCluster
from typer.testing import CliRunner

from cachectl import (
    MISS,
    APICache,
    AsyncAPICache,
    EarlyRefresh,
    StampedeOptions,
)
from cachectl.cli.app import app
from cachectl.config import Settings, TLSConfig
from cachectl.devserver import free_port
from cachectl.errors import ConfigError, ExitCode, RedisAuthError, RedisError, UsageError
from cachectl.layout import LayoutConfig
from cachectl.library.core import Warnings
from cachectl.library.stampede import lock_key
from cachectl.ops.stats import parse_log_member


class Driven:
    """A cache whose coroutine methods are run to their answer on the test's loop."""

    def __init__(self, cache, runner: asyncio.Runner | None):
        self.cache = cache
        self._runner = runner

    def __getattr__(self, name):
        attr = getattr(self.cache, "aclose" if self._runner and name == "close" else name)
        if self._runner is None or not inspect.iscoroutinefunction(attr):
            return attr
        runner = self._runner
        return lambda *args, **kwargs: runner.run(attr(*args, **kwargs))


@pytest.fixture(params=["sync", "asyncio"])
def side(request) -> str:
    return request.param


@pytest.fixture
def make_cache(side, redis_url):
    runner = asyncio.Runner() if side == "asyncio" else None
    made: list[Driven] = []

    def make(connection=None, **options) -> Driven:
        kind = APICache if runner is None else AsyncAPICache
        if runner is None:
            cache = kind(connection or redis_url, **options)
        else:
            # Made inside the loop that uses it, as an asyncio application would.
            async def build():
                return kind(connection or redis_url, **options)

            cache = runner.run(build())
        driven = Driven(cache, runner)
        made.append(driven)
        return driven

    yield make
    try:
        for driven in made:
            driven.close()
    finally:
        if runner is not None:
            runner.close()


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def sleeps(monkeypatch):
    """The backoff sleeps redis-py's retries ask for, on either side, recorded instead of slept."""
    asked: list[float] = []
    monkeypatch.setattr("redis.retry.sleep", asked.append)

    async def record(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("redis.asyncio.retry.sleep", record)
    return asked


def test_a_refused_password_is_never_retried(make_cache, acl_redis, sleeps):
    settings = Settings(url=acl_redis.url_for("default", "not-the-pass-1234"), retries=3)
    cache = make_cache(settings)
    with pytest.raises(RedisAuthError) as caught:
        cache.get("users", {"id": 1})
    assert "refused the user name or password" in caught.value.message
    assert "not-the-pass-1234" not in str(caught.value)
    assert sleeps == []  # refused again on every try: the caller hears it at once


def test_a_missing_tls_file_is_named_as_a_setting_before_any_connection(make_cache, tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    settings = Settings(url=f"rediss://127.0.0.1:{free_port()}/0", tls=TLSConfig(ca_file=missing))
    cache = make_cache(settings)
    with pytest.raises(ConfigError, match=f"tls.ca_file: no such file: {missing}"):
        cache.get("users", {"id": 1})


def test_a_database_other_than_0_on_a_single_server_is_used(make_cache, redis_url, conn):
    cache = make_cache(redis_url.rsplit("/", 1)[0] + "/3")
    cache.set("users", {"id": 1}, {"name": "Ann"}, ttl=60)
    assert cache.get("users", {"id": 1}) == {"name": "Ann"}
    assert conn.dbsize() == 0  # database 0 is untouched


class Origin:
    """A counted origin; `value` may be a function of the call number."""

    def __init__(self, value=None, delay: float = 0.0, error: Exception | None = None):
        self.value = value
        self.delay = delay
        self.error = error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self):
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.value(n) if callable(self.value) else self.value


def test_set_writes_the_entry_its_sets_and_the_write_log_as_layout_md_says(make_cache, conn):
    cache = make_cache()
    before = time.time_ns() // 1_000_000  # whole ms, as the library scores
    key = cache.set(
        "products", {"category": "electronics", "limit": 10}, {"price": 2.0, "name": "café"},
        ttl=60, tags=["catalog", "sale"], depends_on=["product:7"],
    )  # fmt: skip
    assert key == 'api_cache:products:category:"electronics"|limit:10'
    assert conn.get(key) == '{"price":2,"name":"café"}'.encode()
    assert 59_000 < conn.pttl(key) <= 60_000
    assert conn.smembers("tag:catalog") == conn.smembers("tag:sale") == {key.encode()}
    assert conn.smembers("depends_on:product:7") == {key.encode()}
    assert conn.ttl("tag:catalog") == -1  # a set the library makes keeps no TTL, as JS's do
    assert before <= conn.zscore("cache_entries", key) <= time.time() * 1000


def test_writing_into_a_set_with_a_ttl_lengthens_it_to_the_entry(make_cache, conn):
    conn.sadd("tag:warm", "api_cache:other:no_params")
    conn.pexpire("tag:warm", 5_000)
    make_cache().set("e", None, 1, ttl=600, tags=["warm"])
    assert conn.pttl("tag:warm") > 590_000


def test_an_entry_written_by_javascript_is_read_as_is(make_cache, conn):
    conn.set(
        'api_cache:search:exact:true|fields:["name","email"]|price:2.5|q:"café"', '{"n":1e+21}'
    )
    cache = make_cache()
    params = {"q": "café", "fields": ["name", "email"], "price": 2.5, "exact": True}
    assert cache.get("search", params) == {"n": 1e21}


@pytest.mark.parametrize("falsy", [0, False, "", None, [], {}])
def test_cached_falsy_values_are_hits(make_cache, conn, falsy):
    cache = make_cache()
    cache.set("flags", {"id": 1}, falsy, ttl=60)
    assert cache.get("flags", {"id": 1}, default=MISS) == falsy
    assert cache.get("flags", {"id": 1}, default=MISS) is not MISS
    origin = Origin("fresh")
    assert cache.cache_api_call("flags", {"id": 1}, origin, 60) == falsy
    assert origin.calls == 0
    cache.flush()
    assert conn.hget("cache_metrics:hits", "total") == b"3"
    assert conn.hget("cache_metrics:misses", "total") is None


def test_a_miss_returns_the_default(make_cache):
    cache = make_cache()
    assert cache.get("nothing", {"id": 1}) is None
    assert cache.get("nothing", {"id": 1}, default=MISS) is MISS


def test_a_custom_layout_and_plain_params_are_written_with_their_names(make_cache, conn):
    layout = LayoutConfig(
        prefix="shop:api_cache", tag_prefix="shop:tag", metrics_prefix="shop:metrics",
        entries_log="shop:entries", access_log="shop:access", param_encoding="plain",
    )  # fmt: skip
    cache = make_cache(layout=layout)
    cache.set("products", {"category": "toys"}, [1], ttl=60, tags=["t"])
    cache.get("products", {"category": "toys"})
    cache.flush()
    assert conn.get("shop:api_cache:products:category:toys") == b"[1]"
    assert conn.smembers("shop:tag:t") == {b"shop:api_cache:products:category:toys"}
    assert conn.hget("shop:metrics:hits:products", "count") == b"1"
    assert conn.zcard("shop:entries") == conn.zcard("shop:access") == 1


def test_versioned_keys_carry_the_user_and_allowed_headers_only(make_cache, conn):
    layout = LayoutConfig(scheme="versioned", version="v2", header_allowlist=("Accept-Language",))
    cache = make_cache(layout=layout)
    key = cache.set(
        "products", {"category": "electronics", "limit": 10}, {"ok": 1}, ttl=60,
        user_id="user456", headers={"accept-language": "de", "Authorization": "Bearer s3cret"},
    )  # fmt: skip
    assert key == 'api:v2:products:user_user456?category="electronics"&limit=10#Accept-Language=de'
    assert conn.exists(key)


def test_hits_misses_and_logs_are_written_for_cachectl_stats(make_cache, conn):
    cache = make_cache()
    origin = Origin({"id": 1}, delay=0.02)
    for _ in range(4):
        cache.cache_api_call("users", {"id": 1}, origin, 60)
    cache.get("users", {"id": 2})
    cache.flush()
    assert conn.hget("cache_metrics:hits", "total") == b"3"
    assert conn.hget("cache_metrics:hits:users", "count") == b"3"
    assert conn.hget("cache_metrics:misses", "total") == b"2"
    assert conn.hget("cache_metrics:misses:users", "count") == b"2"
    assert conn.zrange("cache_access", 0, -1) == [b"api_cache:users:id:1"]
    logged = [
        parse_log_member(m, s)
        for m, s in conn.zrange("cache_metrics:response_times", 0, -1, withscores=True)
    ]
    assert all(r is not None for r in logged)
    misses = [r for r in logged if r.hit is False]
    assert {r.key for r in misses} == {"api_cache:users:id:1", "api_cache:users:id:2"}
    slow = next(r for r in misses if r.key == "api_cache:users:id:1")
    assert slow.response_time_ms >= 20  # the origin's time is the miss's response time


class StepClock:
    """perf_counter for the library's timings: each reading is half a millisecond after the
    last, so every hit of one key takes exactly 0.5 ms and logs the same figures."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.0005
        return self.now


def test_identical_calls_are_each_a_member_of_the_response_time_log(
    make_cache, conn, redis_url, monkeypatch
):
    clock = StepClock()
    monkeypatch.setattr("cachectl.library.aio.perf_counter", clock)
    monkeypatch.setattr("cachectl.library.client.perf_counter", clock)
    cache = make_cache()

    def slow_origin():
        clock.now += 0.05  # 50 ms at the origin
        return {"ok": True}

    for i in range(100):
        cache.cache_api_call("users", {"id": i}, slow_origin, 60)
    for _ in range(300):
        cache.cache_api_call("users", {"id": 0}, slow_origin, 60)
    cache.flush()
    members = conn.zrange("cache_metrics:response_times", 0, -1)
    # 300 hits with the same endpoint, key, time and outcome: 300 members, not one.
    assert len(members) == 400
    logged = [json.loads(m) for m in members]
    assert len({m["callId"] for m in logged}) == 400
    assert sum(1 for m in logged if m["hit"] and m["responseTime"] == 0.5) == 300
    result = CliRunner().invoke(app, ["--url", redis_url, "stats", "--sample", "0", "--json"])
    assert result.exit_code == 0, result.output
    times = json.loads(result.stdout)["data"]["application"]["response_times"]
    assert times["members_read"] == times["count"] == 400
    # Three calls in four were 0.5 ms hits: the median is one of them, not a 50 ms miss.
    assert times["p50_ms"] == 0.5


def test_the_response_time_log_keeps_the_last_hour(make_cache, conn):
    old_ms = int(time.time() * 1000) - 2 * 3_600_000
    conn.zadd(
        "cache_metrics:response_times", {'{"endpoint":"old","responseTime":1,"hit":true}': old_ms}
    )
    cache = make_cache()
    cache.get("users", {"id": 1})
    cache.flush()
    members = conn.zrange("cache_metrics:response_times", 0, -1)
    assert len(members) == 1 and b'"endpoint":"users"' in members[0]


def test_an_interval_of_zero_writes_counters_before_the_call_returns(make_cache, conn):
    cache = make_cache(metrics_flush_interval=0)
    cache.get("users", {"id": 1})
    assert conn.hget("cache_metrics:misses:users", "count") == b"1"


def test_metrics_off_writes_no_counters(make_cache, conn):
    cache = make_cache(metrics=False)
    cache.get("users", {"id": 1})
    cache.flush()
    assert conn.keys("cache_metrics*") == [] and not conn.exists("cache_access")


def test_invalidating_a_tag_deletes_its_entries_and_nothing_else(make_cache, conn):
    cache = make_cache()
    tagged = [cache.set("p", {"id": i}, i, ttl=60, tags=["sale"]) for i in range(5)]
    kept = cache.set("p", {"id": 99}, 99, ttl=60, tags=["other"])
    conn.sadd("tag:sale", "session:42")  # not a cache entry: never ours to delete
    conn.set("session:42", "x")
    assert cache.invalidate_tag("sale") == 5
    assert conn.exists(*tagged) == 0
    assert conn.exists(kept, "session:42") == 2
    assert conn.smembers("tag:sale") == {b"session:42"}
    assert conn.zscore("cache_entries", tagged[0]) is None
    assert cache.get("p", {"id": 1}, default=MISS) is MISS


def test_invalidating_a_dependency_deletes_the_entries_that_depend_on_it(make_cache, conn):
    cache = make_cache()
    a = cache.set("profile", {"id": 1}, 1, ttl=60, depends_on=["user:1"])
    b = cache.set("posts", {"userId": 1}, [], ttl=60, depends_on=["user:1", "post:9"])
    c = cache.set("profile", {"id": 2}, 2, ttl=60, depends_on=["user:2"])
    assert cache.invalidate_dependency("user:1") == 2
    assert conn.exists(a, b) == 0 and conn.exists(c) == 1
    assert not conn.exists("depends_on:user:1")  # Redis drops the emptied set


def test_delete_removes_the_entry_from_its_logs_and_the_sets_named(make_cache, conn):
    cache = make_cache()
    key = cache.set("p", {"id": 1}, 1, ttl=60, tags=["a", "b"])
    cache.get("p", {"id": 1})
    cache.flush()
    assert cache.delete("p", {"id": 1}, tags=["a"]) is True
    assert not conn.exists(key)
    assert not conn.exists("tag:a") and conn.smembers("tag:b") == {key.encode()}
    assert conn.zscore("cache_entries", key) is None and conn.zscore("cache_access", key) is None
    assert cache.delete("p", {"id": 1}) is False


def test_cache_aside_calls_the_origin_once_then_answers_from_the_cache(make_cache, conn):
    cache = make_cache()
    origin = Origin(lambda n: {"call": n})
    answers = [cache.cache_api_call("e", {"id": 1}, origin, 60, ["t"]) for _ in range(3)]
    assert answers == [{"call": 1}] * 3 and origin.calls == 1
    assert conn.smembers("tag:t") == {b"api_cache:e:id:1"}


def test_write_through_calls_the_origin_every_time_and_stores_each_answer(make_cache, conn):
    cache = make_cache(strategy="write_through")
    origin = Origin(lambda n: n)
    assert [cache.cache_api_call("e", None, origin, 60) for _ in range(3)] == [1, 2, 3]
    assert conn.get("api_cache:e:no_params") == b"3"
    cache.flush()
    assert conn.hget("cache_metrics:misses", "total") == b"3"


def test_write_behind_answers_at_once_and_writes_in_the_background(make_cache, conn):
    cache = make_cache(strategy="write_behind")
    origin = Origin(lambda n: {"n": n})
    assert cache.cache_api_call("e", {"id": 1}, origin, 60, ["t"]) == {"n": 1}
    # Read-your-writes before the queue is written: the pending write answers.
    assert cache.cache_api_call("e", {"id": 1}, origin, 60) == {"n": 1}
    assert origin.calls == 1
    cache.flush()
    assert conn.get("api_cache:e:id:1") == b'{"n":1}'
    assert conn.smembers("tag:t") == {b"api_cache:e:id:1"}


def test_a_delete_after_a_queued_write_wins(make_cache, conn):
    cache = make_cache(strategy="write_behind")
    cache.set("e", {"id": 1}, 1, ttl=60)
    cache.delete("e", {"id": 1})
    cache.flush()
    assert not conn.exists("api_cache:e:id:1")


def test_cache_if_keeps_unwanted_answers_out_of_the_cache(make_cache, conn):
    cache = make_cache()
    origin = Origin([])
    assert cache.cache_api_call("e", None, origin, 60, cache_if=bool) == []
    assert not conn.exists("api_cache:e:no_params")
    cache.cache_api_call("e", None, origin, 60, cache_if=bool)
    assert origin.calls == 2


def test_an_origin_error_without_a_fallback_reaches_the_caller(make_cache, conn):
    cache = make_cache()
    with pytest.raises(TimeoutError):
        cache.cache_api_call("e", None, Origin(error=TimeoutError("down")), 60)
    assert not conn.exists("api_cache:e:no_params")
    assert conn.keys("api_cache_lock:*") == []  # the lock went with the failed fill


def test_the_answer_is_what_the_cache_will_answer_next_time(make_cache):
    cache = make_cache()
    first = cache.cache_api_call("e", None, lambda: {"t": (1, 2), 3: "x"}, 60)
    assert first == {"t": [1, 2], "3": "x"} == cache.cache_api_call("e", None, dict, 60)


def test_a_value_json_cannot_hold_is_a_type_error_and_nothing_is_written(make_cache, conn):
    cache = make_cache()
    with pytest.raises(TypeError, match="api_cache:e:no_params"):
        cache.cache_api_call("e", None, lambda: {1, 2}, 60)
    assert conn.keys("*") == []


def test_bad_arguments_are_usage_errors(make_cache):
    cache = make_cache()
    with pytest.raises(UsageError, match="ttl"):
        cache.set("e", None, 1, ttl=0)
    with pytest.raises(UsageError, match="strategy"):
        cache.cache_api_call("e", None, dict, 60, strategy="write_sideways")


def test_waiting_for_a_slow_holder_is_bounded(make_cache, conn):
    # The holder's lock lives a minute; the caller gives up after its wait_timeout and calls
    # the origin itself while that lock still stands.
    cache = make_cache(stampede=StampedeOptions(wait_timeout=0.3))
    lock = lock_key(cache.layout, cache.key("e", None))
    conn.set(lock, "slow-holder", px=60_000)
    locks_seen = []
    origin = Origin(lambda n: locks_seen.append(conn.get(lock)) or "mine")
    assert cache.cache_api_call("e", None, origin, 60) == "mine"
    assert locks_seen == [b"slow-holder"]


def test_early_refresh_replaces_an_entry_near_expiry(make_cache, conn):
    cache = make_cache(refresh=EarlyRefresh(beta=1e9))  # refresh on every hit
    origin = Origin(lambda n: n)
    assert cache.cache_api_call("e", None, origin, 60) == 1
    assert cache.cache_api_call("e", None, origin, 60) == 2  # this caller refreshed
    assert conn.get("api_cache:e:no_params") == b"2" and conn.pttl("api_cache:e:no_params") > 59_000


def test_early_refresh_leaves_a_fresh_entry_alone(make_cache):
    cache = make_cache(refresh=EarlyRefresh())
    origin = Origin(lambda n: n)
    assert [cache.cache_api_call("e", None, origin, 600) for _ in range(20)] == [1] * 20


def test_a_failed_refresh_keeps_answering_the_cached_value(make_cache):
    cache = make_cache(refresh=EarlyRefresh(beta=1e9))
    cache.set("e", None, "cached", ttl=60)
    assert cache.cache_api_call("e", None, Origin(error=RuntimeError("down")), 60) == "cached"


# --- single server and cluster ----------------------------------------------------------------


@pytest.fixture(params=["single", "cluster"])
def any_url(request) -> str:
    return request.getfixturevalue("redis_url" if request.param == "single" else "cluster_url")


def sync_client(url: str, cluster: bool):
    return RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)


def test_set_get_and_falsy_hits_write_the_layout(make_cache, any_url, request):
    cluster = "cluster" in request.node.callspec.id
    cache = make_cache(any_url)
    key = cache.set("users", {"id": 1}, {"n": 1.0}, ttl=60, tags=["u"])
    cache.set("flags", {"id": 1}, 0, ttl=60)
    assert cache.get("users", {"id": 1}) == {"n": 1}
    assert cache.get("flags", {"id": 1}, default=MISS) == 0
    assert cache.get("nothing", default=MISS) is MISS
    cache.close()
    conn = sync_client(any_url, cluster)
    assert conn.get(key) == b'{"n":1}' and conn.smembers("tag:u") == {key.encode()}
    assert conn.hget("cache_metrics:hits", "total") == b"2"
    assert conn.hget("cache_metrics:misses:nothing", "count") == b"1"
    assert conn.zcard("cache_entries") == 2 and conn.zcard("cache_access") == 2
    conn.close()


def test_every_strategy(make_cache, any_url, request):
    cluster = "cluster" in request.node.callspec.id
    aside = make_cache(any_url)
    origin = Origin(lambda n: n)
    assert [aside.cache_api_call("a", None, origin, 60) for _ in range(3)] == [1] * 3
    aside.close()
    through = make_cache(any_url, strategy="write_through")
    origin = Origin(lambda n: n)
    answers = [through.cache_api_call("t", None, origin, 60, ["t"]) for _ in range(3)]
    assert answers == [1, 2, 3]
    through.close()
    behind = make_cache(any_url, strategy="write_behind")
    origin = Origin(lambda n: {"n": n})
    assert behind.cache_api_call("b", None, origin, 60, ["b"]) == {"n": 1}
    assert behind.cache_api_call("b", None, origin, 60) == {"n": 1}
    assert origin.calls == 1
    behind.close()
    conn = sync_client(any_url, cluster)
    assert conn.get("api_cache:a:no_params") == b"1"
    assert conn.get("api_cache:t:no_params") == b"3"
    assert conn.get("api_cache:b:no_params") == b'{"n":1}'
    assert conn.smembers("tag:t") == {b"api_cache:t:no_params"}
    assert conn.smembers("tag:b") == {b"api_cache:b:no_params"}
    assert conn.zcard("cache_entries") == 3
    conn.close()


def test_tags_dependencies_and_delete(make_cache, any_url, request):
    cluster = "cluster" in request.node.callspec.id
    cache = make_cache(any_url)
    for i in range(20):
        cache.set("p", {"id": i}, i, ttl=60, tags=["sale"], depends_on=[f"u:{i % 2}"])
    assert cache.invalidate_dependency("u:0") == 10
    assert cache.invalidate_tag("sale") == 10
    cache.set("p", {"id": 1}, 1, ttl=60, tags=["x"])
    assert cache.delete("p", {"id": 1}, tags=["x"]) is True
    cache.close()
    conn = sync_client(any_url, cluster)
    assert sum(conn.exists(f"api_cache:p:id:{i}") for i in range(20)) == 0
    assert not conn.exists("tag:sale") and not conn.exists("tag:x")
    conn.close()


# --- failures --------------------------------------------------------------------------------


def test_a_down_redis_answers_cache_api_call_from_the_origin(make_cache, make_redis):
    server = make_redis()
    cache = make_cache(server.url)
    cache.set("e", None, "cached", ttl=60)
    server.kill()
    origin = Origin("from origin")
    assert cache.cache_api_call("e", None, origin, 60) == "from origin"
    with pytest.raises(RedisError) as err:
        cache.get("e")
    assert err.value.exit_code == ExitCode.REDIS and server.url.split("@")[-1] in str(err.value)
    cache.close()


def test_with_redis_down_counter_warnings_keep_the_limiters_pace_and_count_what_was_dropped(
    make_cache, make_redis, caplog
):
    server = make_redis()
    # No periodic push: the flushes below are the only ones, and the limiter's clock is ours.
    cache = make_cache(server.url, metrics_flush_interval=3600, stampede=False)
    now = [1000.0]
    cache.cache._warnings = Warnings(clock=lambda: now[0])
    server.kill()
    caplog.set_level("WARNING", logger="cachectl.library")

    def said():
        return [r.getMessage() for r in caplog.records]

    for _ in range(4):
        for _ in range(3):
            cache.cache_api_call("e", None, Origin("from origin"), 60)
        cache.flush()
    # One warning (Redis down, answering from the origin) in these "10 seconds", not one more
    # at every push.
    assert len(said()) == 1 and "answering from the origin" in said()[0]
    now[0] += 10
    cache.flush()
    assert said()[1].startswith("cachectl: could not write the cache counters: ")
    assert said()[1].endswith(
        "; the hits, misses and response times of 12 calls were dropped since the last warning"
    )

    cache.cache_api_call("e", None, Origin("from origin"), 60)  # 1 more dropped, not told yet
    cache.flush()
    server.restart()
    cache.cache_api_call("e", None, Origin("from origin"), 60)  # a miss that reaches Redis
    now[0] += 10
    cache.flush()
    assert said()[2].startswith(
        "cachectl: the cache counters are written again; the hits, "
        "misses and response times of 1 call were dropped while they "
        "could not be ("
    )
    assert len(said()) == 3
    conn = server.client()
    # Dropped, not resent: only the call made after the restart is counted.
    assert conn.hget("cache_metrics:misses:e", "count") == b"1"
    conn.close()
    cache.close()


def test_fail_open_off_raises_the_redis_error(make_cache, make_redis):
    server = make_redis()
    cache = make_cache(server.url, fail_open=False)
    server.kill()
    with pytest.raises(RedisError):
        cache.cache_api_call("e", None, Origin("x"), 60)
    cache.close()


def test_add_points_writes_a_series_history_reads_at_every_resolution(make_cache, conn, redis_url):
    from cachectl.layout import Layout
    from cachectl.store import Store
    from cachectl.timeseries import TimeSeries

    cache = make_cache()
    start = (int(time.time()) // 3600 - 2) * 3600  # epoch seconds, an hour's start
    conn.script_flush()  # the first round finds no script on the server, and sends it
    assert cache.add_points([("deploy.seconds", 40 + i, start + i * 60) for i in range(60)]) == 60
    cache.add_point("deploy.seconds", 7.5, at=start + 3599, tags={"env": "ci"})
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, Layout())
        hour = series.aggregates("deploy.seconds", "1h", start * 1000, start * 1000 + 3_599_999)
        (bucket,) = hour.aggregates
        assert hour.computed == 0  # stored by the writer, not computed by the reader
        assert (bucket.count, bucket.min, bucket.max) == (61, 7.5, 99.0)
        assert (bucket.first, bucket.last) == (40.0, 7.5)
        raw = series.points("deploy.seconds", start * 1000, start * 1000 + 3_599_999)
        assert raw.points[-1].tag_dict == {"env": "ci"}
    assert conn.hget("meta:deploy.seconds", "lastUpdate") == str(start * 1000 + 3_599_000).encode()


@pytest.mark.parametrize(
    "bad",
    [("s", float("nan")), ("s", "12"), ("", 1), ("s", True), ("s", 1, "yesterday"), ("s",)],
)
def test_a_bad_point_writes_nothing_of_its_batch(make_cache, conn, bad):
    cache = make_cache()
    with pytest.raises(UsageError, match="point 2"):
        cache.add_points([("good", 1.0), bad])
    assert conn.keys("*") == []
