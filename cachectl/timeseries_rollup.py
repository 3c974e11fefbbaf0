"""Aggregate buckets computed from a series' raw points, for the buckets no writer stored.

Applications that write the time-series layout by hand often write the raw points (`metric:`)
and the meta hash only, never the `agg:` buckets, which cachectl's writer keeps. Their series
would read as "no data" at any resolution but raw. `TimeSeries.aggregates` therefore fills each
bucket that is not stored from the raw points it holds, sorted-set members and compacted chunks
alike, exactly as the writer's script would have: count, sum, min, max, and the values of the
earliest and the latest point as first and last. A stored bucket is always taken as it is.

Bounded memory whatever the range holds: the sorted set is read a page at a time and folded
into one running aggregate per bucket; the chunks (an hour of points each, compressed) are
decoded one at a time. Raw members inside a compacted hour are held until that hour's chunk is
read, so a point both in a chunk and still a member (a compaction that died between its two
steps) counts once, as `TimeSeries.points` reads it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cachectl.timeseries_codec import (
    CHUNK_FIELD,
    CHUNK_WINDOW_MS,
    Point,
    decode_chunk,
    decode_member,
)

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.store import Store

PAGE = 5_000  # sorted-set members read a command at a time
_CHUNK = CHUNK_FIELD.encode()


@dataclass
class Running:
    """One bucket's aggregate as points are folded into it, in any order."""

    count: int
    sum: float
    min: float
    max: float
    first: tuple[int, float]  # (timestamp, value) of the earliest point
    last: tuple[int, float]  # and of the latest; ties on time go by value, for a fixed answer

    @classmethod
    def of(cls, point: Point) -> Running:
        at = (point.timestamp_ms, point.value)
        return cls(1, point.value, point.value, point.value, at, at)

    def add(self, point: Point) -> None:
        value, at = point.value, (point.timestamp_ms, point.value)
        self.count += 1
        self.sum += value
        self.min = min(self.min, value)
        self.max = max(self.max, value)
        self.first = min(self.first, at)
        self.last = max(self.last, at)


@dataclass
class Rolled:
    buckets: dict[int, Running]
    corrupt: int = 0  # members and chunks that did not read
    commands: int = 0
    found: int = 0  # commands whose reply held something (the rest: lookups that missed)


def roll_up(
    store: Store,
    layout: Layout,
    name: str,
    width_ms: int,
    missing: list[int],
    overlaps: Callable[[bytes, int, int], bool],
) -> Rolled:
    """The running aggregates of the `missing` buckets (their start times, ascending) of
    `width_ms`, from the series' raw points; buckets with no point are left out."""
    wanted = set(missing)
    low, high = missing[0], missing[-1] + width_ms - 1
    rolled = Rolled({})

    def fold(point: Point) -> None:
        bucket = point.timestamp_ms - point.timestamp_ms % width_ms
        if bucket not in wanted:
            return
        running = rolled.buckets.get(bucket)
        if running is None:
            rolled.buckets[bucket] = Running.of(point)
        else:
            running.add(point)

    meta = layout.meta(name)
    fields = store.execute("HKEYS", meta)
    rolled.commands += 1
    rolled.found += 1 if fields else 0
    chunks = sorted(f for f in fields if f.startswith(_CHUNK) and overlaps(f, low, high))
    compacted_hours = {_window(f) for f in chunks}
    held: dict[int, set[Point]] = defaultdict(set)  # raw points in a compacted hour
    for member, score in _members(store, layout.metric(name), low, high, rolled):
        point = decode_member(member, score)
        if point is None:
            rolled.corrupt += 1
            continue
        hour = point.timestamp_ms - point.timestamp_ms % CHUNK_WINDOW_MS
        if hour in compacted_hours:
            held[hour].add(point)
        else:
            fold(point)
    for fieldname in chunks:
        value = store.execute("HGET", meta, fieldname)
        rolled.commands += 1
        hour = _window(fieldname)
        points = held.pop(hour, set())
        if value is not None:
            rolled.found += 1
            try:
                points.update(decode_chunk(value))
            except ValueError:
                rolled.corrupt += 1
        for point in points:
            fold(point)
    for points in held.values():  # a chunk removed between HKEYS and HGET
        for point in points:
            fold(point)
    return rolled


def _members(
    store: Store, key: str, low: int, high: int, rolled: Rolled
) -> Iterator[tuple[bytes, float]]:
    """The members scored in [low, high], a page at a time. A page starts at the score the
    last one ended on, past the members already read there (by count, and by name should a
    write have landed at that score meanwhile)."""
    start: int | float = low
    seen_at_start: set[bytes] = set()
    while True:
        page = store.scored_range(key, start, high, start=len(seen_at_start), num=PAGE)
        rolled.commands += 1
        rolled.found += 1 if page else 0
        for member, score in page:
            if score == start and member in seen_at_start:
                continue
            yield member, score
        if len(page) < PAGE:
            return
        last = page[-1][1]
        at_last = {m for m, s in page if s == last}
        seen_at_start = seen_at_start | at_last if last == start else at_last
        start = last


def _window(fieldname: bytes) -> int:
    return int(fieldname[len(_CHUNK) :].split(b":", 1)[0])
