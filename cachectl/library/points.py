"""Points an application adds to a history series, checked and turned into the commands that
store them, with no I/O: the raw point and the meta hash of docs/keyspace.md's time-series
layout, and the aggregate buckets kept up to date by the same script cachectl's own writer runs
(cachectl.timeseries), so `cachectl history` reads them at every resolution.

`AsyncAPICache.add_points` (and APICache's, generated from it) sends them; `cachectl history
add` checks its input with `as_point` too.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cachectl.errors import UsageError
from cachectl.layout import js_stringify
from cachectl.timeseries import AGGREGATE_SCRIPT, DEFAULT_RETENTION_SECONDS, point_writes
from cachectl.timeseries_codec import Point

AGGREGATE_SHA = hashlib.sha1(AGGREGATE_SCRIPT.encode()).hexdigest()
POINTS_PER_ROUND = 500  # points sent in one pipeline
MAX_SERIES_NAME = 1024


def as_time_ms(at: Any, now_ms: int) -> int:
    """A point's time: None (now), epoch seconds (int or float) or a datetime (a naive one is
    local time, as `datetime.timestamp` reads it)."""
    if at is None:
        return now_ms
    if isinstance(at, datetime):
        return round(at.timestamp() * 1000)
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise UsageError(f"a point's time must be epoch seconds or a datetime, not {at!r}")
    if at < 0:
        raise UsageError(f"a point's time must be after 1970, not {at!r}")
    return round(at * 1000)


def as_point(series: Any, value: Any, at: Any, tags: Any, now_ms: int) -> tuple[str, Point]:
    """(series name, Point), or UsageError saying what is wrong with it."""
    if not isinstance(series, str) or not series.strip():
        raise UsageError(f"a series name must be a non-empty text, not {series!r}")
    if len(series) > MAX_SERIES_NAME or any(c in series for c in "\r\n\0"):
        raise UsageError(f"a series name must be one line of at most {MAX_SERIES_NAME} characters")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"a point's value must be a finite number, not {value!r}")
    if tags is not None and not isinstance(tags, dict):
        raise UsageError(f"a point's tags must be a dict, not {type(tags).__name__}")
    try:
        tag_text = js_stringify(tags or {})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"a point's tags must be JSON: {exc}") from None
    return series, Point(as_time_ms(at, now_ms), float(value), tag_text)


def as_points(points: Iterable[Any], now_ms: int) -> list[tuple[str, Point]]:
    """Each of `points`, a (series, value), (series, value, at) or (series, value, at, tags)
    tuple, checked: one bad point raises before anything is written."""
    checked = []
    for number, item in enumerate(points, 1):
        if not isinstance(item, (tuple, list)) or not 2 <= len(item) <= 4:
            raise UsageError(f"point {number}: write (series, value[, at[, tags]]), not {item!r}")
        series, value, at, tags = (*item, None, None)[:4]
        try:
            checked.append(as_point(series, value, at, tags, now_ms))
        except UsageError as exc:
            raise UsageError(f"point {number}: {exc.message}") from None
    return checked


def round_commands(
    layout: Any, batch: list[tuple[str, Point]]
) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """For one round of points: the plain commands, the aggregate calls as EVALSHA commands,
    and the same calls as EVAL (for a server that has not seen the script yet)."""
    plain, calls = point_writes(layout, batch, DEFAULT_RETENTION_SECONDS)
    args = [
        (1, key, repr(value), stamp, bucket, expire_at)
        for key, value, stamp, bucket, expire_at in calls
    ]
    return (
        plain,
        [("EVALSHA", AGGREGATE_SHA, *a) for a in args],
        [("EVAL", AGGREGATE_SCRIPT, *a) for a in args],
    )
