"""APICache against a real redis-server where it differs from AsyncAPICache: threads (stampede,
background refresh and pushes), interpreter exit, the decorator, Redis failing. What the two
share (the layout, counters, strategies, tags, refresh) is held in test_library_both.py."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
import redis

from cachectl import APICache, StaleWhileRevalidate, StampedeOptions, cached
from cachectl.errors import ExitCode, RedisError
from cachectl.layout import Layout
from cachectl.library import decorator
from cachectl.library.decorator import set_default_cache
from cachectl.library.stampede import RELEASE_SCRIPT, lock_key
from tests.integration.test_library_both import Origin  # one counted origin for both modules


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


# --- counters and logs -----------------------------------------------------------------------


def test_counters_left_in_memory_are_written_at_interpreter_exit(redis_url, conn):
    script = f"""
        from cachectl import APICache
        cache = APICache({redis_url!r}, metrics_flush_interval=3600)
        for _ in range(7):
            cache.get("users", {{"id": 1}})
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=60)
    assert conn.hget("cache_metrics:misses", "total") == b"7"


# --- strategies ------------------------------------------------------------------------------


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


def test_a_fallback_answer_is_returned_and_never_cached(make_cache, conn):
    cache = make_cache()
    origin = Origin(error=TimeoutError("origin down"))
    seen = []
    answer = cache.cache_api_call(
        "e", None, origin, 60, fallback=lambda err: seen.append(err) or {"stale": True}
    )
    assert answer == {"stale": True} and isinstance(seen[0], TimeoutError)
    assert not conn.exists("api_cache:e:no_params")


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


# A thread pushes them while the application does nothing (the asyncio twin's task runs only
# while its loop does).
def test_counters_reach_redis_within_the_flush_interval_without_a_flush(make_cache, conn):
    cache = make_cache(metrics_flush_interval=0.1)
    cache.get("users", {"id": 1})
    deadline = time.monotonic() + 5
    while conn.hget("cache_metrics:misses", "total") is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert conn.hget("cache_metrics:misses", "total") == b"1"


# --- failures --------------------------------------------------------------------------------


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
