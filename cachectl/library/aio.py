"""AsyncAPICache: the asyncio twin of APICache, with the same keyspace, options and behaviour.

It belongs to one event loop (redis-py's asyncio connections do): make it inside the loop that
uses it. Close it with `await cache.aclose()` or `async with`; when `asyncio.run()` ends, the
background task writes what is still queued before the loop closes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from cachectl.errors import CachectlError, UsageError
from cachectl.layout import Layout
from cachectl.library.connect import connect_async, resolve
from cachectl.library.core import (
    Bookkeeping,
    Call,
    EntryKeys,
    OriginTimes,
    Outcome,
    Warnings,
    Write,
    as_layout,
    as_refresh,
    as_stampede,
    as_strategy,
    decode_value,
    delete_commands,
    encode_value,
    index_keys,
    refresh_due,
    ttl_to_ms,
    write_commands,
)
from cachectl.library.stampede import RELEASE_SCRIPT, AsyncFlights, StampedeOptions, new_token
from cachectl.library.strategies import RefreshPolicy, StaleWhileRevalidate, Strategy
from cachectl.library.writebehind import AsyncBackgroundWriter
from cachectl.store import Store

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger("cachectl.library")

_REDIS_ERRORS = (rx.RedisError, rx.RedisClusterException, OSError)
_BATCH = 1000


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class AsyncAPICache:
    """The asyncio twin of `APICache`: the same arguments (with an asyncio redis-py client, if
    you pass your own), the same methods as coroutines, `aclose()` for close(). `fn`,
    `fallback` and `cache_if` may be plain or async callables."""

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
        settings, client = resolve(connection, want_async=True)
        # For its error translation only: the asyncio client is made and kept here.
        self._store = Store(settings)
        self._owns_client = client is None
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
        self._background = AsyncBackgroundWriter(
            self._write,
            self._push_bookkeeping,
            interval=metrics_flush_interval or 1.0,
            warn=self._warn,
            max_queue=write_queue_size,
        )
        self._lock_options = self.stampede or StampedeOptions()
        self._flights = AsyncFlights()
        self._origin_times = OriginTimes()
        self._refreshes: set[asyncio.Task] = set()
        self._connecting: asyncio.Lock | None = None
        self._client: Any = client
        self._cluster = isinstance(client, AsyncRedisCluster)
        self._release: Any = client.register_script(RELEASE_SCRIPT) if client is not None else None
        self._warnings = Warnings()

    def __repr__(self) -> str:
        return f"AsyncAPICache({self._store.settings.masked_url()})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the application's calls -----------------------------------------------------------

    def key(
        self, endpoint: str, params: dict | None = None, *, user_id: Any = None, headers: Any = None
    ) -> str:
        return self._keys(endpoint, params, user_id, headers)

    async def get(
        self,
        endpoint: str,
        params: dict | None = None,
        *,
        default: Any = None,
        user_id: Any = None,
        headers: Any = None,
    ) -> Any:
        key = self._keys(endpoint, params, user_id, headers)
        started = perf_counter()
        found, value = await self._read(key)
        await self._record(endpoint, key, found, started)
        return value if found else default

    async def set(
        self,
        endpoint: str,
        params: dict | None,
        value: Any,
        ttl: float | None = None,
        *,
        tags: Iterable = (),
        depends_on: Iterable = (),
        user_id: Any = None,
        headers: Any = None,
    ) -> str:
        key = self._keys(endpoint, params, user_id, headers)
        write = Write(
            key,
            encode_value(key, value),
            self._ttl_ms(ttl),
            index_keys(self.layout, tags, depends_on),
        )
        if self.strategy is Strategy.WRITE_BEHIND:
            await self._background.enqueue(write)
        else:
            await self._write([write])
        return key

    async def delete(
        self,
        endpoint: str,
        params: dict | None = None,
        *,
        tags: Iterable = (),
        depends_on: Iterable = (),
        user_id: Any = None,
        headers: Any = None,
    ) -> bool:
        key = self._keys(endpoint, params, user_id, headers)
        if self._background.pending(key) is not None:
            await self._background.flush(self._close_timeout)
        commands = delete_commands(self.layout, key, index_keys(self.layout, tags, depends_on))
        return (await self._send(commands, transaction=True))[0] == 1

    async def invalidate_tag(self, tag: Any) -> int:
        return await self._invalidate(self.layout.tag(tag))

    async def invalidate_dependency(self, resource: Any) -> int:
        return await self._invalidate(self.layout.dependency(resource))

    async def cache_api_call(
        self,
        endpoint: str,
        params: dict | None,
        fn: Callable[[], Any],
        ttl: float | None = None,
        tags: Iterable = (),
        *,
        depends_on: Iterable = (),
        cache_if: Callable[[Any], Any] | None = None,
        fallback: Callable[[BaseException], Any] | None = None,
        strategy: Strategy | str | None = None,
        refresh: RefreshPolicy | None = None,
        user_id: Any = None,
        headers: Any = None,
    ) -> Any:
        key = self._keys(endpoint, params, user_id, headers)
        strategy = self.strategy if strategy is None else as_strategy(strategy)
        refresh = self.refresh if refresh is None else as_refresh(refresh)
        ttl_ms = self._ttl_ms(ttl)
        started = perf_counter()
        found, value, remaining_ms = False, None, None
        if strategy is not Strategy.WRITE_THROUGH:
            try:
                found, value, remaining_ms = await self._lookup(key, refresh)
            except CachectlError as exc:
                self._fail_open(exc)
                outcome = await self._origin(endpoint, fn)
                await self._record(endpoint, key, False, started)
                return await self._resolve(fallback, outcome)
            # The hot path: a hit with nothing to refresh needs none of the rest.
            if found and (refresh is None or remaining_ms is None or remaining_ms <= 0):
                await self._record(endpoint, key, True, started)
                return value
        call = Call(
            endpoint=endpoint,
            key=key,
            ttl_ms=ttl_ms,
            index_keys=index_keys(self.layout, tags, depends_on),
            strategy=strategy,
            cache_if=cache_if,
            fallback=fallback,
            refresh=refresh,
        )
        if strategy is Strategy.WRITE_THROUGH:
            outcome = await self._origin(endpoint, fn)
            await self._keep(call, outcome)
            await self._record(endpoint, key, False, started)
            return await self._resolve(fallback, outcome)
        if found and remaining_ms is not None:
            value, refreshed = await self._maybe_refresh(call, fn, value, remaining_ms)
            await self._record(endpoint, key, not refreshed, started)
            return value
        outcome, hit = await self._fill(call, fn)
        await self._record(endpoint, key, hit, started)
        return await self._resolve(fallback, outcome)

    def cached(
        self,
        endpoint: str | None = None,
        ttl: float | None = None,
        tags: Iterable = (),
        **options: Any,
    ) -> Callable:
        from cachectl.library.decorator import cached

        return cached(endpoint, ttl, tags, cache=self, **options)

    async def flush(self) -> None:
        await self._background.flush(self._close_timeout)

    async def aclose(self) -> None:
        try:
            if self._refreshes:
                await asyncio.gather(*self._refreshes, return_exceptions=True)
            await self._background.close(self._close_timeout)
        finally:
            # The application's own client stays open and in use; ours is made again if needed.
            if self._owns_client and self._client is not None:
                client, self._client = self._client, None
                await client.aclose()

    # -- reading ---------------------------------------------------------------------------

    async def _redis(self) -> Any:
        if self._client is None:
            if self._connecting is None:
                self._connecting = asyncio.Lock()
            async with self._connecting:
                if self._client is None:
                    try:
                        client = await connect_async(self._store)
                    except _REDIS_ERRORS as exc:
                        raise self._store.translate(exc, "INFO") from exc
                    self._cluster = isinstance(client, AsyncRedisCluster)
                    self._release = client.register_script(RELEASE_SCRIPT)
                    self._client = client
        return self._client

    async def _read(self, key: str) -> tuple[bool, Any]:
        queued = self._background.pending(key)
        if queued is not None:
            return True, decode_value(queued.text)
        try:
            raw = await (self._client or await self._redis()).get(key)
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, "GET") from exc
        return self._decode(key, raw)

    async def _lookup(
        self, key: str, refresh: RefreshPolicy | None
    ) -> tuple[bool, Any, int | None]:
        if refresh is None or self._background.pending(key) is not None:
            return (*await self._read(key), None)
        try:
            pipe = (await self._redis()).pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            raw, remaining_ms = await pipe.execute()
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, "GET") from exc
        return (*self._decode(key, raw), remaining_ms)

    def _decode(self, key: str, raw: Any) -> tuple[bool, Any]:
        if raw is None:
            return False, None
        try:
            return True, decode_value(raw)
        except ValueError:
            self._warn(f"{key} does not hold JSON text; it is read as a miss and overwritten")
            return False, None

    # -- filling ---------------------------------------------------------------------------

    async def _origin(self, endpoint: str, fn: Callable[[], Any]) -> Outcome:
        started = perf_counter()
        try:
            value = await _maybe_await(fn())
        except Exception as exc:  # noqa: BLE001 -- the caller's fallback or raise decides
            return Outcome(error=exc)
        self._origin_times.note(endpoint, (perf_counter() - started) * 1000)
        return Outcome(value=value)

    @staticmethod
    async def _resolve(fallback: Callable[[BaseException], Any] | None, outcome: Outcome) -> Any:
        if outcome.error is not None and fallback is not None:
            return await _maybe_await(fallback(outcome.error))
        return outcome.resolve(None)

    async def _keep(
        self, call: Call, outcome: Outcome, lock: tuple[str, str] | None = None
    ) -> bool:
        if outcome.error is not None:
            return False
        if call.cache_if is not None and not await _maybe_await(call.cache_if(outcome.value)):
            return False
        text = encode_value(call.key, outcome.value)
        outcome.value = decode_value(text)
        write = Write(call.key, text, call.ttl_ms, call.index_keys, lock)
        if call.strategy is Strategy.WRITE_BEHIND:
            await self._background.enqueue(write)
            return lock is not None
        try:
            await self._write([write])
        except CachectlError as exc:
            self._fail_open(exc)
        return lock is not None

    async def _fill(self, call: Call, fn: Callable[[], Any]) -> tuple[Outcome, bool]:
        outcome: Outcome | None
        if self.stampede is None:
            outcome = await self._origin(call.endpoint, fn)
            await self._keep(call, outcome)
            return outcome, False
        flight, leader = self._flights.join(call.key)
        if not leader:
            outcome = await self._flights.wait(flight, self.stampede.wait_timeout)
            if outcome is not None:
                return outcome, outcome.error is None
            outcome = await self._origin(call.endpoint, fn)
            await self._keep(call, outcome)
            return outcome, False
        outcome = None
        try:
            outcome = await self._fill_across_processes(call, fn)
            return outcome, outcome.from_cache
        except Exception as exc:
            outcome = Outcome(error=exc)
            raise
        finally:
            # No outcome (the leader was cancelled or interrupted) sends each waiter to the
            # origin itself rather than hand it the leader's KeyboardInterrupt/CancelledError.
            self._flights.land(call.key, flight, outcome)

    async def _fill_across_processes(self, call: Call, fn: Callable[[], Any]) -> Outcome:
        lock = call.lock_key(self.layout)
        try:
            token = await self._acquire(lock)
        except CachectlError as exc:
            self._fail_open(exc)
            outcome = await self._origin(call.endpoint, fn)
            await self._keep(call, outcome)
            return outcome
        if token is None:
            found, value = await self._wait_for_entry(call.key, lock)
            if found:
                return Outcome(value=value, from_cache=True)
            outcome = await self._origin(call.endpoint, fn)
            await self._keep(call, outcome)
            return outcome
        handed = False
        try:
            try:
                found, value = await self._read(call.key)
            except CachectlError as exc:
                self._fail_open(exc)
                found = False
            if found:
                return Outcome(value=value, from_cache=True)
            outcome = await self._origin(call.endpoint, fn)
            handed = await self._keep(call, outcome, (lock, token))
            return outcome
        finally:
            if not handed:
                await self._release_quietly(lock, token)

    async def _wait_for_entry(self, key: str, lock: str) -> tuple[bool, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_options.wait_timeout
        delays = self._lock_options.poll_delays()
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return False, None
            await asyncio.sleep(min(next(delays), left))
            try:
                pipe = (await self._redis()).pipeline(transaction=False)
                pipe.get(key)
                pipe.exists(lock)
                raw, locked = await pipe.execute()
            except _REDIS_ERRORS as exc:
                self._fail_open(self._store.translate(exc, "GET"))
                return False, None
            found, value = self._decode(key, raw)
            if found or not locked:
                return found, value

    async def _maybe_refresh(
        self, call: Call, fn: Callable[[], Any], value: Any, remaining_ms: int
    ) -> tuple[Any, bool]:
        origin_ms = self._origin_times.get(call.endpoint)
        if call.refresh is None or not refresh_due(
            call.refresh, remaining_ms, call, origin_ms, 1.0 - random.random()
        ):
            return value, False
        lock = call.lock_key(self.layout)
        try:
            token = await self._acquire(lock)
        except CachectlError as exc:
            self._warn(str(exc))
            return value, False
        if token is None:
            return value, False
        if isinstance(call.refresh, StaleWhileRevalidate):
            task = asyncio.get_running_loop().create_task(
                self._refresh_in_background(call, fn, lock, token)
            )
            self._refreshes.add(task)
            task.add_done_callback(self._refreshes.discard)
            return value, False
        handed = False
        try:
            outcome = await self._origin(call.endpoint, fn)
            if outcome.error is not None:
                self._warn(f"refreshing {call.key} failed: {outcome.error}")
                return value, False
            handed = await self._keep(call, outcome, (lock, token))
            return outcome.value, True
        finally:
            if not handed:
                await self._release_quietly(lock, token)

    async def _refresh_in_background(
        self, call: Call, fn: Callable[[], Any], lock: str, token: str
    ) -> None:
        handed = False
        try:
            outcome = await self._origin(call.endpoint, fn)
            if outcome.error is not None:
                self._warn(f"refreshing {call.key} failed: {outcome.error}")
                return
            handed = await self._keep(call, outcome, (lock, token))
        except Exception as exc:  # noqa: BLE001 -- a refresh task has no caller to raise to
            self._warn(f"refreshing {call.key} failed: {exc}")
        finally:
            if not handed:
                await self._release_quietly(lock, token)

    # -- locks -----------------------------------------------------------------------------

    async def _acquire(self, lock: str) -> str | None:
        token = new_token()
        try:
            client = await self._redis()
            taken = await client.set(lock, token, nx=True, px=self._lock_options.lock_timeout_ms)
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, "SET") from exc
        return token if taken else None

    async def _release_quietly(self, lock: str, token: str) -> None:
        try:
            await self._redis()
            await self._release(keys=[lock], args=[token])
        except _REDIS_ERRORS as exc:
            self._warn(f"could not release {lock}: {self._store.translate(exc, 'EVALSHA')}")

    # -- writing ---------------------------------------------------------------------------

    def _ttl_ms(self, ttl: float | None) -> int:
        return self.default_ttl_ms if ttl is None else ttl_to_ms(ttl)

    async def _write(self, writes: list[Write]) -> None:
        try:
            client = await self._redis()
            for commands in write_commands(self.layout, writes, self._cluster):
                pipe = client.pipeline(transaction=not self._cluster)
                for command in commands:
                    pipe.execute_command(*command)
                await pipe.execute()
        except _REDIS_ERRORS as exc:
            error = self._store.translate(exc, "SET")
            try:
                await self._unlink([w.key for w in writes])
            except CachectlError:
                pass  # Redis is down: the write most likely never landed
            raise error from exc
        finally:
            for write in writes:
                if write.lock is not None:
                    await self._release_quietly(*write.lock)

    async def _send(self, commands: list[tuple], *, transaction: bool = False) -> list:
        try:
            pipe = (await self._redis()).pipeline(transaction=transaction and not self._cluster)
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute()
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, str(commands[0][0])) from exc

    async def _unlink(self, keys: list) -> int:
        removed = 0
        client = await self._redis()
        for start in range(0, len(keys), _BATCH):
            try:
                # A cluster client splits a multi-key UNLINK by slot itself.
                removed += await client.unlink(*keys[start : start + _BATCH])
            except _REDIS_ERRORS as exc:
                raise self._store.translate(exc, "UNLINK") from exc
        return removed

    async def _invalidate(self, index: str) -> int:
        if self._background.queued:
            await self._background.flush(self._close_timeout)
        client = await self._redis()
        try:
            scanned = [
                m async for m in client.sscan_iter(index, count=self._store.settings.scan_count)
            ]
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, "SSCAN") from exc
        members = list(dict.fromkeys(m for m in scanned if self.layout.is_entry(m)))
        removed = 0
        for start in range(0, len(members), _BATCH):
            batch = members[start : start + _BATCH]
            removed += await self._unlink(batch)
            await self._send(
                [
                    ("SREM", index, *batch),
                    ("ZREM", self.layout.entries_log(), *batch),
                    ("ZREM", self.layout.access_log(), *batch),
                ]
            )
        return removed

    # -- bookkeeping -----------------------------------------------------------------------

    async def _record(self, endpoint: str, key: str, hit: bool, started: float) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.record(endpoint, key, hit, (perf_counter() - started) * 1000)
        if self._interval == 0:
            await self._push_bookkeeping()
        else:
            self._background.start()

    async def _push_bookkeeping(self) -> None:
        """Writes the records gathered so far. Never raises: records that could not be written
        are dropped (Bookkeeping says why), and a warning, held to the limiter's pace, says how
        many calls' records were dropped since the last one."""
        metrics = self._metrics
        if metrics is None:
            return
        commands, calls = metrics.take_batch()
        if commands:
            try:
                await self._send(commands)
            except CachectlError as exc:
                metrics.pushed(calls, exc)
            else:
                metrics.pushed(calls, None)
        if metrics.dropped_untold and self._warnings.due():
            log.warning("cachectl: %s", metrics.drop_report())

    # -- failures --------------------------------------------------------------------------

    def _fail_open(self, exc: CachectlError) -> None:
        if not self.fail_open:
            raise exc
        self._warn(f"{exc}; answering from the origin")

    def _warn(self, message: str) -> None:
        # One limiter for the cache and its background worker: a down Redis fails both.
        self._warnings.warn(message)
