"""`cachectl warm`: call the endpoints of a plan, store the answers as cache entries, report.

The run is a stream with bounded queues, so memory stays flat whatever the plan's size:
plan (expanded lazily) -> [TTL check for --only-missing / --refresh-below, in chunks]
-> fetch workers (aiohttp, `concurrency` of them) -> one writer (pipelined batches, in a thread).

It stops cleanly: on Ctrl-C (the batch being written lands and is counted, the rest is reported
as interrupted) and when Redis stays unreachable after retries (the report says what was stored).
Nothing here prints: progress reaches the caller through `on_progress`, the result is a
WarmResult, and `--report FILE` is streamed to disk one request at a time.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import (
    CachectlError,
    Interrupted,
    PartialFailure,
    RedisAuthError,
    RedisError,
    RedisFull,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisReadOnly,
    UsageError,
)
from cachectl.keytext import show_bytes
from cachectl.manifest import DEFAULT_CONCURRENCY
from cachectl.ops.streak import FailureStreak, plural

if TYPE_CHECKING:
    from cachectl.manifest import Plan, PlannedRequest
    from cachectl.ops.warm_http import FetchOutcome
    from cachectl.store import Store

FAILURE_SAMPLE_SIZE = 20
PROGRESS_INTERVAL_SECONDS = 0.25
TTL_CHECK_CHUNK = 500
ACCESS_LOG_PAGE = 1000
# An access log member longer than this is no key an application wrote: it is left alone
# (`too_long`) rather than read back, which costs time and memory with its length.
MAX_ACCESS_LOG_KEY_BYTES = 64 * 1024
# Redis errors that a wait may cure (a restart, a failover); others (ACL, read-only replica,
# wrong password, maxmemory reached) stop the run at once: every later write would be refused
# too, and each would cost the origin a request for nothing.
_FATAL_AT_ONCE = (RedisAuthError, RedisPermissionError, RedisReadOnly, RedisOutOfMemory)
_END = object()


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


# ---- the report file --------------------------------------------------------------------------


class _ReportFile:
    """`--report FILE`: `{"requests": [...], "summary": {...}}`, one request written at a time
    to FILE.partial and renamed over FILE at the end, so FILE is always a whole document."""

    def __init__(self, path: str):
        self.path = path
        self.partial = f"{path}.partial"
        try:
            self.fh = open(self.partial, "w", encoding="utf-8")  # noqa: SIM115 -- closed in finish()
        except OSError as exc:
            raise UsageError(f"cannot write the report {path}: {exc.strerror or exc}") from None
        self.fh.write('{"requests": [\n')
        self.first = True

    def add(self, record: dict) -> None:
        self.fh.write(("" if self.first else ",\n") + json.dumps(record, ensure_ascii=False))
        self.first = False

    def finish(self, summary: dict) -> None:
        self.fh.write('\n],\n"summary": ' + json.dumps(summary, ensure_ascii=False) + "}\n")
        self.fh.close()
        os.replace(self.partial, self.path)


# ---- tallying ---------------------------------------------------------------------------------


class _Tally:
    """Counts every outcome into the result, writes the report line, keeps a sample of failures."""

    def __init__(self, result: WarmResult, plan: Plan, report: _ReportFile | None):
        self.result = result
        self.plan = plan
        self.report = report
        self.started = time.perf_counter()

    def endpoint(self, name: str) -> EndpointTally:
        tally = self.result.endpoints.get(name)
        if tally is None:
            tally = self.result.endpoints[name] = EndpointTally(name)
        return tally

    def record(
        self,
        request: PlannedRequest,
        outcome: str,  # stored | skipped | failed | would_request
        reason: str | None = None,
        fetched: FetchOutcome | None = None,
        error: str | None = None,
        stored_bytes: int = 0,
    ) -> None:
        result = self.result
        per_endpoint = self.endpoint(request.endpoint.name)
        if fetched is not None:
            result.requested += 1
            result.attempts += fetched.attempts
            result.response_bytes += fetched.bytes
            per_endpoint.requested += 1
            if fetched.fallback and "answer" in fetched.fallback:
                result.fallback_answers += 1
        if outcome == "stored":
            result.stored += 1
            result.stored_bytes += stored_bytes
            per_endpoint.stored += 1
        elif outcome == "skipped":
            result.skipped[reason] += 1
            per_endpoint.skipped += 1
        elif outcome == "failed":
            result.failed[reason] += 1
            per_endpoint.failed += 1
        else:
            result.would_request += 1
            per_endpoint.would_request += 1
        sample = outcome == "failed" and len(result.failures) < FAILURE_SAMPLE_SIZE
        if self.report is None and not sample:
            return
        record = {
            "endpoint": request.endpoint.name,
            "key": show_bytes(request.key),  # escaped as every command prints keys
            "method": request.endpoint.method,
            # Masked, then scrubbed of every known secret: `?access=${TOKEN}` as well as `?token=`.
            "url": self.plan.scrub(request.shown_url),
            "outcome": outcome,
            "reason": reason,
            "status": fetched.status if fetched else None,
            "latency_ms": round(fetched.latency_ms, 2)
            if fetched and fetched.latency_ms is not None
            else None,
            "bytes": fetched.bytes if fetched else 0,
            "attempts": fetched.attempts if fetched else 0,
            "error": self.plan.scrub(error) if error else None,
        }
        if fetched is not None and fetched.fallback is not None:
            record["fallback"] = fetched.fallback
        if sample:
            result.failures.append(record)
        if self.report is not None:
            self.report.add(record)

    def progress(self) -> WarmProgress:
        r = self.result
        done = r.stored + r.skipped_total + r.failed_total + r.would_request
        return WarmProgress(
            total=r.planned,
            done=done,
            stored=r.stored,
            skipped=r.skipped_total,
            failed=r.failed_total,
            elapsed_seconds=time.perf_counter() - self.started,
        )


# ---- choosing what to warm --------------------------------------------------------------------


def select_from_access_log(
    store: Store, plan: Plan, top: int
) -> tuple[list[PlannedRequest], AccessLogSelection]:
    """The `top` most recently hit entries of the plan's endpoints, newest first.

    The access log (docs/keyspace.md: `cache_access`, score = epoch ms of the last hit) holds no
    hit counts, so "most accessed" is ranked by the latest hit. Each key is read back into its
    endpoint and params (`Layout.parse_entry`) and rebuilt from the manifest's definition of that
    endpoint; a key the definition does not give back exactly is left alone (and counted).
    """
    layout = plan.layout
    selection = AccessLogSelection(top=top)
    selected: list[PlannedRequest] = []
    names = plan.endpoint_names
    start = 0
    while len(selected) < top:
        keys = store.execute("ZREVRANGE", layout.access_log(), start, start + ACCESS_LOG_PAGE - 1)
        if not keys:
            break
        start += len(keys)
        for raw in keys:
            selection.keys_read += 1
            request, why = _request_for_key(plan, raw, names)
            if request is None:
                selection.ignored[why] += 1
                continue
            selected.append(request)
            if len(selected) == top:
                break
    selection.selected = len(selected)
    return selected, selection


def _request_for_key(
    plan: Plan, raw: bytes | str, names: list[str]
) -> tuple[PlannedRequest | None, str | None]:
    if len(raw) > MAX_ACCESS_LOG_KEY_BYTES:
        return None, "too_long"
    try:
        key = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        return None, "unreadable_key"
    # Every entry key starts with its endpoint's name: one that starts with none of the plan's is
    # not read back (a key of many ':' would be tried at every one of them).
    root = plan.layout.entry_root
    if plan.layout.is_entry(key) and not any(key.startswith(root + name) for name in names):
        return None, "other_endpoint"
    parsed = plan.layout.parse_entry(key, known_endpoints=names)
    if parsed is None:
        return None, "not_an_entry"
    if parsed.endpoint not in names:
        return None, "other_endpoint"
    if parsed.params is None:
        return None, "unreadable_key"
    return plan.request_for_entry(key, parsed.endpoint, parsed.params)


def _limits(plan: Plan, options: WarmOptions) -> tuple[int, int | None, float | None]:
    defaults = [m.defaults for m in plan.manifests]
    concurrency = options.concurrency or max(
        (d.concurrency for d in defaults if d.concurrency), default=DEFAULT_CONCURRENCY
    )
    per_host = max(
        (d.concurrency_per_host for d in defaults if d.concurrency_per_host), default=None
    )
    rate = options.rate or min((d.rate for d in defaults if d.rate), default=None)
    return concurrency, per_host, rate


# ---- running ----------------------------------------------------------------------------------


def warm(
    store: Store,
    plan: Plan,
    options: WarmOptions,
    *,
    on_progress: Callable[[WarmProgress], None] | None = None,
    round_number: int = 1,
) -> WarmResult:
    """One warm round over the plan. Errors found before anything is fetched (two requests that
    would write one key, Redis unreachable at the start, a report file that cannot be written)
    raise; once fetching began, the result says how the run ended (`stopped`, `error`) and what
    it stored."""
    if not options.from_access_log_top:
        # Before Redis or the origin is touched; the access log's keys are distinct already.
        plan.check_unique_keys()
    concurrency, per_host, rate = _limits(plan, options)
    result = WarmResult(
        manifests=plan.files,
        round=round_number,
        dry_run=options.dry_run,
        concurrency=concurrency,
        rate_per_second=rate,
        max_failures=options.max_failures,
        report_file=options.report_path,
    )
    needs_redis = not options.dry_run or options.checks_ttl or options.from_access_log_top
    if needs_redis:
        store.execute("PING")  # before fetching anything: an unreachable Redis fails fast
    requests: Iterable[PlannedRequest]
    if options.from_access_log_top:
        requests, result.access_log = select_from_access_log(
            store, plan, options.from_access_log_top
        )
        result.planned = len(requests)
    else:
        requests, result.planned = plan.requests(), plan.total
    for endpoint in plan.endpoints:
        result.endpoints.setdefault(endpoint.name, EndpointTally(endpoint.name))

    if not options.dry_run:
        # Loaded before the clock starts, as redis is: a round's duration is its fetching and
        # storing, not Python loading aiohttp (~0.3 s here).
        import aiohttp  # noqa: F401

        import cachectl.ops.warm_http
        import cachectl.ops.warm_write  # noqa: F401
    report = _ReportFile(options.report_path) if options.report_path else None
    tally = _Tally(result, plan, report)
    try:
        if options.dry_run:
            _dry_run(store, requests, options, tally)
        else:
            run = _Run(store, plan, options, tally, on_progress, concurrency, per_host, rate)
            asyncio.run(run.main(iter(requests)))
    finally:
        result.duration_seconds = time.perf_counter() - tally.started
        if report is not None:
            report.finish(result.to_dict())
    if on_progress is not None:
        on_progress(tally.progress())
    return result


class FailedRounds(FailureStreak):
    """Rounds of `warm --every` that failed as a single run fails (more failed requests than
    --max-failures allows): the loop goes on, and ends with exit 6 naming how many."""

    def failing_line(self, number: int, error: str) -> str:
        return (
            f"round {number} failed: {error} (the loop goes on; failed rounds are counted and "
            "the loop will exit 6)"
        )

    def recovered_line(self, number: int, failed: int) -> str:
        return f"round {number} went well after {plural(failed, 'failed round')}"

    def problem_for(self, rounds: int) -> PartialFailure:
        return PartialFailure(
            f"{self.count} of {rounds} rounds failed (last error: {self.last_error})",
            details={"failed_rounds": self.count, "rounds": rounds},
        )


@dataclass
class WarmLoop:
    """How `warm --every` ended: its last round, and the rounds that failed before."""

    last: WarmResult
    failed: FailedRounds = field(default_factory=FailedRounds)

    def problem(self) -> CachectlError | None:
        """A round that ended the loop (Ctrl-C or SIGTERM during it: 130, Redis lost: 4, Redis
        full: 6) decides; else any round that failed makes the loop's exit 6: exit 0 means
        every round did its job, not the last one alone."""
        if self.last.stopped:
            return self.last.problem()
        return self.failed.problem(self.last.round)


def warm_every(
    store: Store,
    plan: Plan,
    options: WarmOptions,
    every_seconds: float,
    *,
    on_round: Callable[[WarmResult], None],
    on_progress: Callable[[WarmProgress], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> WarmLoop:
    """Rounds `every_seconds` apart (start to start; a round that takes longer is followed at
    once) until stopped. Ctrl-C or SIGTERM between rounds ends it (a clean end: stopping is how
    a loop ends); a round stopped by Ctrl-C, SIGTERM or by Redis ends it too, with that round's
    result. A round that fails otherwise (more failed requests than --max-failures allows) is
    counted and the loop goes on; `on_notice` is told at the start and the end of a run of
    failed rounds, after that round's `on_round`."""
    from cachectl.signals import sigterm_as_interrupt

    round_number = 0
    failed = FailedRounds()
    # SIGTERM (a cancelled job, systemd) between rounds ends the loop as Ctrl-C does; during a
    # round the round's own handler stops it cleanly with its report.
    with sigterm_as_interrupt():
        while True:
            round_number += 1
            started = time.monotonic()
            result = warm(store, plan, options, on_progress=on_progress, round_number=round_number)
            notice = None
            if not result.stopped:
                problem = result.problem()
                notice = (
                    failed.failed(round_number, problem.message)
                    if problem is not None
                    else failed.succeeded(round_number)
                )
            on_round(result)
            if notice and on_notice is not None:
                on_notice(notice)
            if result.stopped:
                return WarmLoop(result, failed)
            try:
                sleep(max(0.0, every_seconds - (time.monotonic() - started)))
            except KeyboardInterrupt:
                return WarmLoop(result, failed)


def _kept_by_ttl(options: WarmOptions, pttl_ms: int) -> str | None:
    """None when the entry should be fetched, else why it is skipped."""
    if pttl_ms == -2:
        return None
    if options.refresh_below_seconds is not None:
        if 0 <= pttl_ms < options.refresh_below_seconds * 1000:
            return None
        return "fresh"
    return "cached"


def _chunks(requests: Iterable[PlannedRequest], size: int) -> Iterator[list[PlannedRequest]]:
    chunk: list[PlannedRequest] = []
    for request in requests:
        chunk.append(request)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _dry_run(
    store: Store, requests: Iterable[PlannedRequest], options: WarmOptions, tally: _Tally
) -> None:
    """Counts the plan (reading TTLs in chunks when asked). Ctrl-C or SIGTERM stop it as they stop
    a real round, with the result so far: between two chunks, so the counts and the report's
    records agree; what the plan holds beyond is `not_attempted`."""
    from cachectl.signals import stop_on_signals

    with stop_on_signals() as stop:
        for chunk in _chunks(requests, TTL_CHECK_CHUNK):
            if stop.is_set():
                tally.result.stopped = "interrupted"
                return
            _count_chunk(store, chunk, options, tally)


def _count_chunk(
    store: Store, chunk: list[PlannedRequest], options: WarmOptions, tally: _Tally
) -> None:
    ttls = store.ttls([r.key for r in chunk], ms=True) if options.checks_ttl else [-2] * len(chunk)
    for request, ttl in zip(chunk, ttls):
        why = _kept_by_ttl(options, ttl)
        if why:
            tally.record(request, "skipped", why)
        else:
            tally.record(request, "would_request")


def _outage_wait(retry: int) -> float:
    """Seconds before the n-th retry of a batch while Redis is away: 1, 2, 4, then 8 at most.
    On top of the store's own quick retries, this rides out a restart or a failover."""
    return min(8.0, 0.5 * 2**retry)


class _Run:
    """One asynchronous warm round: producer, fetch workers, writer, progress ticker."""

    def __init__(self, store, plan, options, tally, on_progress, concurrency, per_host, rate):
        from cachectl.ops.warm_write import EntryWriter

        self.store = store
        self.plan = plan
        self.options = options
        self.tally = tally
        self.on_progress = on_progress
        self.concurrency = concurrency
        self.per_host = per_host
        self.rate = rate
        self.writer = EntryWriter(store, plan.layout)
        self.batch_size = store.settings.batch_size
        self.redis_retries = store.settings.retries
        self.in_flight = 0

    async def main(self, requests: Iterator[PlannedRequest]) -> None:
        from cachectl.ops.warm_http import Fetcher

        self.abort = asyncio.Event()
        fetch_q: asyncio.Queue = asyncio.Queue(self.concurrency * 2)
        write_q: asyncio.Queue = asyncio.Queue(max(64, self.concurrency * 4))
        fetcher = Fetcher(
            concurrency=self.concurrency,
            per_host=self.per_host,
            rate=self.rate,
            scrub=self.plan.scrub,
            on_latency=self.tally.result.latency.add,
            max_response_bytes=self.options.max_response_bytes,
        )
        # A CI job being cancelled gets SIGTERM: stop as cleanly as on Ctrl-C.
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        stopping = terminated = False

        def on_term() -> None:
            # Once: a second SIGTERM (a process group signalled and a parent forwarding it)
            # must not cancel the clean stop itself.
            if not stopping:
                task.cancel()

        def on_sigterm_signal(signum, frame) -> None:
            nonlocal terminated
            terminated = True
            # Runs in the main thread between two bytecodes, maybe inside the loop's own code:
            # it only hands the stop to the loop (as asyncio.run does with Ctrl-C).
            try:
                loop.call_soon_threadsafe(on_term)
            except RuntimeError:  # the loop already closed: the round is over anyway
                pass

        # signal.signal rather than loop.add_signal_handler: removing the loop's handler sets
        # SIG_DFL before anything else can be put back, and a second SIGTERM landing in that
        # moment killed the process (exit -15, no report). This handler is swapped in one step.
        try:
            previous_sigterm = signal.signal(signal.SIGTERM, on_sigterm_signal)
            on_sigterm = True
        except ValueError:  # not the main thread
            on_sigterm = False
        # Without a TTL check the workers take the plan's requests themselves, one at a time (the
        # plan is a lazy iterator and the loop runs one task at a time): no queue hand-off per
        # entry. With one, a producer checks TTLs in chunks and queues what is to be fetched.
        source: Iterator[PlannedRequest] | asyncio.Queue = (
            fetch_q if self.options.checks_ttl else requests
        )
        async with fetcher:
            producer = asyncio.create_task(self._produce(requests, fetch_q))
            workers = [
                asyncio.create_task(self._work(fetcher, source, write_q))
                for _ in range(self.concurrency)
            ]
            writer = asyncio.create_task(self._write(write_q))
            flow = asyncio.create_task(self._flow(producer, workers, fetch_q, write_q, writer))
            aborted = asyncio.create_task(self.abort.wait())
            helpers = [aborted]
            if self.on_progress is not None:
                helpers.append(asyncio.create_task(self._tick()))
            try:
                await asyncio.wait({flow, aborted}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels this task
                self.tally.result.stopped = "interrupted"
            finally:
                stopping = True
                await self._stop([producer, *workers, flow, *helpers], writer, write_q)
                if on_sigterm:
                    # On the way out after a SIGTERM: a later one must not kill the report.
                    # Else what was there before (warm_every's, say; None: not set from Python).
                    after = signal.SIG_IGN if terminated else previous_sigterm
                    signal.signal(signal.SIGTERM, signal.SIG_DFL if after is None else after)
        if flow.done() and not flow.cancelled() and flow.exception() is not None:
            exc = flow.exception()
            if not isinstance(exc, CachectlError):
                raise exc
            self._fatal(exc)

    async def _flow(self, producer, workers, fetch_q, write_q, writer) -> None:
        """The orderly end: plan done, then every fetch, then every write."""
        await producer
        if self.options.checks_ttl:
            for _ in workers:
                await fetch_q.put(None)
        await asyncio.wait(workers)
        for worker in workers:
            if worker.exception() is not None:
                raise worker.exception()
        await write_q.put(_END)
        await writer

    async def _produce(self, requests: Iterator[PlannedRequest], fetch_q: asyncio.Queue) -> None:
        if not self.options.checks_ttl:
            return  # the workers read the plan themselves
        for chunk in _chunks(requests, TTL_CHECK_CHUNK):
            ttls = await self._redis(self.store.ttls, [r.key for r in chunk], ms=True)
            for request, ttl in zip(chunk, ttls):
                why = _kept_by_ttl(self.options, ttl)
                if why:
                    self.tally.record(request, "skipped", why)
                else:
                    await fetch_q.put(request)

    async def _redis(self, call, *args, **kw):
        """A store call in a thread, retried while Redis is away (as the writer's batches are)."""
        retries = 0
        while True:
            try:
                return await asyncio.to_thread(call, *args, **kw)
            except RedisError as exc:
                if isinstance(exc, _FATAL_AT_ONCE) or retries >= self.redis_retries:
                    raise
                retries += 1
                await asyncio.sleep(_outage_wait(retries))

    async def _work(self, fetcher, source, write_q: asyncio.Queue) -> None:
        from cachectl.ops.warm_write import ToWrite

        queued = source.get if isinstance(source, asyncio.Queue) else None
        while not self.abort.is_set():  # a fatal Redis error: no new request starts
            request = await queued() if queued is not None else next(source, None)
            if request is None:
                return
            self.in_flight += 1
            outcome = await fetcher.fetch(request)
            if outcome.kind == "ok":
                await write_q.put((ToWrite(request, outcome.value, outcome.text), outcome))
            else:
                self.tally.record(request, outcome.kind, outcome.reason, outcome, outcome.error)
            self.in_flight -= 1

    async def _write(self, write_q: asyncio.Queue) -> None:
        ended = False
        while not ended:
            first = await write_q.get()
            if first is _END:
                return
            batch = [first]
            while len(batch) < self.batch_size and not write_q.empty():
                item = write_q.get_nowait()
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            if not await self._write_batch(batch):
                return

    async def _write_batch(self, batch: list) -> bool:
        """Writes one batch, retrying while Redis is away; False when the run must stop."""
        items = [item for item, _ in batch]
        retries = 0
        while True:
            future = asyncio.ensure_future(asyncio.to_thread(self.writer.write, items))
            try:
                results = await asyncio.shield(future)
            except asyncio.CancelledError:
                # Stopping: the thread writes on regardless. Wait for it, so the report says
                # exactly what was stored.
                try:
                    results = await future
                except CachectlError as exc:
                    self._record_batch(batch, None, exc)
                else:
                    self._record_batch(batch, results)
                raise
            except CachectlError as exc:
                lasting = isinstance(exc, _FATAL_AT_ONCE) or not isinstance(exc, RedisError)
                if lasting or retries >= self.redis_retries:
                    self._record_batch(batch, None, exc)
                    self._fatal(exc)
                    return False
                retries += 1
                try:
                    await asyncio.sleep(_outage_wait(retries))
                except asyncio.CancelledError:
                    self.tally.result.interrupted += len(batch)  # fetched, never stored
                    raise
                continue
            fatal = next((e for _, e in results if isinstance(e, _FATAL_AT_ONCE)), None)
            self._record_batch(batch, results)
            if fatal is not None:
                self._fatal(fatal)
                return False
            return True

    def _record_batch(
        self, batch: list, results: list | None, error: CachectlError | None = None
    ) -> None:
        for index, (item, fetched) in enumerate(batch):
            size, entry_error = results[index] if results is not None else (0, error)
            if entry_error is None:
                self.tally.record(item.request, "stored", None, fetched, stored_bytes=size)
            else:
                reason = "wrong_type" if entry_error.code == "redis.wrong_type" else "redis"
                self.tally.record(item.request, "failed", reason, fetched, entry_error.message)

    def _fatal(self, exc: CachectlError) -> None:
        result = self.tally.result
        if result.error is None:
            result.error = exc
            result.stopped = result.stopped or "redis"
        self.abort.set()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_SECONDS)
            self.on_progress(self.tally.progress())

    async def _stop(self, tasks: list, writer, write_q: asyncio.Queue) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        writer.cancel()
        await asyncio.wait([writer])
        result = self.tally.result
        # Fetched but never written: Redis went away (failed), or the run was stopped.
        while not write_q.empty():
            item = write_q.get_nowait()
            if item is _END:
                continue
            to_write, fetched = item
            if result.stopped == "redis":
                why = "full" if isinstance(result.error, RedisOutOfMemory) else "was lost"
                self.tally.record(
                    to_write.request, "failed", "redis", fetched, f"not written: Redis {why}"
                )
            else:
                result.interrupted += 1
        result.interrupted += self.in_flight
        self.in_flight = 0
