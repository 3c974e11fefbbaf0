# Generated from aio.py by `python -m cachectl.library.unasync`: edit aio.py, not this.
"""APICache: the cache an application reads and writes, in exactly the docs/keyspace.md layout, so
a Python service, a JavaScript service and cachectl share one cache.

A hit costs one GET. Its counters, access-log and response-time records are gathered in memory
and written together, one pipeline per `metrics_flush_interval` (and at close and exit), so they
never cost the caller a second round trip.

aio.py is the one implementation of the cache's behaviour: this file (APICache) is generated
from it by `python -m cachectl.library.unasync`. What the sync side does its own way (threads,
connecting, closing) is in io_sync.py; io_async.py has the same names for asyncio.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from redis.exceptions import NoScriptError

from cachectl.errors import CachectlError
from cachectl.library.base import CacheBase
from cachectl.library.core import (
    Call,
    Outcome,
    Write,
    as_refresh,
    as_strategy,
    decode_value,
    delete_commands,
    encode_value,
    index_keys,
    now_ms,
    refresh_due,
    write_commands,
)
from cachectl.library.io_sync import (
    CLUSTER_CLIENT,
    REDIS_ERRORS,
    Refresher,
    connect,
    disconnect,
    maybe_await,
    new_lock,
    set_members,
    sleep,
    unlink,
)
from cachectl.library.points import POINTS_PER_ROUND, as_points, round_commands
from cachectl.library.stampede import RELEASE_SCRIPT, Flights, new_token
from cachectl.library.strategies import RefreshPolicy, StaleWhileRevalidate, Strategy
from cachectl.library.writebehind import BackgroundWriter

if TYPE_CHECKING:
    from typing_extensions import Self

log = logging.getLogger("cachectl.library")

_BATCH = 1000


class APICache(CacheBase):
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

    _want_async = False
    _writer_class = BackgroundWriter
    _flights_class = Flights
    _refresher_class = Refresher
    _lock_class = staticmethod(new_lock)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the application's calls -----------------------------------------------------------

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
        replies = self._send(commands, transaction=True)
        return replies[0] == 1

    def invalidate_tag(self, tag: Any) -> int:
        """Deletes every entry the tag's set names; returns how many existed."""
        return self._invalidate(self.layout.tag(tag))

    def invalidate_dependency(self, resource: Any) -> int:
        """Deletes every entry that depends on `resource`; returns how many existed."""
        return self._invalidate(self.layout.dependency(resource))

    def add_point(
        self, series: str, value: float, *, at: Any = None, tags: dict | None = None
    ) -> None:
        """Adds a point to the history series `series`, as `cachectl history` stores its own:
        the raw point, the series' meta hash and its 1m, 5m, 1h and 1d aggregate buckets, so
        `cachectl history show`, `correlate` and `check --since` read it at any resolution.
        `at`: epoch seconds or a datetime (default: now); `tags`: a dict kept with the point.
        Raises UsageError for a value that is not a finite number (nothing is written)."""
        self.add_points([(series, value, at, tags)])

    def add_points(self, points: Iterable[Any]) -> int:
        """Adds many points, each `(series, value)`, `(series, value, at)` or `(series, value,
        at, tags)`, in pipelines of 500. Every point is checked before any is written (a bad
        one raises UsageError naming it); returns how many were written."""
        checked = as_points(points, now_ms())
        for start in range(0, len(checked), POINTS_PER_ROUND):
            self._add_round(checked[start : start + POINTS_PER_ROUND])
        return len(checked)

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
                return self._resolve(fallback, outcome)
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
            return self._resolve(fallback, outcome)
        if found and remaining_ms is not None:
            value, refreshed = self._maybe_refresh(call, fn, value, remaining_ms)
            self._record(endpoint, key, not refreshed, started)
            return value
        outcome, hit = self._fill(call, fn)
        self._record(endpoint, key, hit, started)
        return self._resolve(fallback, outcome)

    def flush(self) -> None:
        """Writes the queued writes and the gathered counters and logs now. Raises PartialFailure
        if queued writes were lost since the last flush."""
        self._background.flush(self._close_timeout)

    def close(self) -> None:
        """Finishes background refreshes and queued writes, writes the counters, and closes the
        connection (unless it is the application's own client)."""
        try:
            self._refresher.close()
            self._background.close(self._close_timeout)
        finally:
            # Made again if the cache is used after this.
            client, self._client = self._client, None
            disconnect(self._store, client, self._given)

    # -- reading ---------------------------------------------------------------------------

    def _redis(self) -> Any:
        if self._client is None:
            with self._connecting:
                if self._client is None:
                    client = connect(self._store, self._given)
                    self._cluster = isinstance(client, CLUSTER_CLIENT)
                    self._release = client.register_script(RELEASE_SCRIPT)
                    self._client = client
        return self._client

    def _read(self, key: str) -> tuple[bool, Any]:
        queued = self._background.pending(key)
        if queued is not None:
            return True, decode_value(queued.text)
        try:
            raw = (self._client or self._redis()).get(key)
        except REDIS_ERRORS as exc:
            raise self._store.translate(exc, "GET") from exc
        return self._decode(key, raw)

    def _lookup(self, key: str, refresh: RefreshPolicy | None) -> tuple[bool, Any, int | None]:
        """(found, value, ms the entry has left: asked for only when it may be refreshed)."""
        if refresh is None or self._background.pending(key) is not None:
            found, value = self._read(key)
            return found, value, None
        try:
            client = self._redis()
            pipe = client.pipeline(transaction=False)
            pipe.get(key)
            pipe.pttl(key)
            raw, remaining_ms = pipe.execute()
        except REDIS_ERRORS as exc:
            raise self._store.translate(exc, "GET") from exc
        return (*self._decode(key, raw), remaining_ms)

    # -- filling ---------------------------------------------------------------------------

    def _origin(self, endpoint: str, fn: Callable[[], Any]) -> Outcome:
        started = perf_counter()
        try:
            value = maybe_await(fn())
        except Exception as exc:  # noqa: BLE001 -- the caller's fallback or raise decides
            return Outcome(error=exc)
        self._origin_times.note(endpoint, (perf_counter() - started) * 1000)
        return Outcome(value=value)

    @staticmethod
    def _resolve(fallback: Callable[[BaseException], Any] | None, outcome: Outcome) -> Any:
        if outcome.error is not None and fallback is not None:
            return maybe_await(fallback(outcome.error))
        return outcome.resolve(None)

    def _keep(self, call: Call, outcome: Outcome, lock: tuple[str, str] | None = None) -> bool:
        """Stores the origin's answer if it may be cached. The caller then gets what the cache
        will answer next time (the JSON round trip: tuples become lists, keys strings).
        Returns whether the lock went with the write (which then releases it)."""
        if outcome.error is not None:
            return False
        if call.cache_if is not None and not maybe_await(call.cache_if(outcome.value)):
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
            outcome = self._flights.wait(flight, self.stampede.wait_timeout)
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
            sleep(min(next(delays), left))
            try:
                client = self._redis()
                pipe = client.pipeline(transaction=False)
                pipe.get(key)
                pipe.exists(lock)
                raw, locked = pipe.execute()
            except REDIS_ERRORS as exc:
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
        except Exception as exc:  # noqa: BLE001 -- a refresh has no caller to raise to
            self._warn(f"refreshing {call.key} failed: {exc}")
        finally:
            if not handed:
                self._release_quietly(lock, token)

    # -- locks -----------------------------------------------------------------------------

    def _acquire(self, lock: str) -> str | None:
        token = new_token()
        try:
            client = self._redis()
            taken = client.set(lock, token, nx=True, px=self._lock_options.lock_timeout_ms)
        except REDIS_ERRORS as exc:
            raise self._store.translate(exc, "SET") from exc
        return token if taken else None

    def _release_quietly(self, lock: str, token: str) -> None:
        try:
            self._redis()
            self._release(keys=[lock], args=[token])
        except REDIS_ERRORS as exc:
            # It expires by itself within lock_timeout.
            self._warn(f"could not release {lock}: {self._store.translate(exc, 'EVALSHA')}")

    # -- writing ---------------------------------------------------------------------------

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
        except REDIS_ERRORS as exc:
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
            client = self._redis()
            pipe = client.pipeline(transaction=transaction and not self._cluster)
            for command in commands:
                pipe.execute_command(*command)
            return pipe.execute()
        except REDIS_ERRORS as exc:
            raise self._store.translate(exc, str(commands[0][0])) from exc

    def _add_round(self, batch: list) -> None:
        """One pipeline of points. The aggregate script goes by its SHA; a server that has
        not seen it (or forgot it: a restart, SCRIPT FLUSH) is sent those calls again as EVAL."""
        plain, by_sha, by_text = round_commands(self.layout, batch)
        try:
            client = self._redis()
            pipe = client.pipeline(transaction=False)
            for command in plain + by_sha:
                pipe.execute_command(*command)
            replies = pipe.execute(raise_on_error=False)
            forgotten = [
                i
                for i, reply in enumerate(replies[len(plain) :])
                if isinstance(reply, NoScriptError)
            ]
            if forgotten:
                pipe = client.pipeline(transaction=False)
                for i in forgotten:
                    pipe.execute_command(*by_text[i])
                again = pipe.execute(raise_on_error=False)
                for i, reply in zip(forgotten, again):
                    replies[len(plain) + i] = reply
        except REDIS_ERRORS as exc:
            raise self._store.translate(exc, "ZADD") from exc
        for reply in replies:
            if isinstance(reply, Exception):
                raise self._store.translate(reply, "history add")

    def _unlink(self, keys: list) -> int:
        return unlink(self._store, self._redis(), keys)

    def _invalidate(self, index: str) -> int:
        if self._background.queued:
            self._background.flush(self._close_timeout)
        scanned = set_members(self._store, self._redis(), index)
        # Only entries: a set may name keys of other prefixes, which are never ours to delete.
        members = list(dict.fromkeys(m for m in scanned if self.layout.is_entry(m)))
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
