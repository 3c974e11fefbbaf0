"""What APICache and AsyncAPICache share that does no I/O: the options, the entry keys, the
decorator, reading an entry's text, failing open. Each side's I/O is in aio.py (and client.py,
generated from it)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from cachectl.errors import CachectlError, UsageError
from cachectl.layout import Layout
from cachectl.library.connect import resolve
from cachectl.library.core import (
    Bookkeeping,
    EntryKeys,
    OriginTimes,
    Warnings,
    as_layout,
    as_refresh,
    as_stampede,
    as_strategy,
    decode_value,
    ttl_to_ms,
)
from cachectl.library.stampede import StampedeOptions
from cachectl.library.strategies import RefreshPolicy, Strategy
from cachectl.store import Store


class CacheBase:
    # Each side's: whether it takes an asyncio client, its background writer, single flight,
    # background refresher and connect lock.
    _want_async: ClassVar[bool]
    _writer_class: ClassVar[Any]
    _flights_class: ClassVar[Any]
    _refresher_class: ClassVar[Any]
    _lock_class: ClassVar[Any]
    # and its I/O, which the background writer calls
    _write: Callable[..., Any]
    _push_bookkeeping: Callable[..., Any]

    def __init__(
        self,
        connection: Any = None,
        *,
        layout: Any = None,
        default_ttl: float = 300,
        strategy: Strategy | str = Strategy.CACHE_ASIDE,
        stampede: StampedeOptions | bool = True,
        refresh: RefreshPolicy | None = None,
        fail_open: bool = True,
        metrics: bool = True,
        metrics_flush_interval: float = 1.0,
        write_queue_size: int = 10_000,
        close_timeout: float = 10.0,
    ):
        settings, client = resolve(connection, want_async=self._want_async)
        self._store = Store(settings, client=client)
        self._given = client
        self.layout: Layout = as_layout(layout, Layout(settings.layout))
        self.default_ttl_ms = ttl_to_ms(default_ttl)
        self.strategy = as_strategy(strategy)
        self.stampede = as_stampede(stampede)
        self.refresh = as_refresh(refresh)
        self.fail_open = fail_open
        if metrics_flush_interval < 0:
            raise UsageError("metrics_flush_interval must be 0 or more seconds")
        self._interval = metrics_flush_interval
        self._close_timeout = close_timeout
        self._keys = EntryKeys(self.layout)
        self._metrics = Bookkeeping(self.layout) if metrics else None
        self._background = self._writer_class(
            self._write,
            self._push_bookkeeping,
            interval=metrics_flush_interval or 1.0,
            warn=self._warn,
            max_queue=write_queue_size,
            exit_timeout=close_timeout,
        )
        self._lock_options = self.stampede or StampedeOptions()
        self._flights = self._flights_class()
        self._origin_times = OriginTimes()
        self._refresher = self._refresher_class()
        self._connecting = self._lock_class()
        self._client: Any = None
        self._cluster = False
        self._release: Any = None
        self._warnings = Warnings()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._store.settings.masked_url()})"

    def key(
        self, endpoint: str, params: dict | None = None, *, user_id: Any = None, headers: Any = None
    ) -> str:
        """The entry key of a call, as every writer of this cache spells it."""
        return self._keys(endpoint, params, user_id, headers)

    def cached(
        self,
        endpoint: str | None = None,
        ttl: float | None = None,
        tags: Iterable = (),
        **options: Any,
    ) -> Callable:
        """`@cache.cached("users", ttl=60)`: cache_api_call with params from the call's
        arguments. See `cachectl.cached` for the options."""
        from cachectl.library.decorator import cached

        return cached(endpoint, ttl, tags, cache=self, **options)

    def _decode(self, key: str, raw: Any) -> tuple[bool, Any]:
        if raw is None:
            return False, None
        try:
            return True, decode_value(raw)
        except ValueError:
            self._warn(f"{key} does not hold JSON text; it is read as a miss and overwritten")
            return False, None

    def _ttl_ms(self, ttl: float | None) -> int:
        return self.default_ttl_ms if ttl is None else ttl_to_ms(ttl)

    # -- failures --------------------------------------------------------------------------

    def _fail_open(self, exc: CachectlError) -> None:
        if not self.fail_open:
            raise exc
        self._warn(f"{exc}; answering from the origin")

    def _warn(self, message: str) -> None:
        # One limiter for the cache and its background worker: a down Redis fails both.
        self._warnings.warn(message)
