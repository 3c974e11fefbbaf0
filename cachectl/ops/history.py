"""`cachectl history`: the cache's figures sampled into time series, read back, kept in bounds.

Series written by `history record` and `stats --every --record` (each sample's figures, at the
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
from cachectl.ops.stats import UnrecordedTicks
from cachectl.runlog import recent_runs
from cachectl.timeseries import AGG_MEMORY_SAMPLE, RESOLUTION_MS, Range, SeriesInfo

if TYPE_CHECKING:
    from cachectl.errors import CachectlError
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
    going every `maintain_every` seconds of recording.

    Stored data that does not read (a damaged chunk, another writer's odd value) never stops
    the recording: the upkeep skips it and says so once, in `take_warnings()`."""

    def __init__(
        self,
        series: TimeSeries,
        *,
        compact_after: float,
        maintain_every: float = DEFAULT_MAINTAIN_EVERY_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.series = series
        self.compact_after = compact_after
        self.maintain_every = maintain_every
        self.monotonic = monotonic
        self.points = 0
        self.maintenances = 0
        self.warnings: list[str] = []  # each said once
        self._untold = 0
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
        """Compaction, then retention, over the series found by one walk of the keyspace. The
        aggregate buckets are not walked: they expire by themselves (`history prune` walks
        them, for a shortened retention and for other writers' buckets without a TTL)."""
        from cachectl.errors import RedisError

        try:
            names = self.series.names()
            compacted = self.series.compact(self.compact_after, names=names)
            pruned = self.series.prune(names, aggregates=False)
        except RedisError:
            raise
        except Exception as exc:  # noqa: BLE001 -- bad stored data must not end the recording
            self.warn(
                f"history upkeep (compaction and retention) stopped on stored data it "
                f"could not handle ({type(exc).__name__}: {exc}); recording goes on"
            )
        else:
            if compacted.corrupt_chunks:
                self.warn(
                    f"{compacted.corrupt_chunks} compacted chunk(s) of the history could "
                    "not be read: kept aside as chunk:{window}:unreadable"
                )
            if pruned.corrupt_chunks:
                self.warn(
                    f"{pruned.corrupt_chunks} compacted chunk(s) of the history could not "
                    "be read: left as they are until all of their hour is past the "
                    "retention"
                )
        self.maintenances += 1

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def take_warnings(self) -> list[str]:
        """The warnings not handed out yet."""
        fresh = self.warnings[self._untold :]
        self._untold = len(self.warnings)
        return fresh


@dataclass
class RecordProgress:
    ticks: int = 0
    points: int = 0
    failures: UnrecordedTicks = field(default_factory=UnrecordedTicks)
    notice: str | None = None  # a run of failed ticks began or ended at the last tick
    new_warnings: list[str] = field(default_factory=list)  # raised during the last tick

    @property
    def failed_ticks(self) -> int:
        return self.failures.count

    @property
    def last_error(self) -> str | None:
        return self.failures.last_error

    def problem(self) -> CachectlError | None:
        return self.failures.problem(self.ticks)

    def to_dict(self) -> dict:
        return {
            "ticks": self.ticks,
            "points": self.points,
            "failed_ticks": self.failed_ticks,
            "last_error": self.last_error,
        }


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
    that cannot reach the server, or whose write is refused, is counted in
    `progress.failures` and reported through on_tick (`progress.notice` when it starts or ends
    a run of failures), and the next one tries again; stored data the upkeep cannot read is a
    warning (`progress.new_warnings`), told once."""
    from cachectl.errors import RedisError
    from cachectl.ops.stats import watch

    progress = RecordProgress()
    for tick in watch(sampler, every, max_ticks=ticks, sleep=sleep):
        progress.ticks += 1
        if tick.error is None:
            try:
                recorder.record(tick.report)
            except RedisError as err:
                tick.error = err
            # Counted from the recorder: points written before an upkeep error still count.
            progress.points = recorder.points
        progress.new_warnings = recorder.take_warnings()
        if tick.error is not None:
            progress.notice = progress.failures.failed(progress.ticks, tick.error.message)
        else:
            progress.notice = progress.failures.succeeded(progress.ticks)
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
        return {
            **self.range.to_dict(),
            "since_seconds": self.since_seconds,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "avg": self.avg,
            "last": self.last,
        }


def check_resolution(resolution: str | None) -> None:
    if resolution is not None and resolution != "raw" and resolution not in RESOLUTION_MS:
        raise UsageError(
            f"--resolution {resolution!r}: use raw or one of {', '.join(RESOLUTION_MS)}"
        )


def require_series(series: TimeSeries, name: str, found: Range | None = None) -> None:
    """NotFoundError (exit 5) for a series that is not stored, naming the nearest stored names.
    A range with data in it proves the series without the SCAN that listing names costs."""
    if found is not None and (found.points or found.aggregates):
        return
    names = series.names()
    if name in names:
        return
    from cachectl.yamlsrc import nearest

    guess = nearest(name, names)
    raise NotFoundError(
        f"no series named {name!r}" + (f" (did you mean {guess!r}?)" if guess else ""),
        hint="`cachectl history list` shows the series there are",
    )


def show(
    series: TimeSeries, name: str, since_seconds: float, resolution: str | None = None
) -> ShowResult:
    check_resolution(resolution)
    resolution = resolution or auto_resolution(since_seconds)
    now = series.now_ms()
    found = series.read(name, resolution, now - int(since_seconds * 1000), now)
    require_series(series, name, found)
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

    @property
    def aggregate_buckets(self) -> int:
        return sum(s.aggregate_buckets for s in self.series)

    @property
    def aggregate_memory_bytes(self) -> int:
        return sum(s.aggregate_memory_bytes for s in self.series)

    @property
    def aggregate_memory_estimated(self) -> bool:
        return any(s.aggregate_memory_estimated for s in self.series)

    @property
    def memory_bytes(self) -> int:
        return sum(s.memory_bytes for s in self.series)

    def to_dict(self) -> dict:
        return {
            "series": [s.to_dict() for s in self.series],
            "total_points": sum(s.points for s in self.series),
            "total_aggregate_buckets": self.aggregate_buckets,
            "total_aggregate_memory_bytes": self.aggregate_memory_bytes,
            "aggregate_memory_estimated": self.aggregate_memory_estimated,
            "total_memory_bytes": self.memory_bytes,
        }


def list_series(
    series: TimeSeries,
    names: Sequence[str] | None = None,
    aggregate_sample: int = AGG_MEMORY_SAMPLE,
) -> ListResult:
    """Every series with its points, chunks and aggregate buckets, and the memory of each.
    Buckets whose series has no other key left (its raw points pruned, its meta hash gone) are
    listed too: they take memory all the same."""
    usage = series.aggregate_usage(aggregate_sample)
    if names is None:
        names = sorted(set(series.names()) | set(usage))
    infos = series.info(names)
    for info in infos:
        found = usage.get(info.name)
        if found is not None:
            info.aggregate_buckets = found.buckets
            info.aggregate_memory_bytes = found.memory_bytes
            info.aggregate_memory_estimated = found.estimated
    return ListResult(infos)


HISTORY_REFRESH_TICKS = 60


def dashboard_tick(
    state: DashboardState,
    tick: Tick,
    series: TimeSeries,
    recorder: Recorder | None = None,
    refresh_every: int = HISTORY_REFRESH_TICKS,
) -> None:
    """One dashboard tick: the sample into the state, recorded when asked; the recent runs
    (one command) every tick; the stored history's sparklines at the first tick and every
    `refresh_every` ticks after.

    The stored history is a side show of the live figures: data in it that cannot be read is
    a warning on the dashboard, said once, and the dashboard goes on. When recording, a tick
    whose figures were not stored (no sample, or a refused write) is counted in
    `state.unrecorded`, with `state.notice` set when it starts or ends a run of them."""
    from cachectl.errors import RedisError

    state.update(tick)
    state.notice = None
    if tick.error is not None:
        if recorder is not None:  # nothing sampled, nothing stored
            state.record_error = tick.error.message
            state.notice = state.unrecorded.failed(state.ticks, tick.error.message)
        return
    try:
        if recorder is not None:
            try:
                recorder.record(tick.report)
            except RedisError as err:
                state.record_error = err.message
                state.notice = state.unrecorded.failed(state.ticks, err.message)
                raise
            state.record_error = None
            state.notice = state.unrecorded.succeeded(state.ticks)
        steps = [("recent runs", lambda: refresh_runs(series, state))]
        if state.session.ticks % refresh_every == 1 or refresh_every == 1:
            steps.append(("stored history", lambda: refresh_stored(series, state)))
        for what, step in steps:
            try:
                step()
            except RedisError:
                raise
            except Exception as exc:  # noqa: BLE001 -- bad stored data must not end the view
                state.warn(
                    f"{what}: stored data could not be read ({type(exc).__name__}: {exc}); skipped"
                )
    except RedisError as err:
        if recorder is None or state.record_error is None:
            state.error = err.message
    finally:
        if recorder is not None:
            state.recorded_points = recorder.points
            for message in recorder.take_warnings():
                state.warn(message)


# -- analysis --------------------------------------------------------------------------------

ANOMALY_SERIES = (HIT_RATIO, "cache.requests_per_s", P95, MEMORY, OPS, EVICTIONS)


@dataclass
class SeriesAnomaly:
    name: str
    latest_ms: int | None
    anomaly: Anomaly | None  # None: no points at all

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "latest_ms": self.latest_ms,
            **(
                self.anomaly.to_dict()
                if self.anomaly
                else {"value": None, "anomalous": False, "enough_history": False}
            ),
        }


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
        return {
            "baseline_seconds": self.baseline_seconds,
            "resolution": self.resolution,
            "sensitivity": self.sensitivity,
            "series": [s.to_dict() for s in self.series],
            "anomalous": [s.name for s in self.anomalous],
        }


def anomalies(
    series: TimeSeries,
    names: Sequence[str] | None = None,
    *,
    baseline_seconds: float = 3600,
    resolution: str = "raw",
    sensitivity: float = 3.0,
    latest: dict[str, float] | None = None,
) -> AnomalyReport:
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
        found = series.read(name, resolution, now - int(baseline_seconds * 1000), now)
        if names:
            # A series asked for by name must exist; the default ones may not have been
            # recorded yet, and show as "no data".
            require_series(series, name, found)
        values = found.values()
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
        return {
            "name": self.name,
            "since_seconds": self.since_seconds,
            "resolution": self.resolution,
            "k": self.k,
            "points": self.points,
            "fences": self.fences.to_dict() if self.fences else None,
            "outliers": [{"timestamp_ms": t, "value": v} for t, v in self.outliers],
        }


def outliers(
    series: TimeSeries,
    name: str,
    since_seconds: float,
    *,
    resolution: str | None = None,
    k: float = 1.5,
) -> OutlierReport:
    check_resolution(resolution)
    if k <= 0:
        raise UsageError(f"--k must be above 0, not {k:g}")
    resolution = resolution or auto_resolution(since_seconds)
    now = series.now_ms()
    stored = series.read(name, resolution, now - int(since_seconds * 1000), now)
    require_series(series, name, stored)
    values = stored.values()
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
        word = (
            "strong"
            if size >= 0.7
            else "moderate"
            if size >= 0.4
            else "weak"
            if size >= 0.2
            else "none"
        )
        if word == "none":
            return "no correlation"
        return f"{word} {'positive' if self.r > 0 else 'negative'}"

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "since_seconds": self.since_seconds,
            "resolution": self.resolution,
            "pairs": self.pairs,
            "r": self.r,
            "strength": self.strength,
        }


def correlate(
    series: TimeSeries, a: str, b: str, since_seconds: float, *, resolution: str = "1m"
) -> CorrelationReport:
    """Pearson's r of two series over aligned windows of `resolution` (each window's mean)."""
    check_resolution(resolution)
    now = series.now_ms()
    start = now - int(since_seconds * 1000)
    step = RESOLUTION_MS.get(resolution, 1000)
    found_a = series.read(a, resolution, start, now)
    found_b = series.read(b, resolution, start, now)
    require_series(series, a, found_a)
    require_series(series, b, found_b)
    pairs = align(found_a.values(), found_b.values(), step)
    r = pearson([x for _, x, _ in pairs], [y for _, _, y in pairs])
    return CorrelationReport(a, b, since_seconds, resolution, len(pairs), r)


def weighted_mean(
    values: Sequence[tuple[int, float]], weights: Sequence[tuple[int, float]]
) -> float | None:
    """The mean of `values`, each weighted by the weight recorded at the same time (traffic);
    a plain mean when no weights match."""
    by_time = dict(weights)
    pairs = [(v, by_time[t]) for t, v in values if t in by_time]
    total = sum(w for _, w in pairs)
    if total > 0:
        return sum(v * w for v, w in pairs) / total
    return sum(v for _, v in values) / len(values) if values else None
