"""`cachectl check`: thresholds held against a live sample, every condition with its measured
value and verdict. A condition that cannot be measured fails: a gate that passes on no data
would lie to the pipeline."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import UsageError

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.ops.stats import StatsReport
    from cachectl.store import Store

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4,
               "ki": 1024, "mi": 1024**2, "gi": 1024**3, "ti": 1024**4}  # fmt: skip


@dataclass(frozen=True)
class MemoryLimit:
    """--max-memory: a share of maxmemory (`80%`) or a size (`2GiB`, `500MB`, `1073741824`)."""

    percent: float | None = None
    bytes: int | None = None

    @classmethod
    def parse(cls, text: str) -> MemoryLimit:
        stripped = text.strip()
        if stripped.endswith("%"):
            try:
                value = float(stripped[:-1])
            except ValueError:
                raise UsageError(f"--max-memory {text!r} is not a percentage") from None
            if not 0 < value <= 100:
                raise UsageError(f"--max-memory {text!r}: a percentage is above 0 and at most 100")
            return cls(percent=value)
        match = _SIZE.match(stripped)
        if not match:
            raise UsageError(
                f"--max-memory {text!r} is neither a percentage nor a size",
                hint="write 80% (of maxmemory) or a size such as 2GiB, 500MB, 1073741824",
            )
        unit = (match.group(2) or "").lower().rstrip("b")
        size = int(float(match.group(1)) * _SIZE_UNITS[unit])
        if size <= 0:
            raise UsageError(f"--max-memory {text!r}: a size must be above 0 bytes")
        return cls(bytes=size)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.bytes} bytes"


@dataclass(frozen=True)
class Thresholds:
    min_hit_rate_pct: float | None = None
    endpoint: str | None = None
    max_memory: MemoryLimit | None = None
    max_evictions_per_s: float | None = None
    max_p95_ms: float | None = None
    no_anomaly: bool = False
    anomaly_sensitivity: float = 3.0

    def validate(self) -> None:
        """Raises a usage error for a threshold no measurement could ever meet, or none at all."""
        if not any((self.min_hit_rate_pct is not None, self.max_memory, self.no_anomaly,
                    self.max_evictions_per_s is not None, self.max_p95_ms is not None)):
            raise UsageError(
                "no condition to check",
                hint="give at least one of --min-hit-rate, --max-memory, --max-evictions-per-s, "
                "--max-p95-ms, --no-anomaly",
            )
        if self.min_hit_rate_pct is not None and not 0 <= self.min_hit_rate_pct <= 100:
            raise UsageError(f"--min-hit-rate is a percentage from 0 to 100, not {self.min_hit_rate_pct:g}")
        if self.max_evictions_per_s is not None and not self.max_evictions_per_s >= 0:
            raise UsageError(f"--max-evictions-per-s cannot be negative ({self.max_evictions_per_s:g})")
        if self.max_p95_ms is not None and not self.max_p95_ms > 0:
            raise UsageError(f"--max-p95-ms must be above 0 ms, not {self.max_p95_ms:g}")
        if not self.anomaly_sensitivity > 0:
            raise UsageError(f"--sensitivity must be above 0, not {self.anomaly_sensitivity:g}")
        if self.endpoint is not None and self.min_hit_rate_pct is None and self.max_p95_ms is None:
            raise UsageError("--endpoint applies to --min-hit-rate and --max-p95-ms: give one")
        for value in (self.min_hit_rate_pct, self.max_evictions_per_s, self.max_p95_ms):
            if value is not None and not math.isfinite(value):
                raise UsageError("thresholds must be finite numbers")


@dataclass
class Condition:
    name: str  # min_hit_rate, max_memory, max_evictions_per_s, max_p95_ms, no_anomaly
    description: str  # "hit rate >= 90%"
    threshold: float | None
    measured: float | None
    unit: str  # percent, bytes, per_second, ms, z_score
    ok: bool
    detail: str = ""

    @property
    def verdict(self) -> str:
        if self.ok:
            return "pass"
        return "no data" if self.measured is None else "fail"

    def to_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


@dataclass
class CheckResult:
    source: str  # "sample" or "history"
    seconds: float  # the sample's length or the history window
    conditions: list[Condition] = field(default_factory=list)
    checked_at: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.conditions)

    @property
    def failed(self) -> list[Condition]:
        return [c for c in self.conditions if not c.ok]

    def to_dict(self) -> dict:
        return {
            "ok": self.ok,
            "source": self.source,
            "seconds": self.seconds,
            "checked_at": self.checked_at,
            "conditions": [c.to_dict() for c in self.conditions],
        }


def _pct(value: float) -> str:
    return f"{value:.4g}%"


def evaluate_report(thresholds: Thresholds, report: StatsReport, seconds: float) -> list[Condition]:
    """The live conditions measured from a stats report taken over `seconds`."""
    conditions: list[Condition] = []
    app, server = report.application, report.server
    if thresholds.min_hit_rate_pct is not None:
        conditions.append(_hit_rate_condition(thresholds, report))
    if thresholds.max_memory is not None:
        conditions.append(_memory_condition(thresholds.max_memory, server.used_memory_bytes,
                                            server.maxmemory_bytes, server.total_system_memory_bytes))
    if thresholds.max_evictions_per_s is not None:
        limit = thresholds.max_evictions_per_s
        measured = server.evicted_per_s
        conditions.append(Condition(
            "max_evictions_per_s", f"evictions <= {limit:g}/s", limit, measured, "per_second",
            measured is not None and measured <= limit,
            "" if measured is not None else "the server's evicted_keys could not be read twice",
        ))
    if thresholds.max_p95_ms is not None:
        limit = thresholds.max_p95_ms
        what = f"p95 of {thresholds.endpoint}" if thresholds.endpoint else "p95"
        if thresholds.endpoint:
            stats = next((e for e in app.endpoints if e.endpoint == thresholds.endpoint), None)
            measured, count = (stats.p95_ms, stats.logged_requests) if stats else (None, 0)
        else:
            measured, count = app.response_times.p95_ms, app.response_times.count
        detail = (f"{count:,} requests logged" if measured is not None
                  else "no requests in the response-time log during the sample")
        conditions.append(Condition(
            "max_p95_ms", f"{what} <= {limit:g} ms", limit, measured, "ms",
            measured is not None and measured <= limit, detail,
        ))
    return conditions


def _hit_rate_condition(thresholds: Thresholds, report: StatsReport) -> Condition:
    limit = thresholds.min_hit_rate_pct
    app = report.application
    endpoint = thresholds.endpoint
    what = f"hit rate of {endpoint}" if endpoint else "hit rate"
    description = f"{what} >= {limit:g}%"
    if not app.counters_present:
        return Condition("min_hit_rate", description, limit, None, "percent", False,
                         "the application counters are missing")
    if endpoint:
        stats = next((e for e in app.endpoints if e.endpoint == endpoint), None)
        if stats is None:
            return Condition("min_hit_rate", description, limit, None, "percent", False,
                             f"no counters for endpoint {endpoint!r}")
        interval, lifetime = stats.interval_hit_rate, stats.hit_rate
    else:
        interval, lifetime = app.interval_hit_rate, app.hit_rate
    if interval is not None:
        rate, detail = interval, "over the sample"
    elif lifetime is not None:
        rate, detail = lifetime, "no requests during the sample: the counters' lifetime rate"
    else:
        return Condition("min_hit_rate", description, limit, None, "percent", False,
                         "no hits or misses counted")
    measured = rate * 100
    return Condition("min_hit_rate", description, limit, measured, "percent", measured >= limit,
                     detail)


def _memory_condition(limit: MemoryLimit, used: int | None, maxmemory: int | None,
                      system: int | None) -> Condition:
    if limit.bytes is not None:
        description = f"used memory <= {limit.bytes:,} bytes"
        ok = used is not None and used <= limit.bytes
        return Condition("max_memory", description, limit.bytes, used, "bytes", ok,
                         "" if used is not None else "used_memory could not be read")
    description = f"used memory <= {limit.percent:g}% of maxmemory"
    base, base_name = maxmemory, "maxmemory"
    if not base:
        # Without maxmemory the server grows until the machine runs out: measure against that.
        base, base_name = system, "the machine's memory (no maxmemory set)"
    if used is None or not base:
        return Condition("max_memory", description, limit.percent, None, "percent", False,
                         "neither maxmemory nor the machine's memory is known")
    measured = used / base * 100
    return Condition("max_memory", description, limit.percent, measured, "percent",
                     measured <= limit.percent, f"{used:,} of {base:,} bytes ({base_name})")


def check_sample(
    store: Store,
    layout: Layout,
    thresholds: Thresholds,
    *,
    sample_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckResult:
    """The conditions measured over a live sample of `sample_seconds`."""
    from cachectl.ops.stats import take_stats

    report = take_stats(store, layout, sample_seconds=sample_seconds, log_window_seconds=0,
                        sleep=sleep)
    result = CheckResult("sample", sample_seconds, checked_at=report.taken_at)
    result.conditions = evaluate_report(thresholds, report, sample_seconds)
    return result
