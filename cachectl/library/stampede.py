"""Stampede protection: when many callers miss one entry at once, one calls the origin.

Two layers. Inside one process, callers of the same entry join one in-flight call ("single
flight") and get its answer the moment it is there. Across processes, the one that fills takes
a lock in Redis, `SET lock token NX PX timeout`; the others poll for the entry with backoff and
read it. The lock expires by itself, so a holder that crashed blocks nobody past
`lock_timeout`, and it is released by a compare-and-delete script, so a holder whose lock already
expired never deletes the next holder's lock. Waiting is bounded by `wait_timeout`: then a
waiter calls the origin itself.

The lock key is `Layout.lock(entry key)`, `{prefix}_lock:{entry key}`
(`api_cache_lock:api_cache:users:id:1`): in the cache's namespace, but outside every prefix of
docs/keyspace.md; `Layout.kind` calls it a "lock", so cachectl's tools never take it for an entry
(nor delete one as an entry: it expires within `lock_timeout`).
"""

from __future__ import annotations

import asyncio
import math
import random
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachectl.errors import UsageError

if TYPE_CHECKING:
    from cachectl.layout import Layout

# Deletes the lock only while it still holds our token: after a holder's lock expired and
# another caller took it, the first holder's release must leave the new lock alone.
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class StampedeOptions:
    """lock_timeout: seconds a lock lives if its holder never releases it (set it above the
    origin's slowest answer). wait_timeout: the longest a waiter waits before calling the origin
    itself. poll_interval / max_poll_interval: the first and the longest pause between polls."""

    lock_timeout: float = 10.0
    wait_timeout: float = 5.0
    poll_interval: float = 0.005
    max_poll_interval: float = 0.025

    def __post_init__(self) -> None:
        for name in ("lock_timeout", "wait_timeout", "poll_interval", "max_poll_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"StampedeOptions {name} must be a number of seconds")
            if not math.isfinite(value) or value <= 0:
                raise UsageError(f"StampedeOptions {name} must be more than 0, not {value!r}")
        if self.max_poll_interval < self.poll_interval:
            raise UsageError("StampedeOptions max_poll_interval must be >= poll_interval")

    @property
    def lock_timeout_ms(self) -> int:
        return max(1, round(self.lock_timeout * 1000))

    def poll_delays(self) -> Iterator[float]:
        """Pauses between polls: doubling from poll_interval up to max_poll_interval, each with
        +-25% jitter so waiters started together do not poll together."""
        delay = self.poll_interval
        while True:
            yield delay * random.uniform(0.75, 1.25)
            delay = min(delay * 2, self.max_poll_interval)


def lock_key(layout: Layout, entry_key: str) -> str:
    return layout.lock(entry_key)


def new_token() -> str:
    return secrets.token_hex(16)


class Flights:
    """Single flight inside one process, for threads: the first caller of a key leads, later
    callers wait for its Outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, _Flight] = {}

    def join(self, key: str) -> tuple[_Flight, bool]:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = _Flight()
            return flight, True

    def land(self, key: str, flight: _Flight, outcome: Any) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.outcome = outcome
        flight.done.set()

    @staticmethod
    def wait(flight: _Flight, timeout: float) -> Any:
        """The leader's Outcome; None when it took longer than `timeout` or gave up."""
        return flight.wait(timeout)


class _Flight:
    __slots__ = ("done", "outcome")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: Any = None

    def wait(self, timeout: float) -> Any:
        """The leader's Outcome; None when it took longer than `timeout` or gave up."""
        return self.outcome if self.done.wait(timeout) else None


class AsyncFlights:
    """Single flight for one event loop's tasks."""

    def __init__(self) -> None:
        self._flights: dict[str, asyncio.Future] = {}

    def join(self, key: str) -> tuple[asyncio.Future, bool]:
        future = self._flights.get(key)
        if future is not None:
            return future, False
        future = self._flights[key] = asyncio.get_running_loop().create_future()
        return future, True

    def land(self, key: str, future: asyncio.Future, outcome: Any) -> None:
        if self._flights.get(key) is future:
            del self._flights[key]
        if not future.done():
            future.set_result(outcome)

    @staticmethod
    async def wait(future: asyncio.Future, timeout: float) -> Any:
        try:
            # shield: a waiter that times out must not cancel the leader's future for the others.
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            return None
