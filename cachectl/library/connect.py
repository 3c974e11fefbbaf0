"""What a cache connects with: a Redis URL, cachectl Settings, or the application's own redis-py
client (sync or asyncio, single server or cluster).

URLs and Settings connect the way the CLI does (`cachectl.store.Store`: TLS, ACL user, cluster
detection, retries). A bare URL gets the library's tighter timeouts: an application that falls
back to its origin when Redis is down should not wait the CLI's 5 s per request to find out.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster

from cachectl.config import Settings
from cachectl.errors import ConfigError, UsageError
from cachectl.store import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, Store

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
    node: the asyncio twin of `Store.client`, with the same connection options."""
    settings = store.settings
    # Store builds the options; redis-py's asyncio clients take the same ones.
    kwargs = store.connection_kwargs()
    retry = AsyncRetry(
        ExponentialWithJitterBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS),
        settings.retries,
    )
    forced = settings.cluster
    if "unix_socket_path" in kwargs:
        if forced:
            raise ConfigError("a Redis Cluster cannot be reached over a unix socket")
        forced = False
    if forced is not True:
        standalone = aredis.Redis(retry=retry, **kwargs)
        if forced is False or not await _cluster_enabled(standalone, store):
            return standalone
        await standalone.aclose()
    db = kwargs.pop("db")
    if db:
        raise ConfigError(
            f"{settings.masked_url()} asks for database {db}, "
            "but a Redis Cluster has only database 0"
        )
    cluster = AsyncRedisCluster(retry=retry, **kwargs)
    await cluster.initialize()
    return cluster


async def _cluster_enabled(client: aredis.Redis, store: Store) -> bool:
    """`cachectl.store.cluster_detection`'s questions, asked of an asyncio client; when none
    may be asked, the Store's error (never a guess)."""
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
            if done.value is None:
                raise store.cluster_undetectable() from None
            return done.value
