"""`cachectl check`: thresholds held against a live sample, every condition with its measured
value and verdict. A condition that cannot be measured fails: a gate that passes on no data
would lie to the pipeline. One rule for every condition: one with no data in its sample (no
requests during it, for the hit rate and p95) is NO DATA, unless `allow_lifetime` lets the
lifetime figure stand in (the counters' lifetime hit rate, the whole response-time log's p95,
evictions over the server's uptime), which the condition then says (`lifetime`, its detail)."""

from __future__ import annotations

import base64
import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit, urlunsplit

from cachectl.errors import CachectlError, PartialFailure, UsageError
from cachectl.ops.streak import FailureStreak, plural

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.ops.history import AnomalyReport
    from cachectl.ops.stats import StatsReport
    from cachectl.store import Store
    from cachectl.timeseries import TimeSeries

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
    allow_lifetime: bool = False  # lifetime figures may stand in for a sample without data

    def validate(self) -> None:
        """Raises a usage error for a threshold no measurement could ever meet, or none at all."""
        if not any(
            (
                self.min_hit_rate_pct is not None,
                self.max_memory,
                self.no_anomaly,
                self.max_evictions_per_s is not None,
                self.max_p95_ms is not None,
            )
        ):
            raise UsageError(
                "no condition to check",
                hint="give at least one of --min-hit-rate, --max-memory, --max-evictions-per-s, "
                "--max-p95-ms, --fail-on-anomaly",
            )
        if self.min_hit_rate_pct is not None and not 0 <= self.min_hit_rate_pct <= 100:
            raise UsageError(
                f"--min-hit-rate is a percentage from 0 to 100, not {self.min_hit_rate_pct:g}"
            )
        if self.max_evictions_per_s is not None and not self.max_evictions_per_s >= 0:
            raise UsageError(
                f"--max-evictions-per-s cannot be negative ({self.max_evictions_per_s:g})"
            )
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
    lifetime: bool = False  # measured from the lifetime figure, the sample having no data
    # max_p95_ms: the response-time log members the figure was read from (None for the others)
    log_members: int | None = None

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
    error: str | None = None  # the round could not reach Redis

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
            "error": self.error,
        }


def _pct(value: float) -> str:
    return f"{value:.4g}%"


ALLOW_LIFETIME = "--allow-lifetime"


def evaluate_report(
    thresholds: Thresholds,
    report: StatsReport,
    lifetime_log: Callable[[], StatsReport] | None = None,
) -> list[Condition]:
    """The live conditions measured from a stats report (rates over its sample).

    `lifetime_log` reads the whole response-time log, for a p95 with no request in the
    sample when `thresholds.allow_lifetime` lets it stand in."""
    conditions: list[Condition] = []
    server = report.server
    if thresholds.min_hit_rate_pct is not None:
        conditions.append(_hit_rate_condition(thresholds, report))
    if thresholds.max_memory is not None:
        conditions.append(
            _memory_condition(
                thresholds.max_memory,
                server.used_memory_bytes,
                server.maxmemory_bytes,
                server.total_system_memory_bytes,
            )
        )
    if thresholds.max_evictions_per_s is not None:
        limit = thresholds.max_evictions_per_s
        measured, detail, lifetime = server.evicted_per_s, "", False
        if measured is None:
            detail = "the server's evicted_keys could not be read twice"
            over_uptime = (
                server.evicted_keys / server.uptime_seconds
                if server.evicted_keys is not None and server.uptime_seconds
                else None
            )
            if over_uptime is not None and thresholds.allow_lifetime:
                measured, lifetime = over_uptime, True
                detail += f": the rate over the server's uptime stands in ({ALLOW_LIFETIME})"
            elif over_uptime is not None:
                detail += f" (the rate over the server's uptime stands in with {ALLOW_LIFETIME})"
        conditions.append(
            Condition(
                "max_evictions_per_s",
                f"evictions <= {limit:g}/s",
                limit,
                measured,
                "per_second",
                measured is not None and measured <= limit,
                detail,
                lifetime,
            )
        )
    if thresholds.max_p95_ms is not None:
        limit = thresholds.max_p95_ms
        what = f"p95 of {thresholds.endpoint}" if thresholds.endpoint else "p95"
        measured, count, members = _p95(report, thresholds.endpoint)
        detail, lifetime = f"{count:,} requests logged", False
        if measured is None:
            detail = "no requests in the response-time log during the sample"
            if thresholds.allow_lifetime and lifetime_log is not None:
                measured, count, members = _p95(lifetime_log(), thresholds.endpoint)
                if measured is not None:
                    lifetime = True
                    detail += (
                        f": the p95 of the whole log (its last hour), {count:,} requests, "
                        f"stands in ({ALLOW_LIFETIME})"
                    )
                else:
                    detail += ", nor in the whole log"
            else:
                detail += f" (the whole log's p95 stands in with {ALLOW_LIFETIME})"
        conditions.append(
            Condition(
                "max_p95_ms",
                f"{what} <= {limit:g} ms",
                limit,
                measured,
                "ms",
                measured is not None and measured <= limit,
                detail,
                lifetime,
                members,
            )
        )
    return conditions


def _p95(report: StatsReport, endpoint: str | None) -> tuple[float | None, int, int]:
    """The p95 of the report's logged requests (of one endpoint), how many there were, and
    how many log members were read for it (unreadable ones too)."""
    app = report.application
    if endpoint:
        stats = next((e for e in app.endpoints if e.endpoint == endpoint), None)
        return (
            (stats.p95_ms, stats.logged_requests, stats.logged_requests) if stats else (None, 0, 0)
        )
    times = app.response_times
    return times.p95_ms, times.count, times.members_read


def _hit_rate_condition(thresholds: Thresholds, report: StatsReport) -> Condition:
    limit = thresholds.min_hit_rate_pct
    app = report.application
    endpoint = thresholds.endpoint
    what = f"hit rate of {endpoint}" if endpoint else "hit rate"
    description = f"{what} >= {limit:g}%"
    if not app.counters_present:
        return Condition(
            "min_hit_rate",
            description,
            limit,
            None,
            "percent",
            False,
            "the application counters are missing",
        )
    if endpoint:
        stats = next((e for e in app.endpoints if e.endpoint == endpoint), None)
        if stats is None:
            return Condition(
                "min_hit_rate",
                description,
                limit,
                None,
                "percent",
                False,
                f"no counters for endpoint {endpoint!r}",
            )
        interval, lifetime = stats.interval_hit_rate, stats.hit_rate
    else:
        interval, lifetime = app.interval_hit_rate, app.hit_rate
    if interval is not None:
        rate, detail = interval, "over the sample"
    elif lifetime is None:
        return Condition(
            "min_hit_rate", description, limit, None, "percent", False, "no hits or misses counted"
        )
    elif thresholds.allow_lifetime:
        rate = lifetime
        detail = (
            "no requests during the sample: the counters' lifetime rate stands in "
            f"({ALLOW_LIFETIME})"
        )
    else:
        return Condition(
            "min_hit_rate",
            description,
            limit,
            None,
            "percent",
            False,
            f"no requests during the sample (the counters' lifetime rate, {_pct(lifetime * 100)}, "
            f"stands in with {ALLOW_LIFETIME})",
        )
    measured = rate * 100
    return Condition(
        "min_hit_rate",
        description,
        limit,
        measured,
        "percent",
        measured >= limit,
        detail,
        interval is None,
    )


# What a gate that can never judge a share of memory tells the user to change.
_NO_SHARE_HINT = "set maxmemory on the server, or give --max-memory as a size (such as 2GiB)"


def _memory_condition(
    limit: MemoryLimit, used: int | None, maxmemory: int | None, system: int | None
) -> Condition:
    if limit.bytes is not None:
        description = f"used memory <= {limit.bytes:,} bytes"
        ok = used is not None and used <= limit.bytes
        return Condition(
            "max_memory",
            description,
            limit.bytes,
            used,
            "bytes",
            ok,
            "" if used is not None else "used_memory could not be read",
        )
    description = f"used memory <= {limit.percent:g}% of maxmemory"
    base, base_name = maxmemory, "maxmemory"
    if not base:
        # Without maxmemory the server grows until the machine runs out: measure against that.
        base, base_name = system, "the machine's memory (no maxmemory set)"
    if used is None or not base:
        return Condition(
            "max_memory",
            description,
            limit.percent,
            None,
            "percent",
            False,
            "neither maxmemory nor the machine's memory is known: " + _NO_SHARE_HINT,
        )
    measured = used / base * 100
    return Condition(
        "max_memory",
        description,
        limit.percent,
        measured,
        "percent",
        measured <= limit.percent,
        f"{used:,} of {base:,} bytes ({base_name})",
    )


# -- anomalies and stored history ------------------------------------------------------------


def anomaly_condition(report: AnomalyReport) -> Condition:
    """Measured: how many of the key series are anomalous (none may be)."""
    judged = [s for s in report.series if s.anomaly and s.anomaly.enough_history]
    description = f"no anomaly (|z| <= {report.sensitivity:g})"
    if not judged:
        return Condition(
            "no_anomaly",
            description,
            0,
            None,
            "series",
            False,
            "not enough stored history to judge against: run `cachectl history "
            "record` for a while first",
        )
    bad = [s for s in judged if s.anomaly.anomalous]
    if bad:
        detail = ", ".join(
            f"{s.name}={s.anomaly.value:.4g} (z={_z(s.anomaly.z_score)})" for s in bad
        )
    else:
        worst = max(judged, key=lambda s: abs(s.anomaly.z_score))
        detail = (
            f"{len(judged)} series judged; largest |z| {_z(worst.anomaly.z_score)} ({worst.name})"
        )
    return Condition("no_anomaly", description, 0, float(len(bad)), "series", not bad, detail)


def _z(z: float | None) -> str:
    if z is None:
        return "?"
    return "inf" if math.isinf(z) else f"{z:+.2f}"


def evaluate_history(
    thresholds: Thresholds,
    series: TimeSeries,
    window_seconds: float,
    machine_memory: Callable[[], int | None] | None = None,
) -> list[Condition]:
    """The conditions measured from the stored history of the last `window_seconds`: hit rate
    and p95 as traffic-weighted means, memory at its highest, evictions at their mean rate.
    `machine_memory` reads the server's machine memory now, for a share of memory recorded
    while no maxmemory was set (a RedisPermissionError from it is told as the reason)."""
    from cachectl.ops import history as h

    now = series.now_ms()
    start = now - int(window_seconds * 1000)

    def raw(name: str) -> list[tuple[int, float]]:
        return series.read(name, "raw", start, now).values()

    conditions: list[Condition] = []
    endpoint = thresholds.endpoint
    suffix = (lambda name: h.endpoint_series(name, endpoint)) if endpoint else (lambda name: name)
    nothing = "nothing recorded in the window (is `cachectl history record` running?)"
    if thresholds.min_hit_rate_pct is not None:
        limit = thresholds.min_hit_rate_pct
        ratio = h.weighted_mean(raw(suffix(h.HIT_RATIO)), raw(suffix("cache.requests_per_s")))
        measured = None if ratio is None else ratio * 100
        what = f"hit rate of {endpoint}" if endpoint else "hit rate"
        conditions.append(
            Condition(
                "min_hit_rate",
                f"{what} >= {limit:g}%",
                limit,
                measured,
                "percent",
                measured is not None and measured >= limit,
                "traffic-weighted over the window" if measured is not None else nothing,
            )
        )
    if thresholds.max_memory is not None:
        limit = thresholds.max_memory
        if limit.bytes is not None:
            used = [v for _, v in raw(h.MEMORY)]
            measured = max(used) if used else None
            conditions.append(
                Condition(
                    "max_memory",
                    f"used memory <= {limit.bytes:,} bytes",
                    limit.bytes,
                    measured,
                    "bytes",
                    measured is not None and measured <= limit.bytes,
                    "highest in the window" if used else nothing,
                )
            )
        else:
            conditions.append(
                _window_memory_share(
                    limit,
                    [v for _, v in raw("redis.memory_used_ratio")],
                    [v for _, v in raw(h.MEMORY)],
                    machine_memory,
                    nothing,
                )
            )
    if thresholds.max_evictions_per_s is not None:
        limit = thresholds.max_evictions_per_s
        rates = [v for _, v in raw(h.EVICTIONS)]
        measured = sum(rates) / len(rates) if rates else None
        conditions.append(
            Condition(
                "max_evictions_per_s",
                f"evictions <= {limit:g}/s",
                limit,
                measured,
                "per_second",
                measured is not None and measured <= limit,
                "mean over the window" if rates else nothing,
            )
        )
    if thresholds.max_p95_ms is not None:
        limit = thresholds.max_p95_ms
        measured = h.weighted_mean(raw(suffix(h.P95)), raw(suffix("cache.requests_per_s")))
        what = f"p95 of {endpoint}" if endpoint else "p95"
        conditions.append(
            Condition(
                "max_p95_ms",
                f"{what} <= {limit:g} ms",
                limit,
                measured,
                "ms",
                measured is not None and measured <= limit,
                "traffic-weighted mean of the recorded p95s" if measured is not None else nothing,
            )
        )
    if thresholds.no_anomaly:
        conditions.append(
            anomaly_condition(
                h.anomalies(
                    series,
                    baseline_seconds=window_seconds,
                    sensitivity=thresholds.anomaly_sensitivity,
                )
            )
        )
    return conditions


def _window_memory_share(
    limit: MemoryLimit,
    ratios: list[float],
    used: list[float],
    machine_memory: Callable[[], int | None] | None,
    nothing: str,
) -> Condition:
    """--max-memory PCT% over the window, on the live sample's terms: a share of maxmemory
    where one was recorded, else of the machine's memory (the history keeps used memory but
    not the machine's, which is read now: it does not change while a server runs)."""
    description = f"used memory <= {limit.percent:g}% of maxmemory"

    def no_data(detail: str) -> Condition:
        return Condition("max_memory", description, limit.percent, None, "percent", False, detail)

    if ratios:
        measured = max(ratios) * 100
        return Condition(
            "max_memory",
            description,
            limit.percent,
            measured,
            "percent",
            measured <= limit.percent,
            "highest in the window",
        )
    if not used:
        return no_data(nothing)
    from cachectl.errors import RedisPermissionError

    why = "which is not known"
    system = None
    if machine_memory is not None:
        try:
            system = machine_memory()
        except RedisPermissionError as err:  # an ACL without INFO: an unknown figure, said so
            why = f"which could not be read ({err.message})"
    if not system:
        return no_data(
            "no maxmemory was set while used memory was recorded, so the share is "
            f"of the machine's memory, {why}: {_NO_SHARE_HINT}"
        )
    highest = max(used)
    measured = highest / system * 100
    return Condition(
        "max_memory",
        description,
        limit.percent,
        measured,
        "percent",
        measured <= limit.percent,
        f"highest in the window: {int(highest):,} of {system:,} bytes (the "
        "machine's memory (no maxmemory set))",
    )


def machine_memory_bytes(store: Store) -> int | None:
    """The machine's memory as INFO reports it (total_system_memory), summed over the primaries
    as `stats` sums it; None when a primary does not report it."""
    sizes = []
    for info in store.server_info("memory").values():
        try:
            sizes.append(int(float(info.get("total_system_memory"))))
        except (TypeError, ValueError):
            return None
    return sum(sizes) if sizes and all(sizes) else None


def check_once(
    store: Store,
    layout: Layout,
    thresholds: Thresholds,
    *,
    sample_seconds: float | None = None,
    window_seconds: float | None = None,
    baseline_seconds: float = 3600,
    sleep: Callable[[float], None] = time.sleep,
    series: TimeSeries | None = None,
) -> CheckResult:
    """One round: over a live sample of `sample_seconds`, or over the stored history of the
    last `window_seconds`. --fail-on-anomaly holds a live sample against `baseline_seconds` of
    history."""
    from cachectl.timeseries import TimeSeries

    series = series or TimeSeries(store, layout)
    if window_seconds is not None:
        result = CheckResult("history", window_seconds, checked_at=series.clock())
        result.conditions = evaluate_history(
            thresholds, series, window_seconds, lambda: machine_memory_bytes(store)
        )
        return result
    from cachectl.ops.history import anomalies, report_points
    from cachectl.ops.stats import take_stats

    report = take_stats(
        store, layout, sample_seconds=sample_seconds, log_window_seconds=0, sleep=sleep
    )
    result = CheckResult("sample", sample_seconds, checked_at=report.taken_at)

    def lifetime_log() -> StatsReport:
        # One more read, only when the sample logged no request: the whole log.
        return take_stats(store, layout, sample_seconds=0, log_window_seconds=None)

    result.conditions = evaluate_report(thresholds, report, lifetime_log)
    if thresholds.no_anomaly:
        latest = dict(report_points(report))
        result.conditions.append(
            anomaly_condition(
                anomalies(
                    series,
                    baseline_seconds=baseline_seconds,
                    sensitivity=thresholds.anomaly_sensitivity,
                    latest=latest,
                )
            )
        )
    return result


def unreachable_result(
    thresholds: Thresholds, error: CachectlError, source: str, seconds: float
) -> CheckResult:
    """A round that could not reach Redis: every condition fails with the reason."""
    names = [
        ("min_hit_rate", thresholds.min_hit_rate_pct is not None),
        ("max_memory", thresholds.max_memory is not None),
        ("max_evictions_per_s", thresholds.max_evictions_per_s is not None),
        ("max_p95_ms", thresholds.max_p95_ms is not None),
        ("no_anomaly", thresholds.no_anomaly),
    ]
    result = CheckResult(source, seconds, checked_at=time.time(), error=error.message)
    result.conditions = [
        Condition(name, name.replace("_", " "), None, None, "", False, error.message)
        for name, wanted in names
        if wanted
    ]
    return result


# -- the alerting loop -----------------------------------------------------------------------


class UncheckedRounds(FailureStreak):
    """Rounds of the loop that could not reach Redis (each a breach); the loop's problem at the
    end when its last round holds (exit 6: it could not tell)."""

    def failing_line(self, number: int, error: str) -> str:
        return (
            f"round {number}: could not check: {error} (the loop goes on; each such round "
            "is a breach)"
        )

    def recovered_line(self, number: int, failed: int) -> str:
        return f"round {number}: checking again after {plural(failed, 'round')} unchecked"

    def problem_for(self, rounds: int) -> PartialFailure:
        return PartialFailure(
            f"{self.count} of {rounds} rounds could not check (last error: {self.last_error})",
            details={"unchecked_rounds": self.count, "rounds": rounds},
        )


@dataclass
class UndeliveredAlerts(FailureStreak):
    """Alerts (breach, recovery) the webhook did not take; an alert lost is a breach nobody was
    told of, so the loop's problem at the end when its last round holds (exit 6). Counted per
    alert posted, not per round: the rounds in between post nothing."""

    posted: int = 0

    def post_done(self, number: int, error: str | None) -> str | None:
        """Counts a post to the webhook; the line to say at the start or the end of a run of
        undelivered alerts."""
        self.posted += 1
        return self.failed(number, error) if error else self.succeeded(number)

    def failing_line(self, number: int, error: str) -> str:
        return (
            f"round {number}: alert not delivered: {error} (the loop goes on; undelivered "
            "alerts are counted and the loop will exit 6)"
        )

    def recovered_line(self, number: int, failed: int) -> str:
        return f"round {number}: alert delivered again after {plural(failed, 'undelivered alert')}"

    def problem_for(self, rounds: int) -> PartialFailure:
        return PartialFailure(
            f"{self.count} of {plural(self.posted, 'alert')} not delivered to the webhook "
            f"(last error: {self.last_error})",
            details={"undelivered_alerts": self.count, "alerts": self.posted},
        )


def loop_problem(*problems: PartialFailure | None) -> PartialFailure | None:
    """The loop's problems (rounds unchecked, alerts undelivered) as one error: exit 6, every
    message said, every count in its details."""
    found = [p for p in problems if p is not None]
    if len(found) <= 1:
        return found[0] if found else None
    details: dict = {}
    for p in found:
        details.update(p.details)
    return PartialFailure("; ".join(p.message for p in found), details=details)


def webhook_target(url: str) -> str:
    """The webhook as it may be shown: scheme and host only (its path often holds a token, its
    userinfo a password)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{port}" if port else "")


def check_webhook_url(url: str) -> None:
    # The messages never echo the URL: its userinfo or path may hold a secret.
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError("--webhook must be an http:// or https:// URL")
    try:
        parts.port  # noqa: B018 -- reading it checks the port
    except ValueError:
        raise UsageError(
            "--webhook: the part after the host's ':' is not a port number",
            hint="percent-encode / ? # @ : in a user name or password (%2F %3F %23 %40 %3A)",
        ) from None
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        raise UsageError(
            "--webhook: a URL cannot hold spaces or control characters",
            hint="percent-encode them (a space is %20)",
        )


def webhook_request(url: str) -> tuple[str, dict[str, str]]:
    """The URL to POST to and its headers. Credentials in the URL (`https://user:token@host/`)
    become HTTP Basic auth, as curl makes them: taken out of the URL (urllib would read them
    as part of the host name), percent-decoded, and sent as an Authorization header."""
    headers = {"Content-Type": "application/json", "User-Agent": "cachectl"}
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, headers
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(unquote_to_bytes(user) + b":" + unquote_to_bytes(password))
    headers["Authorization"] = "Basic " + token.decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), headers


def post_webhook(url: str, payload: dict, timeout: float = 5.0) -> str | None:
    """POSTs the alert as JSON; returns why it failed (never raises: the loop goes on). A
    redirect is not followed: urllib would resend the POST as a bodiless GET (the alert lost
    while the webhook seems to answer) and carry the Authorization header to another host."""
    import http.client
    import json
    import urllib.error
    import urllib.request

    target = webhook_target(url)
    body = json.dumps(payload).encode()
    try:
        bare_url, headers = webhook_request(url)
        request = urllib.request.Request(bare_url, data=body, method="POST", headers=headers)
        with _webhook_opener().open(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if 300 <= exc.code < 400:
            return (
                f"the webhook at {target} answered HTTP {exc.code}, a redirect, which is "
                "not followed: give the URL it redirects to"
            )
        return f"the webhook at {target} answered HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"the webhook at {target} could not be reached: {reason}"
    except (ValueError, http.client.HTTPException) as exc:
        # Their messages can quote the URL, path and all: name the kind of error only.
        return f"the webhook at {target} could not be reached: {type(exc).__name__}"
    return None


def _webhook_opener():
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            return None  # the 3xx then surfaces as an HTTPError

    return urllib.request.build_opener(NoRedirect)


def alert_payload(event: str, result: CheckResult) -> dict:
    return {
        "event": event,
        "source": "cachectl check",
        **result.to_dict(),
        "failed": [c.name for c in result.failed],
    }


@dataclass
class Round:
    number: int
    result: CheckResult
    event: str | None  # "breach", "recovery" or None (no change)
    webhook_error: str | None = None


def check_loop(
    run_round: Callable[[], CheckResult],
    every: float,
    *,
    rounds: int | None = None,
    webhook: str | None = None,
    on_round: Callable[[Round], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    post: Callable[[str, dict], str | None] = post_webhook,
) -> Round | None:
    """Runs a check every `every` seconds; posts "breach" when conditions start failing (the
    first round included) and "recovery" when they all hold again. Returns the last round."""
    ok: bool | None = None
    last: Round | None = None
    number = 0
    deadline = monotonic()
    while rounds is None or number < rounds:
        number += 1
        result = run_round()
        event = None
        if not result.ok and ok is not False:
            event = "breach"
        elif result.ok and ok is False:
            event = "recovery"
        ok = result.ok
        last = Round(number, result, event)
        if event and webhook:
            last.webhook_error = post(webhook, alert_payload(event, result))
        if on_round:
            on_round(last)
        if rounds is not None and number >= rounds:
            break
        deadline += every
        sleep(max(0.0, deadline - monotonic()))
    return last
