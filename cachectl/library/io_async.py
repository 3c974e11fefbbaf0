"""The asyncio side of the library's I/O: what AsyncAPICache (aio.py) does its own way.

aio.py holds every decision of the cache and calls these for the rest; io_sync.py has the same
names for the thread-based APICache, which is generated from aio.py (see unasync.py).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cachectl.library.connect import connect_async
from cachectl.store import Store

REDIS_ERRORS = (rx.RedisError, rx.RedisClusterException, OSError)
CLUSTER_CLIENT = AsyncRedisCluster
BATCH = 1000

sleep = asyncio.sleep


def new_lock() -> asyncio.Lock:
    return asyncio.Lock()


async def maybe_await(value: Any) -> Any:
    """`fn`, `fallback` and `cache_if` may be plain or async callables."""
    return await value if inspect.isawaitable(value) else value


async def connect(store: Store, given: Any) -> Any:
    """The application's own client, else one made from the store's settings."""
    if given is not None:
        return given
    try:
        return await connect_async(store)
    except REDIS_ERRORS as exc:
        raise store.translate(exc, "INFO") from exc


async def disconnect(store: Store, client: Any, given: Any) -> None:
    """Closes the cache's own client; the application's stays open and in use."""
    if client is not None and client is not given:
        await client.aclose()


async def unlink(store: Store, client: Any, keys: list) -> int:
    removed = 0
    for start in range(0, len(keys), BATCH):
        try:
            # A cluster client splits a multi-key UNLINK by slot itself.
            removed += await client.unlink(*keys[start : start + BATCH])
        except REDIS_ERRORS as exc:
            raise store.translate(exc, "UNLINK") from exc
    return removed


async def set_members(store: Store, client: Any, key: str) -> list:
    try:
        return [m async for m in client.sscan_iter(key, count=store.settings.scan_count)]
    except REDIS_ERRORS as exc:
        raise store.translate(exc, "SSCAN") from exc


class Refresher:
    """Background refreshes (stale-while-revalidate) as tasks on the cache's loop."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        task = asyncio.get_running_loop().create_task(fn(*args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
