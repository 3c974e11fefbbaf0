"""The arithmetic behind stats, history and check: counter deltas that survive resets,
percentiles, z-score anomalies, interquartile-range outliers and the correlation of two series.

Pure functions on plain numbers, so each can be held by a test on recorded samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass


def counter_delta(previous: float | None, current: float | None) -> float | None:
    """How much a monotonic counter grew between two readings.

    A counter that went down was reset (a server restart, a counter hash deleted and written
    anew): it counted from zero since, so its whole new value is the delta. None when either
    reading is missing.
    """
    if previous is None or current is None:
        return None
    if current < previous:
        return current
    return current - previous


def counter_rate(previous: float | None, current: float | None, seconds: float) -> float | None:
    """Per-second growth of a counter between two readings `seconds` apart (resets survived)."""
    delta = counter_delta(previous, current)
    if delta is None or seconds <= 0:
        return None
    return delta / seconds


def counter_rates(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(t, per-second rate) between each pair of successive (t seconds, counter value) points."""
    out = []
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        rate = counter_rate(v0, v1, t1 - t0)
        if rate is not None:
            out.append((t1, rate))
    return out


def ratio(part: float | None, whole: float | None) -> float | None:
    """part / whole, or None when there is nothing to divide (no traffic is not a 0% hit rate)."""
    if part is None or not whole:
        return None
    return part / whole


def hit_rate(hits: float | None, misses: float | None) -> float | None:
    """hits / (hits + misses) as a ratio in 0..1; None without traffic."""
    if hits is None or misses is None:
        return None
    return ratio(hits, hits + misses)


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The `pct` percentile (0..100) by linear interpolation between the closest ranks (the
    "linear" method of numpy and of most dashboards). None for no values."""
    if not values:
        return None
    if not 0 <= pct <= 100:
        raise ValueError(f"a percentile is between 0 and 100, not {pct}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * pct / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def stdev(values: Sequence[float]) -> float | None:
    """Sample standard deviation (n - 1); None for fewer than two values."""
    if len(values) < 2:
        return None
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


@dataclass(frozen=True)
class Anomaly:
    """The latest value held against a baseline window by its z-score."""

    value: float
    baseline_mean: float | None
    baseline_stdev: float | None
    baseline_points: int
    z_score: float | None
    sensitivity: float
    anomalous: bool
    enough_history: bool

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["z_score"] is not None and math.isinf(out["z_score"]):
            out["z_score"] = None  # JSON has no infinity; `anomalous` still says it
        return out


MIN_BASELINE_POINTS = 5


def zscore_anomaly(
    latest: float,
    baseline: Sequence[float],
    sensitivity: float = 3.0,
    min_points: int = MIN_BASELINE_POINTS,
) -> Anomaly:
    """Whether `latest` lies more than `sensitivity` standard deviations from the baseline's mean.

    A flat baseline (no spread) makes any different value anomalous. With fewer than
    `min_points` baseline values nothing is called anomalous: `enough_history` says so.
    """
    if sensitivity <= 0:
        raise ValueError(
            f"the sensitivity is a number of standard deviations above 0, not {sensitivity}"
        )
    n = len(baseline)
    m, s = mean(baseline), stdev(baseline)
    if n < max(min_points, 2) or m is None or s is None:
        return Anomaly(latest, m, s, n, None, sensitivity, False, False)
    if s == 0:
        flat = math.isclose(latest, m, rel_tol=1e-12, abs_tol=1e-12)
        z = 0.0 if flat else math.copysign(math.inf, latest - m)
    else:
        z = (latest - m) / s
    return Anomaly(latest, m, s, n, z, sensitivity, abs(z) > sensitivity, True)


@dataclass(frozen=True)
class Fences:
    q1: float
    q3: float
    iqr: float
    low: float
    high: float

    def to_dict(self) -> dict:
        return asdict(self)


def iqr_fences(values: Sequence[float], k: float = 1.5) -> Fences | None:
    """Tukey's fences: [Q1 - k*IQR, Q3 + k*IQR]; None for fewer than four values."""
    if k <= 0:
        raise ValueError(f"the IQR multiplier must be above 0, not {k}")
    if len(values) < 4:
        return None
    q1, q3 = percentile(values, 25), percentile(values, 75)
    iqr = q3 - q1
    return Fences(q1, q3, iqr, q1 - k * iqr, q3 + k * iqr)


def iqr_outliers(
    points: Sequence[tuple[int, float]], k: float = 1.5
) -> tuple[Fences | None, list[tuple[int, float]]]:
    """The (timestamp, value) points outside Tukey's fences, with the fences."""
    fences = iqr_fences([v for _, v in points], k)
    if fences is None:
        return None, []
    return fences, [(t, v) for t, v in points if v < fences.low or v > fences.high]


def bucket_means(points: Iterable[tuple[int, float]], step_ms: int) -> dict[int, float]:
    """The mean value of the points in each `step_ms` bucket, keyed by bucket start."""
    sums: dict[int, list[float]] = {}
    for t, v in points:
        acc = sums.setdefault(t - t % step_ms, [0.0, 0])
        acc[0] += v
        acc[1] += 1
    return {start: total / count for start, (total, count) in sums.items()}


def align(
    a: Iterable[tuple[int, float]], b: Iterable[tuple[int, float]], step_ms: int
) -> list[tuple[int, float, float]]:
    """(bucket start, mean of a, mean of b) for every bucket where both series have points."""
    ma, mb = bucket_means(a, step_ms), bucket_means(b, step_ms)
    return [(t, ma[t], mb[t]) for t in sorted(ma.keys() & mb.keys())]


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's correlation coefficient; None for fewer than three pairs or a flat series."""
    if len(xs) != len(ys):
        raise ValueError("the two series must have as many values")
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))
