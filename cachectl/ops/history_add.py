"""`cachectl history add`: points from the command line or `series value [time]` lines on
stdin, every one checked before any is written, in memory bounded by a cap on the batch."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO

from cachectl.errors import BadInputError, UsageError
from cachectl.library.points import as_point

if TYPE_CHECKING:
    from cachectl.timeseries import TimeSeries
    from cachectl.timeseries_codec import Point

MAX_BATCH_POINTS = 100_000  # points one run takes from stdin (a few MB in memory)
MAX_LINE_CHARS = 4096


def parse_time(text: str) -> float:
    """Epoch seconds from `1767323045` (epoch seconds) or an ISO 8601 time
    (`2026-01-02T03:04:05Z`; one without a zone is UTC). ValueError says what is wrong."""
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{text!r} is not a time after 1970")
        return seconds
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write epoch seconds or ISO 8601 (2026-01-02T03:04:05Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def parse_value(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def parse_tags(items: list[str]) -> dict[str, str] | None:
    tags: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--label {item!r}: write NAME=VALUE")
        tags[name] = value
    return tags or None


@dataclass
class AddResult:
    points: list[tuple[str, Point]] = field(default_factory=list)
    dry_run: bool = False

    @property
    def series(self) -> list[str]:
        return sorted({name for name, _ in self.points})

    def to_dict(self) -> dict:
        return {"points": len(self.points), "series": self.series, "dry_run": self.dry_run}


def one_point(
    series: str, value: str, at: str | None, tags: dict | None, now_ms: int
) -> tuple[str, Point]:
    try:
        number = parse_value(value)
        seconds = None if at is None else parse_time(at)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return as_point(series, number, seconds, tags, now_ms)


def read_lines(
    stream: TextIO, tags: dict | None, now_ms: int, limit: int | None = None
) -> list[tuple[str, Point]]:
    """Every point of `stream`, one `series value [time]` a line (blank lines and `#` comments
    skipped); BadInputError naming the first bad line, or a batch over `limit` (default
    MAX_BATCH_POINTS)."""
    limit = MAX_BATCH_POINTS if limit is None else limit
    points: list[tuple[str, Point]] = []
    number = 0
    while True:
        line = stream.readline(MAX_LINE_CHARS + 1)
        if not line:
            return points
        number += 1
        if len(line) > MAX_LINE_CHARS and not line.endswith("\n"):
            raise BadInputError(f"stdin line {number}: longer than {MAX_LINE_CHARS} characters")
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) not in (2, 3):
            raise BadInputError(
                f"stdin line {number}: write `series value [time]`, not {line.strip()!r}"
            )
        if len(points) >= limit:
            raise BadInputError(
                f"stdin holds more than {limit:,} points: split it into batches of at most "
                f"{limit:,} (nothing was written)"
            )
        try:
            points.append(
                one_point(words[0], words[1], words[2] if len(words) == 3 else None, tags, now_ms)
            )
        except UsageError as exc:
            raise BadInputError(f"stdin line {number}: {exc.message}") from None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def write(series: TimeSeries, result: AddResult) -> None:
    series.add_many(
        (name, p.value, p.timestamp_ms, p.tag_dict or None) for name, p in result.points
    )
