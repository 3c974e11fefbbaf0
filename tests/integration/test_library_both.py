"""APICache and AsyncAPICache held to the same behaviour: every test here runs once per client.

`make_cache` gives a cache whose methods answer synchronously on either side: the asyncio
cache's coroutines are run on one event loop per test, the one the cache belongs to.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
import redis

from cachectl import APICache, AsyncAPICache
from cachectl.config import Settings, TLSConfig
from cachectl.devserver import free_port
from cachectl.errors import ConfigError, RedisAuthError


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
