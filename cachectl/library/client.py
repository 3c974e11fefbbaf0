"""APICache: the cache an application reads and writes, in exactly the docs/keyspace.md layout, so
a Python service, a JavaScript service and cachectl share one cache.

A hit costs one GET. Its counters, access-log and response-time records are gathered in memory
and written together, one pipeline per `metrics_flush_interval` (and at close and exit), so they
never cost the caller a second round trip.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import TYPE_CHECKING, Any

from redis import exceptions as rx
from redis.cluster import RedisCluster

from cachectl.errors import CachectlError, UsageError
from cachectl.layout import Layout
from cachectl.library.connect import resolve
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
from cachectl.library.stampede import RELEASE_SCRIPT, Flights, StampedeOptions, new_token
from cachectl.library.strategies import RefreshPolicy, StaleWhileRevalidate, Strategy
from cachectl.library.writebehind import BackgroundWriter
from cachectl.store import Store

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger("cachectl.library")

_REDIS_ERRORS = (rx.RedisError, rx.RedisClusterException, OSError)
_BATCH = 1000


class APICache:
    """A Redis-backed cache of API responses, written as docs/keyspace.md says.

    connection: a Redis URL, cachectl `Settings`, or your own `redis.Redis` / `RedisCluster`
    (closing it stays yours). None reads cachectl's settings (CACHECTL_URL, cachectl.yaml).
    layout: a `Layout` or `LayoutConfig` (default: the settings' layout).
    default_ttl: seconds, for calls that give no ttl.
    strategy: "cache_aside" (default), "write_through" or "write_behind" (see `Strategy`).
    stampede: True (default), False, or `StampedeOptions(...)`.
    refresh: None, `EarlyRefresh(beta)` or `StaleWhileRevalidate(window)`: refresh entries before
    they expire.
    fail_open: when Redis fails, `cache_api_call` answers from the origin (logging a warning)
    instead of raising. get/set/delete always raise.
    metrics: write the hit/miss counters, the access log and the response-time log.
    metrics_flush_interval: seconds between pushes of those records; 0 writes them after every
    call (a second round trip per call).
    close_timeout: how long close() (and interpreter exit) waits for queued writes.
    """

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
        settings, client = resolve(connection, want_async=False)
        self._store = Store(settings, client=client)
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
        self._background = BackgroundWriter(
            self._write,
            self._push_bookkeeping,
            interval=metrics_flush_interval or 1.0,
            warn=self._warn,
            max_queue=write_queue_size,
            exit_timeout=close_timeout,
        )
        self._lock_options = self.stampede or StampedeOptions()
        self._flights = Flights()
        self._origin_times = OriginTimes()
        self._refresher: ThreadPoolExecutor | None = None
        self._connect_lock = threading.Lock()
        self._client: Any = None
        self._cluster = False
        self._release: Any = None
        self._warnings = Warnings()

    def __repr__(self) -> str:
        return f"APICache({self._store.settings.masked_url()})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the application's calls -----------------------------------------------------------

    def key(
        self, endpoint: str, params: dict | None = None, *, user_id: Any = None, headers: Any = None
    ) -> str:
        """The entry key of a call, as every writer of this cache spells it."""
        return self._keys(endpoint, params, user_id, headers)

    def get(
        self,
        endpoint: str,
        params: dict | None = None,
        *,
        default: Any = None,
        user_id: Any = None,
        headers: Any = None,
    ) -> Any:
        """The cached value, or `default` on a miss. A cached `0`, `false`, `""` or `null` is a
        hit: pass `default=MISS` to tell a cached None from a miss. Counts the hit or miss."""
        key = self._keys(endpoint, params, user_id, headers)
        started = perf_counter()
        found, value = self._read(key)
        self._record(endpoint, key, found, started)
        return value if found else default

    def set(
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
        """Stores `value` (JSON text as JavaScript writes it) for `ttl` seconds, adds the entry to
        its tag and dependency sets and to the write log; returns the entry key. With the
        write_behind strategy the write is queued."""
        key = self._keys(endpoint, params, user_id, headers)
        write = Write(
            key,
            encode_value(key, value),
            self._ttl_ms(ttl),
            index_keys(self.layout, tags, depends_on),
        )
        if self.strategy is Strategy.WRITE_BEHIND:
            self._background.enqueue(write)
        else:
            self._write([write])
        return key

    def delete(
        self,
        endpoint: str,
        params: dict | None = None,
        *,
        tags: Iterable = (),
        depends_on: Iterable = (),
        user_id: Any = None,
        headers: Any = None,
    ) -> bool:
        """Deletes the entry and drops it from the write and access logs and from the tag and
        dependency sets named here (`cachectl prune` cleans the others); True if it existed."""
        key = self._keys(endpoint, params, user_id, headers)
        if self._background.pending(key) is not None:
            # A queued write of this key must not land after the delete.
            self._background.flush(self._close_timeout)
        commands = delete_commands(self.layout, key, index_keys(self.layout, tags, depends_on))
        return self._send(commands, transaction=True)[0] == 1

    def invalidate_tag(self, tag: Any) -> int:
        """Deletes every entry the tag's set names; returns how many existed."""
        return self._invalidate(self.layout.tag(tag))

    def invalidate_dependency(self, resource: Any) -> int:
        """Deletes every entry that depends on `resource`; returns how many existed."""
        return self._invalidate(self.layout.dependency(resource))

    def cache_api_call(
        self,
        endpoint: str,
        params: dict | None,
        fn: Callable[[], Any],
        ttl: float | None = None,
        tags: Iterable = (),
        *,
        depends_on: Iterable = (),
        cache_if: Callable[[Any], bool] | None = None,
        fallback: Callable[[BaseException], Any] | None = None,
        strategy: Strategy | str | None = None,
        refresh: RefreshPolicy | None = None,
        user_id: Any = None,
        headers: Any = None,
    ) -> Any:
        """The answer for (endpoint, params): from the cache, or from `fn()` (then stored).

        cache_if(value): store only answers it approves. fallback(error): called when `fn`
        raises; its answer is returned and never cached. strategy and refresh override the
        cache's own for this call.
        """
        key = self._keys(endpoint, params, user_id, headers)
        strategy = self.strategy if strategy is None else as_strategy(strategy)
        refresh = self.refresh if refresh is None else as_refresh(refresh)
        ttl_ms = self._ttl_ms(ttl)
        started = perf_counter()
        found, value, remaining_ms = False, None, None
        if strategy is not Strategy.WRITE_THROUGH:
            try:
                found, value, remaining_ms = self._lookup(key, refresh)
            except CachectlError as exc:
                self._fail_open(exc)
                outcome = self._origin(endpoint, fn)
                self._record(endpoint, key, False, started)
                return outcome.resolve(fallback)
            # The hot path: a hit with nothing to refresh needs none of the rest.
            if found and (refresh is None or remaining_ms is None or remaining_ms <= 0):
                self._record(endpoint, key, True, started)
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
            outcome = self._origin(endpoint, fn)
            self._keep(call, outcome)
            self._record(endpoint, key, False, started)
            return outcome.resolve(fallback)
        if found and remaining_ms is not None:
            value, refreshed = self._maybe_refresh(call, fn, value, remaining_ms)
            self._record(endpoint, key, not refreshed, started)
            return value
        outcome, hit = self._fill(call, fn)
        self._record(endpoint, key, hit, started)
        return outcome.resolve(fallback)

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

    def flush(self) -> None:
        """Writes the queued writes and the gathered counters and logs now. Raises PartialFailure
        if queued writes were lost since the last flush."""
        self._background.flush(self._close_timeout)

    def close(self) -> None:
        """Finishes background refreshes and queued writes, writes the counters, and closes the
        connection (unless it is the application's own client)."""
        try:
            if self._refresher is not None:
                self._refresher.shutdown(wait=True)
                self._refresher = None
            self._background.close(self._close_timeout)
        finally:
            self._store.close()
            self._client = None

    # -- reading ---------------------------------------------------------------------------

    def _redis(self) -> Any:
        client = self._client
        if client is None:
            with self._connect_lock:
                if self._client is None:
                    client = self._store.client
                    self._cluster = isinstance(client, RedisCluster)
                    self._release = client.register_script(RELEASE_SCRIPT)
                    self._client = client
                client = self._client
        return client

    def _read(self, key: str) -> tuple[bool, Any]:
        queued = self._background.pending(key)
        if queued is not None:
            return True, decode_value(queued.text)
        try:
            raw = (self._client or self._redis()).get(key)
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, "GET") from exc
        return self._decode(key, raw)

    def _lookup(self, key: str, refresh: RefreshPolicy | None) -> tuple[bool, Any, int | None]:
        """(found, value, ms the entry has left: asked for only when it may be refreshed)."""
        if refresh is None or self._background.pending(key) is not None:
            return (*self._read(key), None)
        try:
            pipe = self._redis().pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            raw, remaining_ms = pipe.execute()
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

    def _origin(self, endpoint: str, fn: Callable[[], Any]) -> Outcome:
        started = perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 -- the caller's fallback or raise decides
            return Outcome(error=exc)
        self._origin_times.note(endpoint, (perf_counter() - started) * 1000)
        return Outcome(value=value)

    def _keep(self, call: Call, outcome: Outcome, lock: tuple[str, str] | None = None) -> bool:
        """Stores the origin's answer if it may be cached. The caller then gets what the cache
        will answer next time (the JSON round trip: tuples become lists, keys strings).
        Returns whether the lock went with the write (which then releases it)."""
        if outcome.error is not None or not call.should_store(outcome.value):
            return False
        text = encode_value(call.key, outcome.value)
        outcome.value = decode_value(text)
        write = Write(call.key, text, call.ttl_ms, call.index_keys, lock)
        if call.strategy is Strategy.WRITE_BEHIND:
            # The lock is released once the write is in Redis, so waiters elsewhere find it.
            self._background.enqueue(write)
            return lock is not None
        try:
            self._write([write])
        except CachectlError as exc:
            self._fail_open(exc)
        return lock is not None

    def _fill(self, call: Call, fn: Callable[[], Any]) -> tuple[Outcome, bool]:
        """The Outcome of a miss, and whether it counts as a hit (it was answered from the cache,
        or by another caller's origin call)."""
        outcome: Outcome | None
        if self.stampede is None:
            outcome = self._origin(call.endpoint, fn)
            self._keep(call, outcome)
            return outcome, False
        flight, leader = self._flights.join(call.key)
        if not leader:
            outcome = flight.wait(self.stampede.wait_timeout)
            if outcome is not None:
                return outcome, outcome.error is None
            outcome = self._origin(call.endpoint, fn)
            self._keep(call, outcome)
            return outcome, False
        outcome = None
        try:
            outcome = self._fill_across_processes(call, fn)
            return outcome, outcome.from_cache
        except Exception as exc:
            outcome = Outcome(error=exc)
            raise
        finally:
            # No outcome (the leader was cancelled or interrupted) sends each waiter to the
            # origin itself rather than hand it the leader's KeyboardInterrupt/CancelledError.
            self._flights.land(call.key, flight, outcome)

    def _fill_across_processes(self, call: Call, fn: Callable[[], Any]) -> Outcome:
        lock = call.lock_key(self.layout)
        try:
            token = self._acquire(lock)
        except CachectlError as exc:
            self._fail_open(exc)
            outcome = self._origin(call.endpoint, fn)
            self._keep(call, outcome)
            return outcome
        if token is None:
            found, value = self._wait_for_entry(call.key, lock)
            if found:
                return Outcome(value=value, from_cache=True)
            outcome = self._origin(call.endpoint, fn)
            self._keep(call, outcome)
            return outcome
        handed = False
        try:
            # Another process may have filled the entry between our GET and the lock.
            try:
                found, value = self._read(call.key)
            except CachectlError as exc:
                self._fail_open(exc)
                found = False
            if found:
                return Outcome(value=value, from_cache=True)
            outcome = self._origin(call.endpoint, fn)
            handed = self._keep(call, outcome, (lock, token))
            return outcome
        finally:
            if not handed:
                self._release_quietly(lock, token)

    def _wait_for_entry(self, key: str, lock: str) -> tuple[bool, Any]:
        """Polls for the entry while the lock is held; (False, None) when the wait is over or
        the lock went without an entry (the holder's answer was not cacheable, or it died)."""
        deadline = time.monotonic() + self._lock_options.wait_timeout
        delays = self._lock_options.poll_delays()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, None
            time.sleep(min(next(delays), left))
            try:
                pipe = self._redis().pipeline(transaction=False)
                pipe.get(key)
                pipe.exists(lock)
                raw, locked = pipe.execute()
            except _REDIS_ERRORS as exc:
                self._fail_open(self._store.translate(exc, "GET"))
                return False, None
            found, value = self._decode(key, raw)
            if found or not locked:
                return found, value

    def _maybe_refresh(
        self, call: Call, fn: Callable[[], Any], value: Any, remaining_ms: int
    ) -> tuple[Any, bool]:
        """(the value to answer, whether this caller refreshed it from the origin)."""
        origin_ms = self._origin_times.get(call.endpoint)
        if call.refresh is None or not refresh_due(
            call.refresh, remaining_ms, call, origin_ms, 1.0 - random.random()
        ):
            return value, False
        lock = call.lock_key(self.layout)
        try:
            token = self._acquire(lock)
        except CachectlError as exc:
            self._warn(str(exc))
            return value, False
        if token is None:  # someone else is refreshing it
            return value, False
        if isinstance(call.refresh, StaleWhileRevalidate):
            if self._refresher is None:
                self._refresher = ThreadPoolExecutor(2, thread_name_prefix="cachectl-refresh")
            self._refresher.submit(self._refresh_in_background, call, fn, lock, token)
            return value, False
        handed = False
        try:
            outcome = self._origin(call.endpoint, fn)
            if outcome.error is not None:
                # The entry is still good: answer it and let a later caller try again.
                self._warn(f"refreshing {call.key} failed: {outcome.error}")
                return value, False
            handed = self._keep(call, outcome, (lock, token))
            return outcome.value, True
        finally:
            if not handed:
                self._release_quietly(lock, token)

    def _refresh_in_background(
        self, call: Call, fn: Callable[[], Any], lock: str, token: str
    ) -> None:
        handed = False
        try:
            outcome = self._origin(call.endpoint, fn)
            if outcome.error is not None:
                self._warn(f"refreshing {call.key} failed: {outcome.error}")
                return
            handed = self._keep(call, outcome, (lock, token))
        except Exception as exc:  # noqa: BLE001 -- a refresh thread has no caller to raise to
            self._warn(f"refreshing {call.key} failed: {exc}")
        finally:
            if not handed:
                self._release_quietly(lock, token)

    # -- locks -----------------------------------------------------------------------------

    def _acquire(self, lock: str) -> str | None:
        token = new_token()
        try:
            taken = self._redis().set(lock, token, nx=True, px=self._lock_options.lock_timeout_ms)
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, "SET") from exc
        return token if taken else None

    def _release_quietly(self, lock: str, token: str) -> None:
        try:
            self._redis()
            self._release(keys=[lock], args=[token])
        except _REDIS_ERRORS as exc:
            # It expires by itself within lock_timeout.
            self._warn(f"could not release {lock}: {self._store.translate(exc, 'EVALSHA')}")

    # -- writing ---------------------------------------------------------------------------

    def _ttl_ms(self, ttl: float | None) -> int:
        return self.default_ttl_ms if ttl is None else ttl_to_ms(ttl)

    def _write(self, writes: list[Write]) -> None:
        """Stores a batch; on failure deletes its entries again (an entry missing from its tag
        set would survive an invalidation of the tag) and raises. Releases the writes' locks."""
        try:
            client = self._redis()
            for commands in write_commands(self.layout, writes, self._cluster):
                pipe = client.pipeline(transaction=not self._cluster)
                for command in commands:
                    pipe.execute_command(*command)
                pipe.execute()
        except _REDIS_ERRORS as exc:
            error = self._store.translate(exc, "SET")
            try:
                self._unlink([w.key for w in writes])
            except CachectlError:
                pass  # Redis is down: the write most likely never landed
            raise error from exc
        finally:
            for write in writes:
                if write.lock is not None:
                    self._release_quietly(*write.lock)

    def _send(self, commands: list[tuple], *, transaction: bool = False) -> list:
        try:
            pipe = self._redis().pipeline(transaction=transaction and not self._cluster)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute()
        except _REDIS_ERRORS as exc:
            raise self._store.translate(exc, str(commands[0][0])) from exc

    def _unlink(self, keys: list) -> int:
        self._redis()
        return self._store.unlink(keys)

    def _invalidate(self, index: str) -> int:
        if self._background.queued:
            self._background.flush(self._close_timeout)
        self._redis()
        # Only entries: a set may name keys of other prefixes, which are never ours to delete.
        members = list(
            dict.fromkeys(m for m in self._store.sscan(index) if self.layout.is_entry(m))
        )
        removed = 0
        for start in range(0, len(members), _BATCH):
            batch = members[start : start + _BATCH]
            removed += self._unlink(batch)
            # SREM, not UNLINK of the set: an entry added to it meanwhile keeps its place.
            # Redis deletes the set with its last member.
            self._send(
                [
                    ("SREM", index, *batch),
                    ("ZREM", self.layout.entries_log(), *batch),
                    ("ZREM", self.layout.access_log(), *batch),
                ]
            )
        return removed

    # -- bookkeeping -----------------------------------------------------------------------

    def _record(self, endpoint: str, key: str, hit: bool, started: float) -> None:
        metrics = self._metrics
        if metrics is None:
            return
        metrics.record(endpoint, key, hit, (perf_counter() - started) * 1000)
        if self._interval == 0:
            self._push_bookkeeping()
        elif not self._background.running:
            self._background.start()

    def _push_bookkeeping(self) -> None:
        """Writes the records gathered so far. Never raises: records that could not be written
        are dropped (Bookkeeping says why), and a warning, held to the limiter's pace, says how
        many calls' records were dropped since the last one."""
        metrics = self._metrics
        if metrics is None:
            return
        commands, calls = metrics.take_batch()
        if commands:
            try:
                self._send(commands)
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
