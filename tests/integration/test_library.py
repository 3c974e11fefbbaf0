"""APICache against a real redis-server: the layout it writes, every strategy, the counters and
logs, tags and dependencies, stampede protection, early refresh, and what happens when Redis
fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
import redis

from cachectl import MISS, APICache, EarlyRefresh, StaleWhileRevalidate, StampedeOptions, cached
from cachectl.errors import ExitCode, RedisError, UsageError
from cachectl.layout import Layout, LayoutConfig
from cachectl.library import decorator
from cachectl.library.core import Warnings
from cachectl.library.decorator import set_default_cache
from cachectl.library.stampede import RELEASE_SCRIPT, lock_key
from cachectl.ops.stats import parse_log_member


@pytest.fixture
def conn(redis_url):
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_cache(redis_url):
    caches: list[APICache] = []

    def make(connection=None, **options) -> APICache:
        cache = APICache(connection or redis_url, **options)
        caches.append(cache)
        return cache

    yield make
    for cache in caches:
        cache.close()


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


# --- the layout ------------------------------------------------------------------------------


def test_set_writes_the_entry_its_sets_and_the_write_log_as_layout_md_says(make_cache, conn):
    cache = make_cache()
    before = int(time.time() * 1000)  # the log holds whole milliseconds, as JS Date.now()
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


# --- counters and logs -----------------------------------------------------------------------


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


def test_counters_reach_redis_within_the_flush_interval_without_a_flush(make_cache, conn):
    cache = make_cache(metrics_flush_interval=0.1)
    cache.get("users", {"id": 1})
    deadline = time.monotonic() + 5
    while conn.hget("cache_metrics:misses", "total") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert conn.hget("cache_metrics:misses", "total") == b"1"


def test_an_interval_of_zero_writes_counters_before_the_call_returns(make_cache, conn):
    cache = make_cache(metrics_flush_interval=0)
    cache.get("users", {"id": 1})
    assert conn.hget("cache_metrics:misses:users", "count") == b"1"


def test_metrics_off_writes_no_counters(make_cache, conn):
    cache = make_cache(metrics=False)
    cache.get("users", {"id": 1})
    cache.flush()
    assert conn.keys("cache_metrics*") == [] and not conn.exists("cache_access")


def test_counters_left_in_memory_are_written_at_interpreter_exit(redis_url, conn):
    script = f"""
        from cachectl import APICache
        cache = APICache({redis_url!r}, metrics_flush_interval=3600)
        for _ in range(7):
            cache.get("users", {{"id": 1}})
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=60)
    assert conn.hget("cache_metrics:misses", "total") == b"7"


# --- tags, dependencies, delete --------------------------------------------------------------


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


# --- strategies ------------------------------------------------------------------------------


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


def test_write_behind_loses_no_write_on_close(redis_url, conn):
    cache = APICache(redis_url, strategy="write_behind")
    for i in range(2000):
        cache.set("bulk", {"id": i}, {"i": i}, ttl=600, tags=["bulk"])
    cache.close()
    keys = [f"api_cache:bulk:id:{i}" for i in range(2000)]
    assert conn.exists(*keys) == 2000
    assert conn.scard("tag:bulk") == 2000 and conn.zcard("cache_entries") == 2000


def test_write_behind_loses_no_write_at_interpreter_exit(redis_url, conn):
    script = f"""
        from cachectl import APICache
        cache = APICache({redis_url!r}, strategy="write_behind")
        for i in range(500):
            cache.set("bulk", {{"id": i}}, i, ttl=600)
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=60)
    assert conn.exists(*[f"api_cache:bulk:id:{i}" for i in range(500)]) == 500


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


def test_a_fallback_answer_is_returned_and_never_cached(make_cache, conn):
    cache = make_cache()
    origin = Origin(error=TimeoutError("origin down"))
    seen = []
    answer = cache.cache_api_call(
        "e", None, origin, 60, fallback=lambda err: seen.append(err) or {"stale": True}
    )
    assert answer == {"stale": True} and isinstance(seen[0], TimeoutError)
    assert not conn.exists("api_cache:e:no_params")


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


# --- the decorator ---------------------------------------------------------------------------


def test_cached_functions_share_entries_across_call_forms(make_cache, conn):
    cache = make_cache()
    calls = []

    @cache.cached("user_profile", ttl=60, tags=["users"])
    def get_user(id, fields=None):
        calls.append(id)
        return {"id": id}

    assert get_user(123) == get_user(id=123) == {"id": 123}
    assert calls == [123]
    assert conn.exists("api_cache:user_profile:fields:null|id:123")
    assert get_user.__name__ == "get_user" and get_user.__wrapped__(5) == {"id": 5}


def test_cached_methods_leave_self_out_of_the_key(make_cache, conn):
    cache = make_cache()

    class Api:
        @cached("products", ttl=60, cache=cache)
        def search(self, category, limit=10):
            return [category] * 2

    assert Api().search("toys") == ["toys", "toys"]
    assert conn.exists('api_cache:products:category:"toys"|limit:10')


def test_bare_cached_uses_the_default_cache_and_the_function_name(make_cache, conn, monkeypatch):
    monkeypatch.setattr(decorator, "_default_cache", None)  # restored after the test
    set_default_cache(make_cache())

    @cached
    def status():
        return "ok"

    assert status() == "ok"
    assert conn.get("api_cache:status:no_params") == b'"ok"'


def test_without_a_default_the_cache_comes_from_cachectls_settings(
    redis_url, conn, monkeypatch, tmp_path
):
    monkeypatch.setattr(decorator, "_default_cache", None)
    monkeypatch.chdir(tmp_path)  # no cachectl.yaml here, nor in this HOME
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("XDG_CONFIG_HOME", "CACHECTL_CONFIG", "CACHECTL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CACHECTL_URL", redis_url)

    @cached(ttl=60)
    def inventory(sku):
        return {"sku": sku}

    assert inventory("A-1") == {"sku": "A-1"}
    assert conn.get('api_cache:inventory:sku:"A-1"') == b'{"sku":"A-1"}'
    decorator.default_cache().close()


# --- stampede --------------------------------------------------------------------------------


def _stampede(caches: list[APICache], origin: Origin, n: int = 100) -> list:
    barrier = threading.Barrier(n)
    answers = []

    def caller(cache):
        barrier.wait()
        answers.append(cache.cache_api_call("quote", {"id": 1}, origin, 60))

    threads = [threading.Thread(target=caller, args=(caches[i % len(caches)],)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_a_hundred_concurrent_misses_in_one_process_make_one_origin_call(make_cache):
    origin = Origin({"price": 42}, delay=0.2)
    answers = _stampede([make_cache()], origin)
    assert origin.calls == 1 and answers == [{"price": 42}] * 100


def test_a_hundred_concurrent_misses_across_caches_make_one_origin_call(make_cache, conn):
    # Ten caches share nothing but Redis, as ten processes would: they meet at the lock.
    caches = [make_cache() for _ in range(10)]
    origin = Origin({"price": 42}, delay=0.2)
    answers = _stampede(caches, origin)
    assert origin.calls == 1 and answers == [{"price": 42}] * 100
    assert conn.keys("api_cache_lock:*") == []
    for cache in caches:
        cache.flush()
    assert conn.hget("cache_metrics:misses", "total") == b"1"
    assert conn.hget("cache_metrics:hits", "total") == b"99"


def test_without_stampede_protection_every_miss_calls_the_origin(make_cache):
    origin = Origin({"price": 42}, delay=0.2)
    _stampede([make_cache(stampede=False)], origin, n=20)
    assert origin.calls > 1


def test_a_lock_left_by_a_crashed_holder_blocks_only_until_it_expires(make_cache, conn):
    # The caller may wait ten minutes; the lock lives 0.3 s. It calls the origin once the lock
    # has expired (never while the dead holder's lock stands: it does not delete it), and not
    # ten minutes later: the join is a hang guard, a hundred times what the wait needs.
    cache = make_cache(stampede=StampedeOptions(wait_timeout=600))
    lock = lock_key(cache.layout, cache.key("e", None))
    conn.set(lock, "dead-holder", px=300)
    locks_seen = []
    origin = Origin(lambda n: locks_seen.append(conn.get(lock)) or "fresh")
    answers = []
    caller = threading.Thread(
        target=lambda: answers.append(cache.cache_api_call("e", None, origin, 60)), daemon=True
    )
    caller.start()
    caller.join(30)
    assert answers == ["fresh"], "still waiting long after the lock expired"
    assert origin.calls == 1 and b"dead-holder" not in locks_seen


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


def test_releasing_a_lock_never_deletes_another_holders_lock(conn):
    release = conn.register_script(RELEASE_SCRIPT)
    conn.set("api_cache_lock:x", "token-b")
    assert release(keys=["api_cache_lock:x"], args=["token-a"]) == 0
    assert conn.get("api_cache_lock:x") == b"token-b"
    assert release(keys=["api_cache_lock:x"], args=["token-b"]) == 1


def test_the_lock_is_bookkeeping_in_cachectls_layout(make_cache, conn):
    layout = Layout()
    cache = make_cache()
    conn.set(lock_key(cache.layout, cache.key("e", None)), "t", px=60_000)
    (lock,) = conn.keys("*")
    assert layout.kind(lock) == "lock"  # bookkeeping, never an entry


# --- early refresh ---------------------------------------------------------------------------


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


def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(make_cache, conn):
    cache = make_cache(refresh=StaleWhileRevalidate(window=60))
    release = threading.Event()

    def refresh_waits_for_release(n):
        if n > 1:  # the refresh behind: held in the origin until the test lets it go
            release.wait(30)
        return n

    origin = Origin(refresh_waits_for_release)
    cache.cache_api_call("e", None, origin, 30)
    # The old value while the refresh is still held in the origin: not waited for (a call that
    # waited would be answered only after the release, which comes after the answer).
    assert cache.cache_api_call("e", None, origin, 30) == 1
    assert not release.is_set()
    release.set()
    deadline = time.monotonic() + 5
    while conn.get("api_cache:e:no_params") != b"2" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert conn.get("api_cache:e:no_params") == b"2" and origin.calls == 2


def test_a_failed_refresh_keeps_answering_the_cached_value(make_cache):
    cache = make_cache(refresh=EarlyRefresh(beta=1e9))
    cache.set("e", None, "cached", ttl=60)
    assert cache.cache_api_call("e", None, Origin(error=RuntimeError("down")), 60) == "cached"


# --- failures --------------------------------------------------------------------------------


def test_a_down_redis_answers_cache_api_call_from_the_origin(make_redis):
    server = make_redis()
    cache = APICache(server.url)
    cache.set("e", None, "cached", ttl=60)
    server.kill()
    origin = Origin("from origin")
    assert cache.cache_api_call("e", None, origin, 60) == "from origin"
    with pytest.raises(RedisError) as err:
        cache.get("e")
    assert err.value.exit_code == ExitCode.REDIS and server.url.split("@")[-1] in str(err.value)
    cache.close()


def test_with_redis_down_counter_warnings_keep_the_limiters_pace_and_count_what_was_dropped(
    make_redis, caplog
):
    server = make_redis()
    # No periodic push: the flushes below are the only ones, and the limiter's clock is ours.
    cache = APICache(server.url, metrics_flush_interval=3600, stampede=False)
    now = [1000.0]
    cache._warnings = Warnings(clock=lambda: now[0])
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


def test_fail_open_off_raises_the_redis_error(make_redis):
    server = make_redis()
    cache = APICache(server.url, fail_open=False)
    server.kill()
    with pytest.raises(RedisError):
        cache.cache_api_call("e", None, Origin("x"), 60)
    cache.close()


def test_an_applications_own_client_is_used_and_left_open(redis_url, conn):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    cache = APICache(client)
    origin = Origin({"a": 1})
    _stampede([cache], origin, n=20)
    assert cache.get("quote", {"id": 1}) == {"a": 1} and origin.calls == 1
    cache.close()
    assert client.ping()
    assert conn.keys("api_cache_lock:*") == []
    client.close()


# --- TLS and ACL users -----------------------------------------------------------------------


def test_tls_settings_reach_the_library_sync_and_asyncio(tls_redis):
    import asyncio

    from cachectl import AsyncAPICache
    from cachectl.config import Settings, TLSConfig

    settings = Settings(url=tls_redis.url, tls=TLSConfig(ca_file=tls_redis.files.ca_file))
    with APICache(settings) as cache:
        cache.set("e", {"id": 1}, {"tls": True}, ttl=60)

    async def read():
        async with AsyncAPICache(settings) as cache:
            return await cache.get("e", {"id": 1})

    assert asyncio.run(read()) == {"tls": True}


def test_an_acl_user_that_may_not_write_is_told_which_command(acl_redis, acl_url):
    reader = acl_redis.url_for("reader", "reader-pass")
    with APICache(reader) as cache:
        with pytest.raises(RedisError, match="reader") as err:
            cache.set("e", None, 1, ttl=60)
        assert err.value.exit_code == ExitCode.REDIS
        assert "reader-pass" not in str(err.value)
        # cache_api_call still answers, from the origin.
        assert cache.cache_api_call("e", None, lambda: "origin", 60) == "origin"
