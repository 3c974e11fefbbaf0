"""The thread side of the library's I/O: what APICache (client.py, generated from aio.py) does
its own way. The same names as io_async.py."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from redis import exceptions as rx
from redis.cluster import RedisCluster

from cachectl.store import Store

REDIS_ERRORS = (rx.RedisError, rx.RedisClusterException, OSError)
CLUSTER_CLIENT = RedisCluster

sleep = time.sleep


def new_lock() -> threading.Lock:
    return threading.Lock()


def maybe_await(value: Any) -> Any:
    return value


def connect(store: Store, given: Any) -> Any:
    """The application's own client (the store holds it), else one made from the settings."""
    return store.client


def disconnect(store: Store, client: Any, given: Any) -> None:
    """Closes the cache's own client; the application's stays open and in use."""
    store.close()


def unlink(store: Store, client: Any, keys: list) -> int:
    return store.unlink(keys)


def set_members(store: Store, client: Any, key: str) -> list:
    return list(store.sscan(key))


class Refresher:
    """Background refreshes (stale-while-revalidate) on two threads, started on first use."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="cachectl-refresh")
        self._pool.submit(fn, *args)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
