"""What the sync and the asyncio cache share, with no I/O: options, calls, values, writes and the
bookkeeping buffer.

Both caches write the keyspace of docs/keyspace.md through `cachectl.layout.Layout`; the commands
they send are built here, so the two cannot drift apart.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cachectl.errors import UsageError
from cachectl.layout import Layout, js_stringify
from cachectl.library.stampede import StampedeOptions, lock_key
from cachectl.library.strategies import EarlyRefresh, RefreshPolicy, StaleWhileRevalidate, Strategy

log = logging.getLogger("cachectl.library")

RESPONSE_TIMES_KEPT_MS = 3_600_000  # docs/keyspace.md: the response-time log keeps the last hour
WARN_EVERY_SECONDS = 10.0  # a down Redis fails every call and push: say so now and then
_ZADD_PAIRS_PER_COMMAND = 500
_ORIGIN_TIME_WEIGHT = 0.2  # how much a new origin duration moves an endpoint's running average


class _Miss:
    """What `get(..., default=MISS)` returns on a miss, so a cached `None` can be told apart."""

    _instance: _Miss | None = None

    def __new__(cls) -> _Miss:  # noqa: PYI034 -- the one instance, never subclassed
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISS"

    def __bool__(self) -> bool:
        return False


MISS = _Miss()


def as_strategy(value: Strategy | str) -> Strategy:
    try:
        return Strategy(value)
    except ValueError:
        choices = ", ".join(s.value for s in Strategy)
        raise UsageError(f"unknown cache strategy {value!r}; use one of: {choices}") from None


def as_stampede(value: StampedeOptions | bool | None) -> StampedeOptions | None:
    if value is True:
        return StampedeOptions()
    if value is False or value is None:
        return None
    if isinstance(value, StampedeOptions):
        return value
    raise UsageError(
        f"stampede must be True, False or StampedeOptions(...), not {type(value).__name__}"
    )


def as_refresh(value: RefreshPolicy | None) -> RefreshPolicy | None:
    if value is None or isinstance(value, (EarlyRefresh, StaleWhileRevalidate)):
        return value
    raise UsageError(
        "refresh must be EarlyRefresh(...) or StaleWhileRevalidate(...), "
        f"not {type(value).__name__}"
    )


def as_layout(layout: Any, default: Layout | None = None) -> Layout:
    from cachectl.layout import LayoutConfig

    if layout is None:
        return default or Layout()
    if isinstance(layout, Layout):
        return layout
    if isinstance(layout, LayoutConfig):
        return Layout(layout)
    raise UsageError(f"layout must be a Layout or a LayoutConfig, not {type(layout).__name__}")


def ttl_to_ms(ttl: Any) -> int:
    """A TTL in seconds as whole milliseconds (PX): entries always expire, so it must be > 0."""
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl):
        raise UsageError(f"ttl must be a number of seconds, not {ttl!r}")
    if ttl <= 0:
        raise UsageError(
            f"ttl must be more than 0 seconds, not {ttl!r}",
            hint="Cache entries always expire; delete an entry with delete().",
        )
    return max(1, round(ttl * 1000))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


_SCALARS = frozenset({str, int, float, bool, type(None)})
_MEMO_SIZE = 4096


class _NotRemembered(Exception):
    """A param value whose key is not remembered (not JSON-like): it is encoded each time."""


def _frozen(value: Any) -> tuple:
    """A hashable stand-in for a JSON-like value that two values share only when
    JSON.stringify writes them alike: each part carries its type, and objects keep their
    property order."""
    kind = value.__class__
    if kind in _SCALARS:
        return (kind, value)
    if kind is list or kind is tuple:
        return (list, tuple(_frozen(item) for item in value))
    if kind is dict:
        return (dict, tuple((k.__class__, k, _frozen(v)) for k, v in value.items()))
    raise _NotRemembered


class EntryKeys:
    """`Layout.entry`, remembered: a key depends only on the endpoint and each param's name,
    type and value, so the JSON.stringify encoding runs once per distinct call, not once per
    hit. Types are part of what is remembered because `True == 1` in Python but `true` is not
    `1` in a key. Versioned calls with a user or headers are encoded each time.
    """

    def __init__(self, layout: Layout):
        self._layout = layout
        self._memo: dict[tuple, str] = {}

    def __call__(
        self, endpoint: str, params: Any = None, user_id: Any = None, headers: Any = None
    ) -> str:
        if user_id is not None or headers is not None or not isinstance(params, (dict, type(None))):
            return self._layout.entry(endpoint, params, user_id=user_id, headers=headers)
        try:
            memo_key = (endpoint, _frozen(params or {}))
        except (_NotRemembered, RecursionError):
            return self._layout.entry(endpoint, params)
        key = self._memo.get(memo_key)
        if key is None:
            if len(self._memo) >= _MEMO_SIZE:
                self._memo.clear()
            key = self._memo[memo_key] = self._layout.entry(endpoint, params)
        return key


def encode_value(key: str, value: Any) -> str:
    """The value as JavaScript's JSON.stringify writes it, so JavaScript apps read it byte for
    byte. A value JSON cannot hold is a programming error and says which entry it was for."""
    try:
        return js_stringify(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot cache the value for {key}: {exc}") from None


def decode_value(raw: bytes | str) -> Any:
    """The value of an entry's JSON text; raises ValueError when the text is not JSON."""
    return json.loads(raw)


def _as_tuple(items: Any, what: str) -> tuple:
    if items is None:
        return ()
    if isinstance(items, (str, bytes)):
        # tags="sale" is one tag, not four one-letter tags.
        return (items,)
    try:
        return tuple(items)
    except TypeError:
        raise UsageError(f"{what} must be a list, not {type(items).__name__}") from None


@dataclass(frozen=True)
class Write:
    """One entry to store: SET with PX, then SADD to its tag and dependency sets (with PEXPIRE
    ... GT, Redis 7.0 or later) and ZADD to the write log. `lock` is a stampede lock
    (key, token) to release once the write is in Redis."""

    key: str
    text: str
    ttl_ms: int
    index_keys: tuple[str, ...] = ()
    lock: tuple[str, str] | None = None

    def entry_command(self) -> tuple:
        return ("SET", self.key, self.text, "PX", self.ttl_ms)

    def index_commands(self, layout: Layout, at_ms: int) -> list[tuple]:
        commands: list[tuple] = []
        for index in self.index_keys:
            # A set made with a TTL (cachectl warm gives new sets one) must not expire before
            # this entry: GT only lengthens, and leaves a set without a TTL without one.
            commands += [("SADD", index, self.key), ("PEXPIRE", index, self.ttl_ms, "GT")]
        commands.append(("ZADD", layout.entries_log(), at_ms, self.key))
        return commands


def write_commands(layout: Layout, writes: list[Write], cluster: bool) -> list[list[tuple]]:
    """The commands for a batch of writes, as the rounds to send one after the other.

    Standalone: one round (one connection runs it in order, in MULTI/EXEC). Cluster: the entry,
    its sets and the log sit in different slots, so every SET goes in the first round and the
    SADDs and ZADDs in the second: an entry is in Redis before any set names it, and a concurrent
    invalidation that reads the set in between cannot leave an entry no set names.
    """
    at = now_ms()
    entries = [w.entry_command() for w in writes]
    indexes = [command for w in writes for command in w.index_commands(layout, at)]
    return [entries, indexes] if cluster else [entries + indexes]


def delete_commands(layout: Layout, key: str, index_keys: Iterable[str]) -> list[tuple]:
    return [
        ("UNLINK", key),
        ("ZREM", layout.entries_log(), key),
        ("ZREM", layout.access_log(), key),
        *(("SREM", index, key) for index in index_keys),
    ]


@dataclass
class Call:
    """One cache_api_call, its options resolved."""

    endpoint: str
    key: str
    ttl_ms: int
    index_keys: tuple[str, ...]
    strategy: Strategy
    cache_if: Callable[[Any], bool] | None = None
    fallback: Callable[[BaseException], Any] | None = None
    refresh: RefreshPolicy | None = None

    def lock_key(self, layout: Layout) -> str:
        return lock_key(layout, self.key)

    def should_store(self, value: Any) -> bool:
        return self.cache_if is None or bool(self.cache_if(value))


def index_keys(layout: Layout, tags: Any, depends_on: Any) -> tuple[str, ...]:
    """The tag and dependency set keys an entry goes in, each once."""
    keys = [layout.tag(t) for t in _as_tuple(tags, "tags")]
    keys += [layout.dependency(r) for r in _as_tuple(depends_on, "depends_on")]
    return tuple(dict.fromkeys(keys))


@dataclass
class Outcome:
    """What filling an entry came to: the value (from the origin or, after waiting, from the
    cache) or the origin's error. Shared by every caller that waited on the same fill."""

    value: Any = None
    error: BaseException | None = None
    from_cache: bool = False

    def resolve(self, fallback: Callable[[BaseException], Any] | None) -> Any:
        if self.error is None:
            return self.value
        if fallback is not None:
            return fallback(self.error)
        raise self.error


class OriginTimes:
    """Each endpoint's running average origin duration, for probabilistic early refresh."""

    def __init__(self) -> None:
        self._ms: dict[str, float] = {}

    def note(self, endpoint: str, elapsed_ms: float) -> None:
        old = self._ms.get(endpoint)
        self._ms[endpoint] = (
            elapsed_ms if old is None else old + _ORIGIN_TIME_WEIGHT * (elapsed_ms - old)
        )

    def get(self, endpoint: str) -> float | None:
        return self._ms.get(endpoint)


def refresh_due(
    policy: RefreshPolicy, remaining_ms: int, call: Call, origin_ms: float | None, rand: float
) -> bool:
    if isinstance(policy, StaleWhileRevalidate):
        return remaining_ms <= policy.window * 1000
    # Before an origin call has been timed here, guess that it takes 1% of the TTL.
    recompute_ms = origin_ms if origin_ms is not None else call.ttl_ms / 100
    return policy.due(remaining_ms, recompute_ms, rand)


class Warnings:
    """The library's warnings to the `cachectl.library` logger, at most one every `every`
    seconds, whichever part of the cache (caller or background worker) has one. Thread-safe."""

    def __init__(
        self, every: float = WARN_EVERY_SECONDS, clock: Callable[[], float] = time.monotonic
    ):
        self._every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._last: float | None = None

    def due(self) -> bool:
        """Whether a warning may go out now; True claims the slot, so say it."""
        now = self._clock()
        with self._lock:
            if self._last is not None and now - self._last < self._every:
                return False
            self._last = now
            return True

    def warn(self, message: str) -> bool:
        """Logs the message unless one went out less than `every` seconds ago."""
        if not self.due():
            return False
        log.warning("cachectl: %s", message)
        return True


@dataclass
class _Pending:
    hits: Counter = field(default_factory=Counter)
    misses: Counter = field(default_factory=Counter)
    accessed: dict[str, int] = field(default_factory=dict)
    times: list[tuple[int, str, str, float, bool]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.hits or self.misses or self.times)


class Bookkeeping:
    """Hit and miss counters, the access log and the response-time log, gathered in memory and
    written in one pipeline at a time.

    A hit then costs one GET: its bookkeeping rides with the others in the next push (every
    `metrics_flush_interval` seconds from the background worker, at close and at exit) instead of
    costing a second round trip per call. Many hits on one endpoint become one HINCRBY.
    Thread-safe: records are swapped out under a lock.

    Records a push could not write are dropped, not kept for the next push: HINCRBY is not
    idempotent and a failed pipeline may have been partly applied (a cluster node down, a
    timeout after the send, redis-py's own retry), so sending them again could count them
    twice, and an error that repeats (an ACL refusing HINCRBY) would resend a growing backlog
    at every push. A count of dropped calls is kept until a warning tells it.
    """

    def __init__(self, layout: Layout):
        self._layout = layout
        self._lock = threading.Lock()
        self._pending = _Pending()
        self._dropped_calls = 0  # since the last warning that told them
        self._drop_reason = ""
        self._last_push_failed = False
        self._call_ids = CallIds()

    def record(self, endpoint: str, key: str, hit: bool, response_ms: float) -> None:
        # Only the facts here, on the caller's path; the JSON members are written in take().
        at = now_ms()
        with self._lock:
            pending = self._pending
            if hit:
                pending.hits[endpoint] += 1
                pending.accessed[key] = at
            else:
                pending.misses[endpoint] += 1
            pending.times.append((at, endpoint, key, response_ms, hit))

    def __bool__(self) -> bool:
        return bool(self._pending)

    def take(self) -> list[tuple]:
        """The commands that write everything recorded so far; the buffer starts empty again."""
        return self.take_batch()[0]

    def take_batch(self) -> tuple[list[tuple], int]:
        """take()'s commands and how many calls' records they write."""
        with self._lock:
            pending, self._pending = self._pending, _Pending()
        return self._commands(pending), len(pending.times)

    def pushed(self, calls: int, error: Exception | None) -> None:
        """What came of writing `calls` calls' records: written, or dropped for `error`."""
        with self._lock:
            self._last_push_failed = error is not None
            if error is not None:
                self._dropped_calls += calls
                self._drop_reason = str(error)

    @property
    def dropped_untold(self) -> bool:
        return self._dropped_calls > 0

    def drop_report(self) -> str:
        """The warning for the pushes that failed since the last one told (then forgotten)."""
        with self._lock:
            calls, reason, failing = self._dropped_calls, self._drop_reason, self._last_push_failed
            self._dropped_calls = 0
        dropped = (
            f"the hits, misses and response times of {calls:,} "
            f"call{'s' if calls != 1 else ''} were dropped"
        )
        if failing:
            return f"could not write the cache counters: {reason}; {dropped} since the last warning"
        return f"the cache counters are written again; {dropped} while they could not be ({reason})"

    def _commands(self, pending: _Pending) -> list[tuple]:
        if not pending:
            return []
        layout = self._layout
        commands: list[tuple] = []
        for counts, total, per_endpoint in (
            (pending.hits, layout.hits_total(), layout.hits_endpoint),
            (pending.misses, layout.misses_total(), layout.misses_endpoint),
        ):
            if counts:
                commands.append(("HINCRBY", *total, sum(counts.values())))
                commands.extend(
                    ("HINCRBY", *per_endpoint(endpoint), n) for endpoint, n in counts.items()
                )
        commands.extend(
            ("ZADD", layout.access_log(), *pairs)
            for pairs in _zadd_args((at, key) for key, at in pending.accessed.items())
        )
        if pending.times:
            times_key = layout.response_times()
            ids = self._call_ids
            members = (
                (at, _response_time_member(endpoint, key, ms, hit, ids.next()))
                for at, endpoint, key, ms, hit in pending.times
            )
            commands.extend(("ZADD", times_key, *pairs) for pairs in _zadd_args(members))
            cutoff = now_ms() - RESPONSE_TIMES_KEPT_MS
            commands.append(("ZREMRANGEBYSCORE", times_key, "-inf", f"({cutoff}"))
        return commands


def _zadd_args(pairs: Iterable[tuple[int, str]]) -> Iterator[list]:
    args: list = []
    for score, member in pairs:
        args += (score, member)
        if len(args) == 2 * _ZADD_PAIRS_PER_COMMAND:
            yield args
            args = []
    if args:
        yield args


class CallIds:
    """The `callId` of each response-time log member: unique, so that two calls with the same
    endpoint, key, time and outcome are two members of the sorted set, not one (a sorted set
    keeps a member once, and ZADD of the same text only moves its score).

    `{process part}.{counter}`: the process part is 8 random characters, drawn again in a
    forked child (which would otherwise repeat its parent's ids); the counter is in base 36.
    Thread-safe: `itertools.count` hands out each number once."""

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._counter = itertools.count()

    def next(self) -> str:
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._prefix = base64.urlsafe_b64encode(os.urandom(6)).decode("ascii")
            self._counter = itertools.count()
        return f"{self._prefix}.{_base36(next(self._counter))}"


_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if not number:
            return text


def _response_time_member(
    endpoint: str, key: str, response_ms: float, hit: bool, call_id: str
) -> str:
    # docs/keyspace.md: JavaScript readers take the fields they know and ignore `callId`.
    return js_stringify(
        {
            "endpoint": endpoint,
            "cacheKey": key,
            "responseTime": round(response_ms, 3),
            "hit": hit,
            "callId": call_id,
        }
    )
