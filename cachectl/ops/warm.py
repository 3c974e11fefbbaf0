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
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cachectl.batches import batched
from cachectl.errors import (
    CachectlError,
    PartialFailure,
    RedisAuthError,
    RedisError,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisReadOnly,
    UsageError,
)
from cachectl.keytext import show_bytes
from cachectl.manifest import DEFAULT_CONCURRENCY
from cachectl.ops.streak import FailureStreak, plural
from cachectl.ops.warm_result import (
    AccessLogSelection,
    EndpointTally,
    FailureLimit,
    LatencyHistogram,
    WarmOptions,
    WarmProgress,
    WarmResult,
)

if TYPE_CHECKING:
    from cachectl.manifest import Plan, PlannedRequest
    from cachectl.ops.warm_http import FetchOutcome
    from cachectl.store import Store

FAILURE_SAMPLE_SIZE = 20
PROGRESS_INTERVAL_SECONDS = 0.25
TTL_CHECK_CHUNK = 500
ACCESS_LOG_PAGE = 1000
# An access log member longer than this is no key an application wrote: it is left alone
# (`too_long`) rather than parsed, which costs time with its length. It has been read by then:
# ZREVRANGE sends members whole, so a page costs the size of its members (README).
MAX_ACCESS_LOG_KEY_BYTES = 64 * 1024
# Redis errors that a wait may cure (a restart, a failover); others (ACL, read-only replica,
# wrong password, maxmemory reached) stop the run at once: every later write would be refused
# too, and each would cost the origin a request for nothing.
_FATAL_AT_ONCE = (RedisAuthError, RedisPermissionError, RedisReadOnly, RedisOutOfMemory)
# How often a run compares the deployment's epoch (Store.epoch: the primaries and their run_ids)
# while it writes, and how long it holds what it wrote: when the primary changes (a failover),
# the entries written in the last HOLD_SECONDS are written again on the new primary. Writes that
# reached the old primary after the promotion are lost with it, and the sentinels name the new
# one only once the failover ends (about a second later with SENTINEL FAILOVER).
EPOCH_CHECK_SECONDS = 0.5
HOLD_SECONDS = 5.0
_END = object()


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
    rounds: int | None = None,
) -> WarmLoop:
    """Rounds `every_seconds` apart (start to start; a round that takes longer is followed at
    once) until stopped. Ctrl-C or SIGTERM between rounds, or while a round is reported, ends it
    (a clean end: stopping is how a loop ends); a round stopped by Ctrl-C, SIGTERM or by Redis ends it too, with that round's
    result. A round that fails otherwise (more failed requests than --max-failures allows) is
    counted and the loop goes on; `on_notice` is told at the start and the end of a run of
    failed rounds, after that round's `on_round`. With `rounds`, the loop ends after that many
    (`--rounds N`)."""
    from cachectl.signals import sigterm_as_interrupt, stop_on_signals

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
            # The round is done: a Ctrl-C or SIGTERM while it is reported (writing the run's
            # point, printing; a busy box can pause the process there) waits for the whole
            # report and ends the loop as a stop between rounds does. A second Ctrl-C is at once.
            with stop_on_signals() as stop:
                on_round(result)
                if notice and on_notice is not None:
                    on_notice(notice)
            if result.stopped or stop.is_set() or round_number == rounds:
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


def _dry_run(
    store: Store, requests: Iterable[PlannedRequest], options: WarmOptions, tally: _Tally
) -> None:
    """Counts the plan (reading TTLs in chunks when asked). Ctrl-C or SIGTERM stop it as they stop
    a real round, with the result so far: between two chunks, so the counts and the report's
    records agree; what the plan holds beyond is `not_attempted`."""
    from cachectl.signals import stop_on_signals

    with stop_on_signals() as stop:
        for chunk in batched(requests, TTL_CHECK_CHUNK):
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
        self.epoch: Any = None  # Store.epoch at the last check
        self.held: deque[tuple[float, list]] = deque()  # (when, entries) of the last HOLD_SECONDS
        self.checked_at = 0.0

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
        for chunk in batched(requests, TTL_CHECK_CHUNK):
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
                await self._write_batch([])  # the last epoch check
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
        await self._write_batch([])

    async def _write_batch(self, batch: list) -> bool:
        """Writes one batch, retrying while Redis is away; False when the run must stop."""
        items = [item for item, _ in batch]
        retries = 0
        while True:
            future = asyncio.ensure_future(asyncio.to_thread(self._write_held, items, not batch))
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

    def _write_held(self, items: list, last: bool) -> list:
        """Writes `items` (none: only the run's last check) and holds what was stored for
        HOLD_SECONDS; a changed epoch at a check writes the held entries again."""
        if self.epoch is None:
            self.epoch = self.store.epoch()
        results = self.writer.write(items) if items else []
        now = time.monotonic()
        stored = [item for item, (_, error) in zip(items, results) if error is None]
        if stored:
            self.held.append((now, stored))
        while self.held and now - self.held[0][0] > HOLD_SECONDS:
            self.held.popleft()
        if last or now - self.checked_at >= EPOCH_CHECK_SECONDS:
            epoch = self.store.epoch()
            while epoch != self.epoch and not epoch.blind:
                again = [item for _, entries in self.held for item in entries]
                if again:
                    self.writer.write(again)
                    self.tally.result.rewritten += len(again)
                self.epoch, epoch = epoch, self.store.epoch()
            self.epoch, self.checked_at = epoch, time.monotonic()
        return results

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


__all__ = [
    "AccessLogSelection",
    "EndpointTally",
    "FailureLimit",
    "LatencyHistogram",
    "WarmOptions",
    "WarmProgress",
    "WarmResult",
    "select_from_access_log",
    "warm",
    "warm_every",
]
