"""What a warm run is told and what it reports: its options, progress and result."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from cachectl.errors import (
    CachectlError,
    Interrupted,
    PartialFailure,
    RedisFull,
    RedisOutOfMemory,
    UsageError,
)
from cachectl.manifest import DEFAULT_CONCURRENCY

# ---- options --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailureLimit:
    """`--max-failures`: a count (`5`) or a share of the requests made (`2.5%`)."""

    count: int | None = 0
    percent: float | None = None

    @classmethod
    def parse(cls, text: str) -> FailureLimit:
        raw = text.strip()
        try:
            if raw.endswith("%"):
                percent = float(raw[:-1])
                if math.isfinite(percent) and 0 <= percent <= 100:
                    return cls(count=None, percent=percent)
            else:
                count = int(raw)
                if count >= 0:
                    return cls(count=count)
        except ValueError:
            pass
        raise UsageError(
            f"--max-failures {text!r} is neither a count nor a percentage",
            hint="write a whole number (5) or a percentage from 0 to 100 (2.5%)",
        )

    def exceeded(self, failed: int, requested: int) -> bool:
        if self.percent is not None:
            return requested > 0 and failed * 100 > self.percent * requested
        return failed > (self.count or 0)

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else str(self.count)


@dataclass(frozen=True)
class WarmOptions:
    concurrency: int | None = None  # None: the manifests' defaults.concurrency, else 10
    rate: float | None = None  # requests per second over the whole run; None: the manifests'
    only_missing: bool = False
    refresh_below_seconds: float | None = None
    dry_run: bool = False
    from_access_log_top: int | None = None
    max_failures: FailureLimit = FailureLimit()
    report_path: str | None = None
    max_response_bytes: int | None = None  # --max-response-bytes: over every endpoint's limit

    @property
    def checks_ttl(self) -> bool:
        return self.only_missing or self.refresh_below_seconds is not None


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WarmProgress:
    total: int
    done: int
    stored: int
    skipped: int
    failed: int
    elapsed_seconds: float

    @property
    def rate(self) -> float:
        return self.done / self.elapsed_seconds if self.elapsed_seconds > 0 else 0.0

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate > 0 and self.total >= self.done else None


class LatencyHistogram:
    """Percentiles in constant memory: latencies counted in buckets 2% wide."""

    _BASE = math.log(1.02)

    def __init__(self) -> None:
        self.buckets: Counter[int] = Counter()
        self.count = 0
        self.max_ms = 0.0

    def add(self, ms: float) -> None:
        self.buckets[round(math.log(max(ms, 0.001)) / self._BASE)] += 1
        self.count += 1
        self.max_ms = max(self.max_ms, ms)

    def percentile(self, p: float) -> float | None:
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * p / 100))
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen >= rank:
                return min(math.exp(bucket * self._BASE), self.max_ms)
        return self.max_ms


@dataclass
class AccessLogSelection:
    top: int
    keys_read: int = 0
    selected: int = 0
    ignored: Counter = field(default_factory=Counter)  # why a key read was not warmed

    def to_dict(self) -> dict:
        return {
            "top": self.top,
            "keys_read": self.keys_read,
            "selected": self.selected,
            "ignored": dict(self.ignored),
        }


@dataclass
class EndpointTally:
    name: str
    would_request: int = 0
    requested: int = 0
    stored: int = 0
    skipped: int = 0
    failed: int = 0


@dataclass
class WarmResult:
    manifests: list[str]
    round: int = 1
    dry_run: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    rate_per_second: float | None = None
    planned: int = 0
    requested: int = 0
    attempts: int = 0
    stored: int = 0
    stored_bytes: int = 0
    response_bytes: int = 0
    would_request: int = 0
    skipped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    interrupted: int = 0
    # Entries written again because the primary changed (a failover) or restarted while they
    # were being written: they may have been lost with the old primary (see warm._Run).
    rewritten: int = 0
    fallback_answers: int = 0
    duration_seconds: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram, repr=False)
    endpoints: dict[str, EndpointTally] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    max_failures: FailureLimit = FailureLimit()
    stopped: str | None = None  # None, "interrupted" or "redis"
    error: CachectlError | None = field(default=None, repr=False)
    access_log: AccessLogSelection | None = None
    report_file: str | None = None

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def not_attempted(self) -> int:
        accounted = self.stored + self.skipped_total + self.failed_total + self.interrupted
        return max(0, self.planned - accounted - self.would_request)

    @property
    def requests_per_second(self) -> float:
        return self.requested / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def failure_limit_exceeded(self) -> bool:
        return self.max_failures.exceeded(self.failed_total, self.requested)

    def problem(self) -> CachectlError | None:
        """The error that decides the exit code, or None when the round went as it should:
        interrupted (130), Redis lost (4), Redis full (6: it refused writes for lack of memory,
        what was stored stands), more failures than --max-failures allows (6)."""
        if self.stopped == "interrupted":
            if self.dry_run:
                counted = self.would_request + self.skipped_total
                return Interrupted(
                    f"interrupted: {counted:,} of {self.planned:,} entries counted before stopping"
                )
            return Interrupted(
                f"interrupted: {self.stored:,} of {self.planned:,} entries stored before stopping"
            )
        if isinstance(self.error, RedisOutOfMemory):
            return RedisFull(
                f"Redis is full (maxmemory reached): {self.stored:,} of {self.planned:,} entries "
                f"stored, then the run stopped at the first refused write ({self.error.message})",
                hint=self.error.hint,
                details={"cause": self.error.to_dict()},
                result=self,
            )
        if self.error is not None:
            return self.error
        if self.failure_limit_exceeded:
            return PartialFailure(
                f"{self.failed_total:,} of {self.requested:,} requests failed, more than "
                f"--max-failures {self.max_failures} allows",
                result=self,
            )
        return None

    def run_summary(self) -> dict:
        """What `cachectl.runs` keeps of this round (the dashboard's recent runs)."""
        return {
            "round": self.round,
            "planned": self.planned,
            "requested": self.requested,
            "stored": self.stored,
            "skipped": self.skipped_total,
            "failed": self.failed_total,
            "interrupted": self.interrupted,
            "stored_bytes": self.stored_bytes,
            "stopped": self.stopped,
        }

    def to_dict(self) -> dict:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "round": self.round,
            "manifests": self.manifests,
            "dry_run": self.dry_run,
            "concurrency": self.concurrency,
            "rate_per_second": self.rate_per_second,
            "planned": self.planned,
            "would_request": self.would_request,
            "requested": self.requested,
            "attempts": self.attempts,
            "stored": self.stored,
            "stored_bytes": self.stored_bytes,
            "response_bytes": self.response_bytes,
            "skipped": {"total": self.skipped_total, "by_reason": dict(self.skipped)},
            "failed": {"total": self.failed_total, "by_reason": dict(self.failed)},
            "interrupted": self.interrupted,
            "not_attempted": self.not_attempted,
            "fallback_answers": self.fallback_answers,
            "duration_seconds": round(self.duration_seconds, 3),
            "requests_per_second": round(self.requests_per_second, 1),
            "origin_latency_ms": {
                "p50": ms(self.latency.percentile(50)),
                "p95": ms(self.latency.percentile(95)),
                "max": ms(self.latency.max_ms if self.latency.count else None),
            },
            "endpoints": [vars(e).copy() for e in self.endpoints.values()],
            "failures": self.failures,
            "max_failures": str(self.max_failures),
            "failure_limit_exceeded": self.failure_limit_exceeded,
            "stopped": self.stopped,
            "error": self.error.to_dict() if self.error else None,
            "access_log": self.access_log.to_dict() if self.access_log else None,
            "report_file": self.report_file,
        }
