"""cachectl's own runs (warm, invalidate, prune...) recorded as points, so a drop in hit rate
can be read against the job that caused it.

The whole API, for the jobs to call when they finish:

    from cachectl.runlog import record_run
    record_run(store, layout, "invalidate", result.to_dict(), duration_seconds)

Each run is one point of the series `cachectl.runs` (so `metric:cachectl.runs`, with its
aggregates): the value is the run's duration in seconds, the tags hold `job` and the result's
top-level numbers, booleans and short texts (at most 12 of them; lists and nested objects are
left out). Recording never fails the job: a Redis error is swallowed and reported as False.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.store import Store
    from cachectl.timeseries import TimeSeries

RUNS_SERIES = "cachectl.runs"
MAX_SUMMARY_FIELDS = 12
MAX_TEXT = 80


@dataclass
class RecentRun:
    at_ms: int
    job: str
    duration_seconds: float
    summary: dict[str, Any]

    def to_dict(self) -> dict:
        return asdict(self)


def run_summary(result: dict[str, Any]) -> dict[str, Any]:
    """The scalar, short part of a job's result, fit to ride in a point's tags."""
    summary: dict[str, Any] = {}
    for name, value in result.items():
        if len(summary) >= MAX_SUMMARY_FIELDS:
            break
        if isinstance(value, bool) or value is None:
            summary[name] = value
        elif isinstance(value, (int, float)):
            if math.isfinite(value):
                summary[name] = value
        elif isinstance(value, str) and len(value) <= MAX_TEXT:
            summary[name] = value
    return summary


def record_run(
    store: Store,
    layout: Layout,
    job: str,
    result: dict[str, Any],
    duration_seconds: float,
    *,
    selection: str | None = None,
) -> bool:
    """Records one finished run; True when it was stored. `selection` says in words what the
    run worked on (`tag products`, `manifest.yaml`), for the dashboard's recent runs."""
    from cachectl.errors import CachectlError
    from cachectl.timeseries import TimeSeries

    tags = {"job": job, **{k: v for k, v in run_summary(result).items() if k != "job"}}
    if selection:
        tags["selection"] = selection[:MAX_TEXT]
    try:
        TimeSeries(store, layout).add(RUNS_SERIES, max(0.0, float(duration_seconds)), tags=tags)
    except CachectlError:
        return False
    return True


def recent_runs(series: TimeSeries, limit: int = 5) -> list[RecentRun]:
    """The newest runs still held as raw points, newest first (one command)."""
    runs = []
    for point in series.recent(RUNS_SERIES, limit):
        tags = point.tag_dict
        job = tags.pop("job", "?")
        runs.append(RecentRun(point.timestamp_ms, str(job), point.value, tags))
    return runs
