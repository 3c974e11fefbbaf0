"""`cachectl history`: the cache's figures sampled into time series, read back, kept in bounds.

Series written by `history record` and `stats --watch --record` (each sample's figures, at the
sample's time; a figure that cannot be measured in a sample is left out, never written as 0):

- `cache.hit_ratio` (0..1, over the interval), `cache.requests_per_s`, `cache.hits_per_s`,
  `cache.misses_per_s`, `cache.response_p50_ms`, `cache.response_p95_ms`,
  `cache.response_p99_ms`; per endpoint `cache.hit_ratio:{endpoint}`,
  `cache.requests_per_s:{endpoint}`, `cache.response_p95_ms:{endpoint}`;
- `redis.used_memory_bytes`, `redis.memory_used_ratio` (of maxmemory), `redis.ops_per_s`,
  `redis.evicted_per_s`, `redis.expired_per_s`, `redis.hit_ratio` (keyspace, over the
  interval), `redis.connected_clients`, `redis.fragmentation_ratio`;
- `cachectl.runs` (see cachectl.runlog).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachectl.analysis import Anomaly, Fences, align, iqr_outliers, pearson, zscore_anomaly
from cachectl.errors import NotFoundError, UsageError
from cachectl.runlog import recent_runs
from cachectl.timeseries import RESOLUTION_MS, Range, SeriesInfo

if TYPE_CHECKING:
    from cachectl.ops.stats import DashboardState, Sampler, StatsReport, Tick
    from cachectl.timeseries import TimeSeries

HIT_RATIO = "cache.hit_ratio"
MEMORY = "redis.used_memory_bytes"
OPS = "redis.ops_per_s"
EVICTIONS = "redis.evicted_per_s"
P95 = "cache.response_p95_ms"
DASHBOARD_SERIES = (HIT_RATIO, MEMORY, OPS)
DEFAULT_MAINTAIN_EVERY_SECONDS = 3600.0


def endpoint_series(metric: str, endpoint: str) -> str:
    return f"{metric}:{endpoint}"


def report_points(report: StatsReport) -> list[tuple[str, float]]:
    """The figures of one report worth keeping, by series name."""
    app, server, rt = report.application, report.server, report.application.response_times
    figures: list[tuple[str, float | None]] = [
        (HIT_RATIO, app.interval_hit_rate),
        ("cache.requests_per_s", app.requests_per_s),
        ("cache.hits_per_s", app.hits_per_s),
        ("cache.misses_per_s", app.misses_per_s),
        ("cache.response_p50_ms", rt.p50_ms),
        (P95, rt.p95_ms),
        ("cache.response_p99_ms", rt.p99_ms),
        (MEMORY, server.used_memory_bytes),
        ("redis.memory_used_ratio", server.memory_used_ratio),
        (OPS, server.ops_per_s),
        (EVICTIONS, server.evicted_per_s),
        ("redis.expired_per_s", server.expired_per_s),
        ("redis.hit_ratio", server.interval_hit_rate),
        ("redis.connected_clients", server.connected_clients),
        ("redis.fragmentation_ratio", server.fragmentation_ratio),
    ]
    for e in app.endpoints:
        figures += [
            (endpoint_series(HIT_RATIO, e.endpoint), e.interval_hit_rate),
            (endpoint_series("cache.requests_per_s", e.endpoint), e.requests_per_s),
            (endpoint_series(P95, e.endpoint), e.p95_ms),
        ]
    return [(name, float(value)) for name, value in figures if value is not None]


class Recorder:
    """Stores each report's figures at the report's time; keeps compaction and retention
    going every `maintain_every` seconds of recording."""

    def __init__(self, series: TimeSeries, *, compact_after: float,
                 maintain_every: float = DEFAULT_MAINTAIN_EVERY_SECONDS,
                 monotonic: Callable[[], float] = time.monotonic):
        self.series = series
        self.compact_after = compact_after
        self.maintain_every = maintain_every
        self.monotonic = monotonic
        self.points = 0
        self.maintenances = 0
        self._last_maintenance: float | None = None

    def record(self, report: StatsReport) -> int:
        at = int(report.taken_at * 1000)
        written = self.series.add_many(
            (name, value, at, None) for name, value in report_points(report)
        )
        self.points += written
        now = self.monotonic()
        if self._last_maintenance is None or now - self._last_maintenance >= self.maintain_every:
            self._last_maintenance = now
            self.maintain()
        return written

    def maintain(self) -> None:
        self.series.compact(self.compact_after)
        self.series.prune()
        self.maintenances += 1


@dataclass
class RecordProgress:
    ticks: int = 0
    points: int = 0
    failed_ticks: int = 0
    last_error: str | None = None

    def to_dict(self) -> dict:
        return {"ticks": self.ticks, "points": self.points, "failed_ticks": self.failed_ticks,
                "last_error": self.last_error}


def record(
    sampler: Sampler,
    recorder: Recorder,
    every: float,
    *,
    ticks: int | None = None,
    on_tick: Callable[[Tick, RecordProgress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RecordProgress:
    """Samples every `every` seconds and stores the figures, until `ticks` or Ctrl-C. A tick
    that cannot reach the server is reported through on_tick and the next one tries again."""
    from cachectl.errors import RedisError
    from cachectl.ops.stats import watch

    progress = RecordProgress()
    for tick in watch(sampler, every, max_ticks=ticks, sleep=sleep):
        progress.ticks += 1
        if tick.error is None:
            try:
                progress.points += recorder.record(tick.report)
            except RedisError as err:
                tick.error = err
        if tick.error is not None:
            progress.failed_ticks += 1
            progress.last_error = tick.error.message
        if on_tick:
            on_tick(tick, progress)
    return progress


# -- the dashboard's history -----------------------------------------------------------------


def refresh_stored(series: TimeSeries, state: DashboardState, *, minutes: int = 60) -> None:
    """The last hour of the dashboard's series at 1m, for its sparklines."""
    now = series.now_ms()
    stored = {}
    for name in DASHBOARD_SERIES:
        values = [v for _, v in series.aggregates(name, "1m", now - minutes * 60_000, now).values()]
        if values:
            stored[name] = values
    state.stored = stored


def refresh_runs(series: TimeSeries, state: DashboardState, limit: int = 5) -> None:
    state.runs = recent_runs(series, limit)


# -- reading ---------------------------------------------------------------------------------


def auto_resolution(since_seconds: float) -> str:
    """The finest resolution that keeps a range to a few hundred rows."""
    if since_seconds <= 3600:
        return "raw"
    if since_seconds <= 12 * 3600:
        return "1m"
    if since_seconds <= 3 * 86400:
        return "5m"
    if since_seconds <= 30 * 86400:
        return "1h"
    return "1d"


@dataclass
class ShowResult:
    range: Range
    since_seconds: float
    count: int = 0
    min: float | None = None
    max: float | None = None
    avg: float | None = None
    last: float | None = None

    def to_dict(self) -> dict:
        return {**self.range.to_dict(), "since_seconds": self.since_seconds, "count": self.count,
                "min": self.min, "max": self.max, "avg": self.avg, "last": self.last}


def check_resolution(resolution: str | None) -> None:
    if resolution is not None and resolution != "raw" and resolution not in RESOLUTION_MS:
        raise UsageError(
            f"--resolution {resolution!r}: use raw or one of {', '.join(RESOLUTION_MS)}"
        )


def show(series: TimeSeries, name: str, since_seconds: float,
         resolution: str | None = None) -> ShowResult:
    check_resolution(resolution)
    resolution = resolution or auto_resolution(since_seconds)
    now = series.now_ms()
    found = series.read(name, resolution, now - int(since_seconds * 1000), now)
    if not found.points and not found.aggregates and name not in series.names():
        raise NotFoundError(f"no series named {name!r}",
                            hint="`cachectl history list` shows the series there are")
    result = ShowResult(found, since_seconds)
    if resolution == "raw":
        values = [p.value for p in found.points]
        result.count = len(values)
    else:
        values = [a.avg for a in found.aggregates if a.count]
        result.count = sum(a.count for a in found.aggregates)
        result.min = min((a.min for a in found.aggregates), default=None)
        result.max = max((a.max for a in found.aggregates), default=None)
    if values:
        if resolution == "raw":
            result.min, result.max = min(values), max(values)
            result.avg = sum(values) / len(values)
        else:
            total = sum(a.sum for a in found.aggregates)
            result.avg = total / result.count if result.count else None
        result.last = values[-1] if resolution == "raw" else found.aggregates[-1].last
    return result


@dataclass
class ListResult:
    series: list[SeriesInfo] = field(default_factory=list)

    @property
    def raw_memory_bytes(self) -> int:
        return sum(s.raw_memory_bytes for s in self.series)

    def to_dict(self) -> dict:
        return {
            "series": [s.to_dict() for s in self.series],
            "total_points": sum(s.points for s in self.series),
            "total_memory_bytes": sum(s.raw_memory_bytes + s.meta_memory_bytes for s in self.series),
        }


def list_series(series: TimeSeries, names: Sequence[str] | None = None) -> ListResult:
    return ListResult(series.info(series.names() if names is None else names))


HISTORY_REFRESH_TICKS = 60


def dashboard_tick(state: DashboardState, tick: Tick, series: TimeSeries,
                   recorder: Recorder | None = None,
                   refresh_every: int = HISTORY_REFRESH_TICKS) -> None:
    """One dashboard tick: the sample into the state, recorded when asked; the recent runs
    (one command) every tick; the stored history's sparklines at the first tick and every
    `refresh_every` ticks after."""
    from cachectl.errors import RedisError

    state.update(tick)
    if tick.error is not None:
        return
    try:
        if recorder is not None:
            recorder.record(tick.report)
            state.recorded_points = recorder.points
        refresh_runs(series, state)
        if state.session.ticks % refresh_every == 1 or refresh_every == 1:
            refresh_stored(series, state)
    except RedisError as err:
        state.error = err.message


# -- analysis --------------------------------------------------------------------------------

ANOMALY_SERIES = (HIT_RATIO, "cache.requests_per_s", P95, MEMORY, OPS, EVICTIONS)


@dataclass
class SeriesAnomaly:
    name: str
    latest_ms: int | None
    anomaly: Anomaly | None  # None: no points at all

    def to_dict(self) -> dict:
        return {"name": self.name, "latest_ms": self.latest_ms,
                **(self.anomaly.to_dict() if self.anomaly else {"value": None,
                                                                "anomalous": False,
                                                                "enough_history": False})}


@dataclass
class AnomalyReport:
    baseline_seconds: float
    resolution: str
    sensitivity: float
    series: list[SeriesAnomaly] = field(default_factory=list)

    @property
    def anomalous(self) -> list[SeriesAnomaly]:
        return [s for s in self.series if s.anomaly and s.anomaly.anomalous]

    def to_dict(self) -> dict:
        return {"baseline_seconds": self.baseline_seconds, "resolution": self.resolution,
                "sensitivity": self.sensitivity, "series": [s.to_dict() for s in self.series],
                "anomalous": [s.name for s in self.anomalous]}


def anomalies(series: TimeSeries, names: Sequence[str] | None = None, *,
              baseline_seconds: float = 3600, resolution: str = "raw",
              sensitivity: float = 3.0,
              latest: dict[str, float] | None = None) -> AnomalyReport:
    """Each series' latest value against the `baseline_seconds` before it, by z-score.

    `latest` gives values measured live (a check's sample) to hold against the whole stored
    window instead of the newest stored value.
    """
    check_resolution(resolution)
    if sensitivity <= 0:
        raise UsageError(f"--sensitivity must be above 0, not {sensitivity:g}")
    report = AnomalyReport(baseline_seconds, resolution, sensitivity)
    now = series.now_ms()
    for name in names or ANOMALY_SERIES:
        values = series.read(name, resolution, now - int(baseline_seconds * 1000), now).values()
        if latest is not None:
            if name not in latest:
                continue
            newest_ms, newest, baseline = now, latest[name], [v for _, v in values]
        elif values:
            newest_ms, newest = values[-1]
            baseline = [v for _, v in values[:-1]]
        else:
            report.series.append(SeriesAnomaly(name, None, None))
            continue
        report.series.append(
            SeriesAnomaly(name, newest_ms, zscore_anomaly(newest, baseline, sensitivity))
        )
    return report


@dataclass
class OutlierReport:
    name: str
    since_seconds: float
    resolution: str
    k: float
    points: int
    fences: Fences | None
    outliers: list[tuple[int, float]]

    def to_dict(self) -> dict:
        return {"name": self.name, "since_seconds": self.since_seconds,
                "resolution": self.resolution, "k": self.k, "points": self.points,
                "fences": self.fences.to_dict() if self.fences else None,
                "outliers": [{"timestamp_ms": t, "value": v} for t, v in self.outliers]}


def outliers(series: TimeSeries, name: str, since_seconds: float, *,
             resolution: str | None = None, k: float = 1.5) -> OutlierReport:
    check_resolution(resolution)
    if k <= 0:
        raise UsageError(f"--k must be above 0, not {k:g}")
    resolution = resolution or auto_resolution(since_seconds)
    now = series.now_ms()
    values = series.read(name, resolution, now - int(since_seconds * 1000), now).values()
    fences, found = iqr_outliers(values, k)
    return OutlierReport(name, since_seconds, resolution, k, len(values), fences, found)


@dataclass
class CorrelationReport:
    a: str
    b: str
    since_seconds: float
    resolution: str
    pairs: int
    r: float | None

    @property
    def strength(self) -> str:
        if self.r is None:
            return "unknown"
        size = abs(self.r)
        word = "strong" if size >= 0.7 else "moderate" if size >= 0.4 else "weak" if size >= 0.2 \
            else "none"
        if word == "none":
            return "no correlation"
        return f"{word} {'positive' if self.r > 0 else 'negative'}"

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "since_seconds": self.since_seconds,
                "resolution": self.resolution, "pairs": self.pairs, "r": self.r,
                "strength": self.strength}


def correlate(series: TimeSeries, a: str, b: str, since_seconds: float, *,
              resolution: str = "1m") -> CorrelationReport:
    """Pearson's r of two series over aligned windows of `resolution` (each window's mean)."""
    check_resolution(resolution)
    now = series.now_ms()
    start = now - int(since_seconds * 1000)
    step = RESOLUTION_MS.get(resolution, 1000)
    pairs = align(series.read(a, resolution, start, now).values(),
                  series.read(b, resolution, start, now).values(), step)
    r = pearson([x for _, x, _ in pairs], [y for _, _, y in pairs])
    return CorrelationReport(a, b, since_seconds, resolution, len(pairs), r)


def weighted_mean(values: Sequence[tuple[int, float]],
                  weights: Sequence[tuple[int, float]]) -> float | None:
    """The mean of `values`, each weighted by the weight recorded at the same time (traffic);
    a plain mean when no weights match."""
    by_time = dict(weights)
    pairs = [(v, by_time[t]) for t, v in values if t in by_time]
    total = sum(w for _, w in pairs)
    if total > 0:
        return sum(v * w for v, w in pairs) / total
    return sum(v for _, v in values) / len(values) if values else None
