"""`cachectl exporter`: what each scrape reads, and what a background refresher reads for it.

A scrape (`Scraper.scrape`) costs a fixed number of round trips whatever the size of the
keyspace: INFO on each primary, one pipeline of HGETALLs of the known counter hashes plus the
response-time log since the last scrape (the `stats` Sampler's read), and one read of the newest
`cachectl.runs` points. It never scans: which endpoints have counters, and the figures that need
a walk of the keyspace (entries and memory by endpoint, tag and dependency sets, dangling members),
come from the `Refresher`, a thread that runs a paced, sampled scan every `interval` seconds
(the `memory --sample-size` walk) and a paced SCAN of the metrics prefix every `discover_every`
refreshes. A scrape hands over the refresher's last result as it is.

A scrape that cannot reach Redis, or that takes longer than its timeout, answers at once with
`up` False: only one read is in flight at a time, and a scrape that finds one still running
does not wait for it.

`Snapshot` is everything one scrape saw; `cachectl.render.prometheus` turns it into metric
families, the same for `cachectl stats --format prometheus` (`Snapshot.of_report`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from cachectl.errors import CachectlError, UsageError
from cachectl.ops.stats import (
    ResponseTimeStats,
    ResponseWindow,
    Sampler,
    StatsReport,
    compute_report,
)
from cachectl.runlog import RUNS_SERIES, RecentRun

if TYPE_CHECKING:
    from cachectl.config import Settings
    from cachectl.layout import Layout
    from cachectl.store import Store

DEFAULT_LISTEN = "127.0.0.1:9787"
DEFAULT_REFRESH_SECONDS = 60.0
DEFAULT_REFRESH_SAMPLE = 10_000  # keys the sampled scan reads per refresh
DEFAULT_REFRESH_RATE = 20_000.0  # keys a second the refresher's scans are held to
DEFAULT_DISCOVER_EVERY = 10  # refreshes between two SCANs of the metrics prefix
DEFAULT_SCRAPE_TIMEOUT = 3.0
DEFAULT_WINDOW_SECONDS = 300.0
RUNS_READ = 100  # newest run points read per scrape (one command)


def parse_listen(text: str) -> tuple[str, int]:
    """`host:port`, `[v6 address]:port` or `:port` (bind 127.0.0.1); port 0 picks a free one."""
    text = text.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise UsageError(f"--listen must be HOST:PORT (for example 127.0.0.1:9787), not {text!r}")
    port = int(port_text)
    if port > 65535:
        raise UsageError(f"--listen: the port must be 0 to 65535, not {port}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UsageError(f"--listen: put an IPv6 address in brackets ([::1]:9787), not {text!r}")
    return host or "127.0.0.1", port


# -- what the refresher reads ------------------------------------------------------------------


@dataclass
class RefreshResult:
    """One sampled walk of the keyspace. Counts and sums are scaled up from the sample."""

    finished_at: float  # epoch seconds
    duration_seconds: float
    complete: bool
    keys_scanned: int = 0
    dbsize: int = 0
    sampled: bool = False
    entries: int = 0
    entry_bytes: int = 0
    endpoint_entries: dict[str, int] = field(default_factory=dict)
    endpoint_bytes: dict[str, int] = field(default_factory=dict)
    bookkeeping_keys: dict[str, int] = field(default_factory=dict)  # kind -> keys
    bookkeeping_bytes: dict[str, int] = field(default_factory=dict)
    tag_sets: int = 0
    dependency_sets: int = 0
    members_probed: int = 0  # members of the largest sets checked for an entry
    members_dangling: int = 0  # of those, whose entry is gone
    error: str | None = None


# Group names of `memory`'s bookkeeping, as the exporter's `kind` label spells them.
BOOKKEEPING_KINDS = {
    "tag sets": "tag",
    "dependency sets": "dependency",
    "write log": "entries_log",
    "access log": "access_log",
    "hit/miss metrics": "metrics",
    "time series": "timeseries",
    "half-finished invalidations": "pending_set",
    "stampede locks": "lock",
}


def refresh_once(store: Store, layout: Layout, *, sample: int, rate: float | None) -> RefreshResult:
    """One paced, sampled walk (`cachectl memory --sample`), folded into the exporter's figures."""
    from cachectl.ops.memory import analyze_memory
    from cachectl.store import Pacer

    started, wall = time.monotonic(), time.time()
    report = analyze_memory(store, layout, top=0, sample=sample, pacer=Pacer(rate))
    result = RefreshResult(
        finished_at=wall,
        duration_seconds=time.monotonic() - started,
        complete=report.complete,
        keys_scanned=report.keys_scanned,
        dbsize=report.dbsize,
        sampled=report.sampled,
        entries=report.entries.keys,
        entry_bytes=report.entries.total_bytes,
        error=report.stopped,
    )
    for group in report.groups.values():
        result.endpoint_entries[group.name] = group.keys
        result.endpoint_bytes[group.name] = group.total_bytes
    for name, group in report.overhead.items():
        kind = BOOKKEEPING_KINDS.get(name, name)
        result.bookkeeping_keys[kind] = group.keys
        result.bookkeeping_bytes[kind] = group.total_bytes
    result.tag_sets = result.bookkeeping_keys.get("tag", 0)
    result.dependency_sets = result.bookkeeping_keys.get("dependency", 0)
    for probe in report.dangling_probe:
        result.members_probed += probe["members_probed"]
        result.members_dangling += probe["dangling"]
    return result


class Refresher:
    """The expensive figures, read in a thread of their own every `interval` seconds."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        sampler: ScrapeSampler,
        *,
        interval: float = DEFAULT_REFRESH_SECONDS,
        sample: int = DEFAULT_REFRESH_SAMPLE,
        rate: float | None = DEFAULT_REFRESH_RATE,
        discover_every: int = DEFAULT_DISCOVER_EVERY,
    ):
        self.store = store
        self.layout = layout
        self.sampler = sampler
        self.interval = interval
        self.sample = sample
        self.rate = rate
        self.discover_every = max(1, discover_every)
        self.last: RefreshResult | None = None
        self.runs = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="cachectl-refresh", daemon=True)
        self._thread.start()

    def stop(self, wait: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(wait)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.interval)

    def refresh(self) -> None:
        """One round; an error is counted and kept, and the next round tries again."""
        from cachectl.store import Pacer

        started = time.monotonic()
        try:
            # The sampled walk first: it is quick, and the endpoints it meets are read from the
            # next scrape on, before the slower discovery (a paced walk of the whole keyspace).
            result = refresh_once(self.store, self.layout, sample=self.sample, rate=self.rate)
            self.sampler.add_endpoints(result.endpoint_entries)
            self.last = result
            if self.runs % self.discover_every == 0 or not self.sampler.discovered:
                self.sampler.discover_now(Pacer(self.rate))
        except Exception as err:  # noqa: BLE001 -- the thread must live on to try again
            message = (
                err.message if isinstance(err, CachectlError) else f"{type(err).__name__}: {err}"
            )
            self.errors += 1
            previous = self.last
            self.last = RefreshResult(
                finished_at=time.time(),
                duration_seconds=time.monotonic() - started,
                complete=False,
                error=message,
            )
            if previous is not None and previous.keys_scanned:
                # The figures of the last walk that read anything stand; the failure is in
                # `error` and cachectl_refresh_success.
                self.last = replace(previous, complete=False, error=message)
        else:
            if not result.complete:
                self.errors += 1
        finally:
            self.runs += 1


# -- what a scrape reads -----------------------------------------------------------------------


class ScrapeSampler(Sampler):
    """The `stats` Sampler with its endpoint discovery (a SCAN) taken out of the scrape: the
    refresher calls `discover_now` instead."""

    def __init__(self, store: Store, layout: Layout, **kwargs: Any):
        super().__init__(store, layout, **kwargs)
        self.discovered = False
        self._endpoints_lock = threading.Lock()

    def discover(self) -> None:  # called by Sampler.sample: never scans during a scrape
        return

    def discover_now(self, pacer: Any = None) -> None:
        hits_head = self.layout.hits_endpoint("")[0].encode()
        misses_head = self.layout.misses_endpoint("")[0].encode()
        found: set[str] = set()
        for key in self.store.scan(match=self.layout.metrics_pattern(), pacer=pacer):
            for head in (hits_head, misses_head):
                if key.startswith(head) and len(key) > len(head):
                    found.add(key[len(head) :].decode("utf-8", "surrogateescape"))
        with self._endpoints_lock:
            self.endpoints = sorted(found)
        self.discovered = True
        self.discoveries += 1

    def add_endpoints(self, names: Any) -> None:
        """Endpoints seen by the sampled walk: their counters are read from the next scrape
        on (one more HGETALL each in the same round trip; a name without counters reads
        empty and is left out)."""
        with self._endpoints_lock:
            known = set(self.endpoints)
            new = [n for n in names if n not in known and n != "(unreadable)"]
            if new:
                self.endpoints = sorted(known | set(new))


@dataclass
class Snapshot:
    """Everything one scrape saw, for the collectors (`cachectl.render.prometheus`)."""

    taken_at: float
    up: bool
    report: StatsReport | None = None
    response_times: ResponseTimeStats | None = None
    endpoint_p95_ms: dict[str, float | None] = field(default_factory=dict)
    runs: dict[str, RecentRun] = field(default_factory=dict)  # the latest run of each job
    refresh: RefreshResult | None = None
    refresh_errors: int = 0
    scrape_seconds: float | None = None  # how long this scrape's read took
    scrape_errors: int = 0
    commands: int = 0
    error: str | None = None
    exporter: bool = True  # False: a one-shot `stats` report (no scrape or refresh figures)

    @classmethod
    def of_report(cls, report: StatsReport) -> Snapshot:
        """A `stats` report as a snapshot, for `stats --format prometheus`."""
        return cls(
            taken_at=report.taken_at,
            up=True,
            report=report,
            response_times=report.application.response_times,
            endpoint_p95_ms={e.endpoint: e.p95_ms for e in report.application.endpoints},
            commands=report.commands,
            exporter=False,
        )


def latest_runs(runs: list[RecentRun]) -> dict[str, RecentRun]:
    """The newest run of each job, from runs newest first."""
    latest: dict[str, RecentRun] = {}
    for run in runs:
        latest.setdefault(run.job, run)
    return latest


def scrape_settings(settings: Settings, timeout: float) -> Settings:
    """The scrape's connection gives up within the scrape's timeout and never retries: the
    next scrape is the retry."""
    return replace(
        settings,
        retries=0,
        connect_timeout=min(settings.connect_timeout, timeout),
        timeout=min(settings.timeout, timeout),
    )


class Scraper:
    """Reads a Snapshot per scrape; one read in flight at a time, each bounded by `timeout`."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        *,
        window_seconds: float = DEFAULT_WINDOW_SECONDS,
        timeout: float = DEFAULT_SCRAPE_TIMEOUT,
        refresher: Refresher | None = None,
        sampler: ScrapeSampler | None = None,
        clock: Callable[[], float] = time.time,
    ):
        from cachectl.timeseries import TimeSeries

        self.store = store
        self.layout = layout
        self.timeout = timeout
        self.sampler = sampler or ScrapeSampler(
            store, layout, log_window_seconds=window_seconds, clock=clock
        )
        self.window = ResponseWindow(window_seconds)
        self.series = TimeSeries(store, layout, on_lookups=self.sampler.count_own)
        self.refresher = refresher
        self.clock = clock
        self.scrape_errors = 0
        self.last_seconds: float | None = None
        self.runs: dict[str, RecentRun] = {}  # kept: a job not run lately still has its last run
        self._busy = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cachectl-scrape")

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def scrape(self) -> Snapshot:
        started = time.monotonic()
        snapshot: Snapshot
        if not self._busy.acquire(blocking=False):
            snapshot = self._down("the previous scrape's read of Redis has not finished")
        else:
            future = self._pool.submit(self._read)
            try:
                snapshot = future.result(self.timeout)
            except FutureTimeout:
                # The read goes on in its thread and frees the lock when it ends.
                future.add_done_callback(lambda _: self._busy.release())
                snapshot = self._down(f"Redis did not answer within {self.timeout:g}s")
            except CachectlError as err:
                self._busy.release()
                snapshot = self._down(err.message)
            except Exception as err:  # noqa: BLE001 -- a scrape must answer, whatever broke
                self._busy.release()
                snapshot = self._down(f"{type(err).__name__}: {err}")
            else:
                self._busy.release()
        self.last_seconds = snapshot.scrape_seconds = time.monotonic() - started
        return snapshot

    def _down(self, error: str) -> Snapshot:
        self.scrape_errors += 1
        return self._finish(Snapshot(taken_at=self.clock(), up=False, error=error))

    def _finish(self, snapshot: Snapshot) -> Snapshot:
        snapshot.scrape_errors = self.scrape_errors
        snapshot.runs = dict(self.runs)
        if self.refresher is not None:
            snapshot.refresh = self.refresher.last
            snapshot.refresh_errors = self.refresher.errors
        return snapshot

    def _read(self) -> Snapshot:
        from cachectl.runlog import recent_runs

        sample = self.sampler.sample()
        report = compute_report(None, sample)
        runs = recent_runs(self.series, RUNS_READ)
        for job, run in latest_runs(runs).items():
            if job not in self.runs or run.at_ms >= self.runs[job].at_ms:
                self.runs[job] = run
        self.window.add(sample)
        times = self.window.stats()
        times.corrupt_members = report.application.response_times.corrupt_members
        times.truncated = report.application.response_times.truncated
        return self._finish(
            Snapshot(
                taken_at=sample.taken_at,
                up=True,
                report=report,
                response_times=times,
                endpoint_p95_ms=self.window.p95_by_endpoint(),
                commands=sample.commands + 1,
            )
        )


__all__ = ["RUNS_SERIES", "Refresher", "ScrapeSampler", "Scraper", "Snapshot", "parse_listen"]
