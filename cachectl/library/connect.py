"""What a cache connects with: a Redis URL (`redis+sentinel://` too), cachectl Settings, or the
application's own redis-py client (sync or asyncio, single server or cluster).

URLs and Settings connect the way the CLI does (`cachectl.store.Store`: TLS, ACL user, cluster
detection, retries). A bare URL gets the library's tighter timeouts: an application that falls
back to its origin when Redis is down should not wait the CLI's 5 s per request to find out.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import redis
import redis.asyncio as aredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster

from cachectl.config import Settings
from cachectl.errors import UsageError
from cachectl.store import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, Store, worth_retrying

URL_CONNECT_TIMEOUT_SECONDS = 1.0
URL_TIMEOUT_SECONDS = 1.0
URL_RETRIES = 1

SYNC_CLIENTS = (redis.Redis, RedisCluster)
ASYNC_CLIENTS = (aredis.Redis, AsyncRedisCluster)


def resolve(connection: Any, *, want_async: bool) -> tuple[Settings, Any]:
    """(settings, the application's client or None) for what a cache was given. With no client,
    the cache connects from the settings itself."""
    if connection is None:
        from cachectl.config import load_settings

        return load_settings(), None
    if isinstance(connection, Settings):
        return connection, None
    if isinstance(connection, str):
        return (
            Settings(
                url=connection,
                connect_timeout=URL_CONNECT_TIMEOUT_SECONDS,
                timeout=URL_TIMEOUT_SECONDS,
                retries=URL_RETRIES,
            ),
            None,
        )
    mine, other = (ASYNC_CLIENTS, SYNC_CLIENTS) if want_async else (SYNC_CLIENTS, ASYNC_CLIENTS)
    if isinstance(connection, mine):
        return describe_client(connection), connection
    if isinstance(connection, other):
        twin = "APICache" if want_async else "AsyncAPICache"
        kind = "a sync" if want_async else "an asyncio"
        raise UsageError(f"this is {kind} redis-py client: use {twin} with it")
    raise UsageError(
        "connect a cache with a Redis URL, cachectl Settings or a redis-py client, "
        f"not a {type(connection).__name__}"
    )


def describe_client(client: Any) -> Settings:
    """Settings that name an application's client in error messages (`redis://host:port/db`) and
    know its password, so that a message never shows it."""
    if isinstance(client, (RedisCluster, AsyncRedisCluster)):
        kwargs = dict(getattr(client, "connection_kwargs", None) or {})
        kwargs.update(getattr(client.nodes_manager, "connection_kwargs", None) or {})
        node: Any = next(iter(client.nodes_manager.startup_nodes.values()), None)
        host, port, db = (node.host, node.port, 0) if node else ("cluster", None, 0)
    else:
        kwargs = client.connection_pool.connection_kwargs
        host, port, db = kwargs.get("host", "localhost"), kwargs.get("port"), kwargs.get("db", 0)
        if kwargs.get("path"):
            return Settings(url=f"unix://{kwargs['path']}", password=kwargs.get("password"))
    scheme = "rediss" if kwargs.get("ssl") or "ssl_cert_reqs" in kwargs else "redis"
    where = f"{host}:{port}" if port else str(host)
    return Settings(
        url=f"{scheme}://{where}/{db}",
        username=kwargs.get("username"),
        password=kwargs.get("password"),
    )


async def connect_async(store: Store) -> aredis.Redis | AsyncRedisCluster:
    """An asyncio client for the store's settings, a cluster client when the server is a cluster
    node: `Store.connection_plan` driven with asyncio clients, as `Store.client` drives it with
    sync ones (the same options, checks and retry policy)."""
    retry = _AsyncRetry(
        ExponentialWithJitterBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
        store.settings.retries,
    )
    sentinel = store.sentinel_plan()
    if sentinel is not None:
        return _sentinel_client(sentinel, retry)
    plan = store.connection_plan()
    probe: aredis.Redis | None = None
    try:
        step = _step(plan, None)
        if isinstance(step, dict):
            probe = aredis.Redis(retry=retry, **step)
            step = _step(plan, await _cluster_enabled(probe))
        cluster, kwargs = step
        if cluster:
            client = AsyncRedisCluster(retry=retry, **kwargs)
            await client.initialize()
            return client
        if probe is not None and kwargs["db"] == 0:
            # Keep the client we asked: one connection (and TLS handshake), not two.
            kept, probe = probe, None
            return kept
        return aredis.Redis(retry=retry, **kwargs)
    finally:
        if probe is not None:
            await probe.aclose()


def _sentinel_client(plan: Any, retry: AsyncRetry) -> aredis.Redis:
    """An asyncio client of the primary the sentinels name (`Store.sentinel_plan`'s options),
    following a failover as the sync Store's does."""
    from redis.asyncio.sentinel import Sentinel

    sentinel = Sentinel(plan.sentinels, sentinel_kwargs={**plan.to_sentinels, "retry": retry})
    client = sentinel.master_for(
        plan.service, redis_class=_ClosingSentinels, retry=retry, **plan.to_servers
    )
    client.sentinels = tuple(sentinel.sentinels)
    return client


class _ClosingSentinels(aredis.Redis):
    """A client of the primary that closes its connections to the sentinels with its own."""

    sentinels: tuple = ()  # set by _sentinel_client

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            for sentinel in self.sentinels:
                await sentinel.aclose()


class _AsyncRetry(AsyncRetry):
    """redis-py's asyncio Retry with the Store's policy (`store.worth_retrying`): a refused
    password or certificate is never retried. (Retry's own is_retryable argument is newer than
    redis-py 7.3, the lowest supported.)"""

    async def call_with_retry(
        self,
        do: Any,
        fail: Any,
        is_retryable: Any = None,
        with_failure_count: bool = False,
    ) -> Any:
        def retryable(error: Exception) -> bool:
            if not worth_retrying(error):
                return False
            return is_retryable is None or is_retryable(error)

        return await super().call_with_retry(do, fail, retryable, with_failure_count)


def _step(plan: Generator[Any, Any, Any], reply: Any) -> Any:
    """The plan's next request, or what it returned."""
    try:
        return plan.send(reply)
    except StopIteration as done:
        return done.value


async def _cluster_enabled(client: aredis.Redis) -> bool | None:
    """`cachectl.store.cluster_detection`'s questions, asked of an asyncio client."""
    from cachectl.store import cluster_detection

    questions = cluster_detection()
    command = next(questions)
    while True:
        try:
            reply = await client.execute_command(*command)
        except rx.ResponseError as exc:
            reply = exc
        try:
            command = questions.send(reply)
        except StopIteration as done:
            return done.value
