"""AsyncAPICache against real servers, single node and cluster: the same keyspace and behaviour
as APICache, from coroutines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest
import redis
import redis.asyncio as aredis

from cachectl import AsyncAPICache, StaleWhileRevalidate, cached
from cachectl.errors import UsageError


@pytest.fixture(params=["single", "cluster"])
def any_url(request) -> str:
    return request.getfixturevalue("redis_url" if request.param == "single" else "cluster_url")


def run(coro):
    return asyncio.run(coro)


class Origin:
    def __init__(self, value=None, delay: float = 0.0, error: Exception | None = None):
        self.value, self.delay, self.error = value, delay, error
        self.calls = 0

    async def __call__(self):
        self.calls += 1
        n = self.calls
        await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return self.value(n) if callable(self.value) else self.value


def test_a_hundred_concurrent_misses_make_one_origin_call(any_url):
    origin = Origin({"price": 42}, delay=0.2)

    async def main():
        async with AsyncAPICache(any_url) as cache:
            return await asyncio.gather(
                *(cache.cache_api_call("quote", {"id": 1}, origin, 60) for _ in range(100))
            )

    assert run(main()) == [{"price": 42}] * 100
    assert origin.calls == 1


class ReplyCountingRedis(aredis.Redis):
    """An application's asyncio client that says when `gets` GET replies have come back."""

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.gets = 0
        self._waits: list[tuple[int, asyncio.Event]] = []

    async def get(self, name):
        try:
            return await super().get(name)
        finally:
            self.gets += 1
            for count, event in self._waits:
                if self.gets >= count:
                    event.set()

    async def replies(self, count: int) -> None:
        event = asyncio.Event()
        self._waits.append((count, event))
        if self.gets >= count:
            event.set()
        await asyncio.wait_for(event.wait(), 30)


def test_a_cancelled_leader_leaves_its_followers_an_answer(redis_url):
    leader_in_origin = asyncio.Event()
    calls = []

    async def origin():
        calls.append(1)
        if len(calls) == 1:  # the leader: inside the origin until it is cancelled
            leader_in_origin.set()
            await asyncio.Event().wait()
        return "v"

    async def main():
        client = ReplyCountingRedis.from_url(redis_url)
        async with AsyncAPICache(client) as cache:
            leader = asyncio.ensure_future(cache.cache_api_call("e", None, origin, 60))
            # Ordered by events, not sleeps: the leader holds the lock and is in the origin...
            await asyncio.wait_for(leader_in_origin.wait(), 30)
            looked_up = client.gets  # the leader's lookup and its read under the lock
            followers = [
                asyncio.ensure_future(cache.cache_api_call("e", None, origin, 60)) for _ in range(5)
            ]
            # ...and every follower has had its miss: from its reply to joining the leader's
            # flight the follower never yields, so all five now wait on the leader.
            await client.replies(looked_up + 5)
            assert len(calls) == 1
            leader.cancel()
            answers = await asyncio.gather(*followers)
        await client.aclose()
        return answers

    assert run(main()) == ["v"] * 5
    assert len(calls) == 6  # each follower went to the origin itself, none got a CancelledError
    assert redis.Redis.from_url(redis_url).keys("api_cache_lock:*") == []


def test_caches_in_separate_loops_meet_at_the_redis_lock(redis_url):
    # Two event loops in two threads, each with its own cache: only Redis is shared.
    import threading

    origin_calls = []
    answers = []

    def loop_in_thread():
        async def origin():
            origin_calls.append(1)
            await asyncio.sleep(0.3)
            return "v"

        async def main():
            async with AsyncAPICache(redis_url) as cache:
                answers.extend(
                    await asyncio.gather(
                        *(cache.cache_api_call("q", None, origin, 60) for _ in range(20))
                    )
                )

        asyncio.run(main())

    threads = [threading.Thread(target=loop_in_thread) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(origin_calls) == 1 and answers == ["v"] * 100


def test_write_behind_writes_everything_when_asyncio_run_ends_without_close(redis_url):
    script = f"""
        import asyncio
        from cachectl import AsyncAPICache

        async def main():
            cache = AsyncAPICache({redis_url!r}, strategy="write_behind")
            for i in range(500):
                await cache.set("bulk", {{"id": i}}, i, ttl=600)
            for _ in range(3):
                await cache.get("bulk", {{"id": 1}})

        asyncio.run(main())
    """
    subprocess.run([sys.executable, "-c", textwrap.dedent(script)], check=True, timeout=60)
    conn = redis.Redis.from_url(redis_url)
    assert conn.exists(*[f"api_cache:bulk:id:{i}" for i in range(500)]) == 500
    assert conn.hget("cache_metrics:hits", "total") == b"3"
    conn.close()


def test_cache_if_fallback_and_async_callables(redis_url):
    conn = redis.Redis.from_url(redis_url)

    async def non_empty(value):
        return bool(value)

    async def main():
        async with AsyncAPICache(redis_url) as cache:
            assert await cache.cache_api_call("e", None, Origin([]), 60, cache_if=non_empty) == []
            assert (
                await cache.cache_api_call(
                    "f", None, Origin(error=TimeoutError()), 60, fallback=lambda err: "fallback"
                )
                == "fallback"
            )
            with pytest.raises(TimeoutError):
                await cache.cache_api_call("g", None, Origin(error=TimeoutError()), 60)

    run(main())
    assert conn.keys("api_cache*") == []
    conn.close()


def test_stale_while_revalidate_refreshes_in_a_task(redis_url):
    origin = Origin(lambda n: n, delay=0.2)

    async def main():
        async with AsyncAPICache(redis_url, refresh=StaleWhileRevalidate(window=60)) as cache:
            assert await cache.cache_api_call("e", None, origin, 30) == 1
            assert await cache.cache_api_call("e", None, origin, 30) == 1  # answered at once
        # aclose() waited for the refresh

    run(main())
    assert redis.Redis.from_url(redis_url).get("api_cache:e:no_params") == b"2"


def test_cached_coroutine_functions(redis_url):
    async def main():
        async with AsyncAPICache(redis_url) as cache:
            calls = []

            @cached("users", ttl=60, cache=cache)
            async def get_user(id):
                calls.append(id)
                return {"id": id}

            assert await get_user(1) == await get_user(id=1) == {"id": 1}
            assert calls == [1]

    run(main())


def test_a_coroutine_function_needs_an_async_cache():
    @cached("users", ttl=60)
    async def get_user(id):
        return id

    with pytest.raises(UsageError, match="AsyncAPICache"):
        run(get_user(1))


def test_an_applications_asyncio_client_is_used_and_left_open(redis_url):
    async def main():
        client = aredis.Redis.from_url(redis_url, decode_responses=True)
        async with AsyncAPICache(client) as cache:
            assert await cache.cache_api_call("e", None, Origin([1]), 60) == [1]
            assert await cache.get("e") == [1]
        assert await client.ping()
        await client.aclose()

    run(main())
