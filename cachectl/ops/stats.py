"""`cachectl stats`: the applications' counters and the server's INFO, sampled and compared.

A `Sampler` reads one `Sample` with a fixed, small number of commands whatever the size of the
keyspace: INFO on each primary, one pipelined HGETALL per known counter hash (one round trip per
node), one ZRANGEBYSCORE over the response-time log since the last read. Which endpoints have
counters is learnt by a SCAN of the metrics prefix, at the first sample and then only every
`discover_every` samples, never on every tick.

`compute_report(previous, current)` is a pure function from two samples to a `StatsReport`: rates
are the difference of two readings over the time between them, a counter that went down (or a
server whose run_id changed) counts as reset, and the report says what it had to skip.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cachectl.analysis import counter_delta, hit_rate, percentile, ratio
from cachectl.errors import PartialFailure, RedisError
from cachectl.keytext import reply_text
from cachectl.ops.streak import FailureStreak, plural
from cachectl.runlog import RecentRun

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.store import Store

# INFO fields kept per node; the rest of INFO is never looked at.
INFO_COUNTERS = (
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
    "total_commands_processed",
)
INFO_GAUGES = (
    "used_memory",
    "used_memory_peak",
    "used_memory_rss",
    "maxmemory",
    "total_system_memory",
    "mem_fragmentation_ratio",
    "instantaneous_ops_per_sec",
    "connected_clients",
    "uptime_in_seconds",
)
DEFAULT_DISCOVER_EVERY = 60
DEFAULT_LOG_LIMIT = 50_000
SLOWEST_SHOWN = 5


# -- one sample ------------------------------------------------------------------------------


@dataclass
class NodeSample:
    node: str
    run_id: str | None
    counters: dict[str, int]
    gauges: dict[str, float]


@dataclass
class ResponseTime:
    at_ms: int
    endpoint: str
    response_time_ms: float
    hit: bool | None
    key: str | None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Sample:
    """What one tick read, before any arithmetic. Recorded samples drive the tests."""

    taken_at: float  # epoch seconds
    nodes: list[NodeSample] = field(default_factory=list)
    counters_present: bool = False
    hits: int | None = None
    misses: int | None = None
    endpoints: dict[str, tuple[int | None, int | None]] = field(default_factory=dict)
    corrupt_counters: int = 0
    response_times: list[ResponseTime] = field(default_factory=list)
    log_from_ms: int | None = None  # the log read covers (log_from_ms, taken_at]
    corrupt_log_members: int = 0
    log_truncated: bool = False
    # Key lookups this cachectl process had caused on the server when INFO was read
    # (cumulative), so that its own reads can be taken out of the server's interval hit rate.
    own_hits: int = 0
    own_misses: int = 0
    commands: int = 0  # commands this sample sent


def parse_counter(value: Any) -> int | None:
    """A HINCRBY counter as read back; None when it is not a whole number."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def parse_log_member(member: bytes | str, score: float) -> ResponseTime | None:
    """One response-time log member (JSON with endpoint, responseTime, hit, cacheKey or
    params); None when it does not read so."""
    try:
        data = json.loads(member)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    endpoint, took = data.get("endpoint"), data.get("responseTime")
    if (
        not isinstance(endpoint, str)
        or isinstance(took, bool)
        or not isinstance(took, (int, float))
    ):
        return None
    if not math.isfinite(took) or took < 0:
        return None
    hit = data.get("hit")
    key = data.get("cacheKey", data.get("params"))
    if key is not None and not isinstance(key, str):
        key = json.dumps(key, ensure_ascii=False, separators=(",", ":"))
    return ResponseTime(
        int(score), endpoint, float(took), hit if isinstance(hit, bool) else None, key
    )


class Sampler:
    """Reads samples from one deployment. Keeps the endpoints it knows and where the
    response-time log was last read up to, so each tick reads only what is new."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        *,
        discover_every: int = DEFAULT_DISCOVER_EVERY,
        log_limit: int = DEFAULT_LOG_LIMIT,
        log_window_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.layout = layout
        self.discover_every = max(1, discover_every)
        self.log_limit = log_limit
        self.log_window_seconds = log_window_seconds
        self.clock = clock
        self.endpoints: list[str] = []
        self.log_exists = False
        self.ticks = 0
        self.discoveries = 0
        self.own_hits = 0
        self.own_misses = 0
        self._log_read_to_ms: int | None = None
        # The log holds whole milliseconds, and the one a read ends in is still running: the next
        # read starts inside it again, skipping the members this read already took there.
        self._edge_members: frozenset[bytes] = frozenset()

    def count_own(self, hits: int = 0, misses: int = 0) -> None:
        """Key lookups made by cachectl (the recorder's too), taken out of the server's rate."""
        self.own_hits += hits
        self.own_misses += misses

    def discover(self) -> None:
        """Which endpoints have counters, and whether the response-time log exists: one SCAN
        of the metrics prefix over every primary."""
        hits_head = self.layout.hits_endpoint("")[0].encode()
        misses_head = self.layout.misses_endpoint("")[0].encode()
        log_key = self.layout.response_times().encode()
        endpoints: set[str] = set()
        log_exists = False
        for key in self.store.scan(match=self.layout.metrics_pattern()):
            if key == log_key:
                log_exists = True
            for head in (hits_head, misses_head):
                if key.startswith(head) and len(key) > len(head):
                    endpoints.add(key[len(head) :].decode("utf-8", "surrogateescape"))
        self.endpoints = sorted(endpoints)
        self.log_exists = log_exists
        self.discoveries += 1

    def sample(self, *, log_from_ms: int | None = None) -> Sample:
        """One sample. The log is read from where the last sample stopped, or from
        `log_from_ms` when given (exclusive)."""
        if self.ticks % self.discover_every == 0:
            self.discover()
        self.ticks += 1
        now = self.clock()
        # cachectl's lookups so far, all of which the INFO read next has counted.
        sample = Sample(taken_at=now, own_hits=self.own_hits, own_misses=self.own_misses)
        self._read_info(sample)
        if log_from_ms is not None:
            self._log_read_to_ms = log_from_ms
            self._edge_members = frozenset()
        self._read_counters_and_log(sample, int(now * 1000))
        return sample

    def _read_info(self, sample: Sample) -> None:
        for node, info in self.store.server_info().items():
            sample.commands += 1
            sample.nodes.append(
                NodeSample(
                    node=node,
                    run_id=None if info.get("run_id") is None else reply_text(info["run_id"]),
                    counters={k: int(info[k]) for k in INFO_COUNTERS if _is_number(info.get(k))},
                    gauges={k: float(info[k]) for k in INFO_GAUGES if _is_number(info.get(k))},
                )
            )

    def _read_counters_and_log(self, sample: Sample, now_ms: int) -> None:
        layout = self.layout
        hashes = [layout.hits_total(), layout.misses_total()]
        for endpoint in self.endpoints:
            hashes += [layout.hits_endpoint(endpoint), layout.misses_endpoint(endpoint)]
        log_from = self._log_read_to_ms
        if log_from is None:
            window = self.log_window_seconds
            log_from = now_ms - int(window * 1000) if window is not None else 0
        with self.store.pipeline("HGETALL") as pipe:
            for key, _ in hashes:
                pipe.hgetall(key)
            # Newest first, so a log too big to read whole gives the most recent members.
            pipe.zrevrangebyscore(
                layout.response_times(),
                now_ms,
                f"({log_from}",
                start=0,
                num=self.log_limit,
                withscores=True,
            )
            replies = pipe.execute(raise_on_error=False)
        sample.commands += len(replies)
        self._log_read_to_ms = now_ms - 1
        sample.log_from_ms = log_from
        read_before, self._edge_members = self._edge_members, frozenset()

        # None: corrupt; MISSING: no such hash (zero when its partner counter exists).
        values: list[int | None | object] = []
        for (key, fieldname), reply in zip(hashes, replies):
            if isinstance(reply, Exception):
                # A key of another type where a counter hash belongs (WRONGTYPE): skipped.
                self.count_own(hits=1)
                sample.corrupt_counters += 1
                values.append(None)
                continue
            if not reply:
                self.count_own(misses=1)
                values.append(_MISSING)
                continue
            self.count_own(hits=1)
            sample.counters_present = True
            raw = reply.get(fieldname.encode())
            value = 0 if raw is None else parse_counter(raw)
            if value is None:
                sample.corrupt_counters += 1
            values.append(value)
        pairs = [_pair(values[i], values[i + 1]) for i in range(0, len(values), 2)]
        sample.hits, sample.misses = pairs[0]
        for endpoint, pair in zip(self.endpoints, pairs[1:]):
            sample.endpoints[endpoint] = pair

        log_reply = replies[-1]
        if isinstance(log_reply, Exception):
            self.count_own(hits=1)
            sample.corrupt_log_members += 1
            return
        # An empty reply is a hit when the key exists with nothing new in range.
        if log_reply or self.log_exists:
            self.count_own(hits=1)
        else:
            self.count_own(misses=1)
        sample.log_truncated = len(log_reply) >= self.log_limit
        if read_before:
            log_reply = [(m, score) for m, score in log_reply if m not in read_before]
        self._edge_members = frozenset(m for m, score in log_reply if score >= now_ms)
        for member, score in log_reply:
            parsed = parse_log_member(member, score)
            if parsed is None:
                sample.corrupt_log_members += 1
            else:
                sample.response_times.append(parsed)
        if log_reply:
            self.log_exists = True


_MISSING = object()


def _pair(hits: Any, misses: Any) -> tuple[int | None, int | None]:
    """A hits/misses pair of counters; a missing one is zero when the other exists (an
    endpoint that never missed has no miss counter yet)."""
    if hits is _MISSING and misses is _MISSING:
        return None, None
    return (0 if hits is _MISSING else hits), (0 if misses is _MISSING else misses)


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# -- the report ------------------------------------------------------------------------------


@dataclass
class EndpointStats:
    endpoint: str
    hits: int | None
    misses: int | None
    hit_rate: float | None  # lifetime of the counters, 0..1
    requests_per_s: float | None = None
    interval_hit_rate: float | None = None
    p95_ms: float | None = None
    logged_requests: int = 0

    @property
    def traffic(self) -> float:
        if self.requests_per_s is not None:
            return self.requests_per_s
        return float((self.hits or 0) + (self.misses or 0))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ResponseTimeStats:
    count: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    slowest: list[ResponseTime] = field(default_factory=list)
    window_seconds: float | None = None
    corrupt_members: int = 0
    truncated: bool = False

    @property
    def members_read(self) -> int:
        """The log members these figures were read from: `count` with a response time, and
        the unreadable ones."""
        return self.count + self.corrupt_members

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "members_read": self.members_read,
            "slowest": [s.to_dict() for s in self.slowest],
        }


@dataclass
class AppStats:
    counters_present: bool
    hits: int | None = None
    misses: int | None = None
    hit_rate: float | None = None  # lifetime of the counters
    interval_hit_rate: float | None = None
    hits_per_s: float | None = None
    misses_per_s: float | None = None
    requests_per_s: float | None = None
    corrupt_counters: int = 0
    endpoints: list[EndpointStats] = field(default_factory=list)
    response_times: ResponseTimeStats = field(default_factory=ResponseTimeStats)

    def to_dict(self) -> dict:
        return {
            **{k: v for k, v in asdict(self).items() if k not in ("endpoints", "response_times")},
            "endpoints": [e.to_dict() for e in self.endpoints],
            "response_times": self.response_times.to_dict(),
        }


@dataclass
class NodeStats:
    node: str
    keyspace_hits: int | None
    keyspace_misses: int | None
    hit_rate: float | None
    used_memory_bytes: int | None
    used_memory_peak_bytes: int | None
    maxmemory_bytes: int | None
    fragmentation_ratio: float | None
    evicted_keys: int | None
    expired_keys: int | None
    ops_per_s: float | None
    evicted_per_s: float | None
    expired_per_s: float | None
    connected_clients: int | None
    uptime_seconds: int | None
    restarted: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ServerStats:
    keyspace_hits: int | None = None
    keyspace_misses: int | None = None
    hit_rate: float | None = None  # the server's lifetime figure, as INFO has it
    interval_hit_rate: float | None = None  # between the samples, cachectl's own lookups left out
    used_memory_bytes: int | None = None
    used_memory_peak_bytes: int | None = None
    maxmemory_bytes: int | None = None  # None: no limit on some node
    memory_used_ratio: float | None = None  # used / maxmemory
    total_system_memory_bytes: int | None = None
    fragmentation_ratio: float | None = None
    evicted_keys: int | None = None
    expired_keys: int | None = None
    evicted_per_s: float | None = None
    expired_per_s: float | None = None
    ops_per_s: float | None = None
    connected_clients: int | None = None
    uptime_seconds: int | None = None
    nodes: list[NodeStats] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            **{k: v for k, v in asdict(self).items() if k != "nodes"},
            "nodes": [n.to_dict() for n in self.nodes],
        }


@dataclass
class StatsReport:
    taken_at: float
    interval_seconds: float | None  # between the two samples the rates come from
    application: AppStats
    server: ServerStats
    warnings: list[str] = field(default_factory=list)
    commands: int = 0  # commands the sample sent

    def to_dict(self) -> dict:
        return {
            "taken_at": self.taken_at,
            "interval_seconds": self.interval_seconds,
            "application": self.application.to_dict(),
            "server": self.server.to_dict(),
            "warnings": list(self.warnings),
            "commands": self.commands,
        }


def compute_report(previous: Sample | None, current: Sample) -> StatsReport:
    """The figures of `current`, with rates over the time since `previous` (None: no rates)."""
    seconds = current.taken_at - previous.taken_at if previous else None
    if seconds is not None and seconds <= 0:
        previous, seconds = None, None
    report = StatsReport(
        taken_at=current.taken_at,
        interval_seconds=seconds,
        application=_app_stats(previous, current, seconds),
        server=_server_stats(previous, current, seconds),
        commands=current.commands,
    )
    app = report.application
    if not app.counters_present:
        report.warnings.append(
            "the application counters are missing (no hit or miss counters under the metrics "
            "prefix): only the server's figures are shown"
        )
    if app.corrupt_counters:
        report.warnings.append(
            f"{app.corrupt_counters} counter value(s) are not whole numbers: skipped"
        )
    if app.response_times.corrupt_members:
        report.warnings.append(
            f"{app.response_times.corrupt_members} response-time log member(s) could not be read: skipped"
        )
    if app.response_times.truncated:
        report.warnings.append(
            f"the response-time log held more than {app.response_times.count:,} members in the "
            "window: the most recent were read"
        )
    return report


def _per_s(delta: float | None, seconds: float | None) -> float | None:
    if delta is None or not seconds:
        return None
    return delta / seconds


def _app_stats(previous: Sample | None, current: Sample, seconds: float | None) -> AppStats:
    app = AppStats(
        counters_present=current.counters_present,
        hits=current.hits,
        misses=current.misses,
        hit_rate=hit_rate(current.hits, current.misses),
        corrupt_counters=current.corrupt_counters,
    )
    if previous is not None:
        # Both samples read the totals: a counter absent before counted from zero since.
        dh = counter_delta(previous.hits or 0, current.hits)
        dm = counter_delta(previous.misses or 0, current.misses)
        app.hits_per_s, app.misses_per_s = _per_s(dh, seconds), _per_s(dm, seconds)
        if dh is not None and dm is not None:
            app.requests_per_s = _per_s(dh + dm, seconds)
            app.interval_hit_rate = hit_rate(dh, dm)

    by_endpoint: dict[str, list[float]] = {}
    for rt in current.response_times:
        by_endpoint.setdefault(rt.endpoint, []).append(rt.response_time_ms)
    for endpoint, (hits, misses) in current.endpoints.items():
        stats = EndpointStats(endpoint, hits, misses, hit_rate(hits, misses))
        if previous is not None and endpoint in previous.endpoints:
            ph, pm = previous.endpoints[endpoint]
            dh, dm = counter_delta(ph or 0, hits), counter_delta(pm or 0, misses)
            if dh is not None and dm is not None:
                stats.requests_per_s = _per_s(dh + dm, seconds)
                stats.interval_hit_rate = hit_rate(dh, dm)
        times = by_endpoint.get(endpoint, [])
        stats.p95_ms, stats.logged_requests = percentile(times, 95), len(times)
        app.endpoints.append(stats)
    app.endpoints.sort(key=lambda e: (-e.traffic, e.endpoint))

    times = [rt.response_time_ms for rt in current.response_times]
    window = None
    if current.log_from_ms is not None and current.log_from_ms > 0:
        window = current.taken_at - current.log_from_ms / 1000
    app.response_times = ResponseTimeStats(
        count=len(times),
        p50_ms=percentile(times, 50),
        p95_ms=percentile(times, 95),
        p99_ms=percentile(times, 99),
        max_ms=max(times) if times else None,
        slowest=sorted(current.response_times, key=lambda r: -r.response_time_ms)[:SLOWEST_SHOWN],
        window_seconds=window,
        corrupt_members=current.corrupt_log_members,
        truncated=current.log_truncated,
    )
    return app


def _sum(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _server_stats(previous: Sample | None, current: Sample, seconds: float | None) -> ServerStats:
    before = {n.node: n for n in previous.nodes} if previous else {}
    nodes: list[NodeStats] = []
    deltas: dict[str, list[float | None]] = {k: [] for k in INFO_COUNTERS}
    for node in current.nodes:
        prev = before.get(node.node)
        restarted = bool(prev and prev.run_id and node.run_id and prev.run_id != node.run_id)
        node_deltas = {}
        for name in INFO_COUNTERS:
            now_value = node.counters.get(name)
            then = None if prev is None else (0 if restarted else prev.counters.get(name))
            node_deltas[name] = counter_delta(then, now_value) if prev is not None else None
            deltas[name].append(node_deltas[name])
        g, c = node.gauges, node.counters
        ops = _per_s(node_deltas["total_commands_processed"], seconds)
        nodes.append(
            NodeStats(
                node=node.node,
                keyspace_hits=c.get("keyspace_hits"),
                keyspace_misses=c.get("keyspace_misses"),
                hit_rate=hit_rate(c.get("keyspace_hits"), c.get("keyspace_misses")),
                used_memory_bytes=_int(g.get("used_memory")),
                used_memory_peak_bytes=_int(g.get("used_memory_peak")),
                maxmemory_bytes=_int(g.get("maxmemory")),
                fragmentation_ratio=g.get("mem_fragmentation_ratio"),
                evicted_keys=c.get("evicted_keys"),
                expired_keys=c.get("expired_keys"),
                ops_per_s=ops if ops is not None else g.get("instantaneous_ops_per_sec"),
                evicted_per_s=_per_s(node_deltas["evicted_keys"], seconds),
                expired_per_s=_per_s(node_deltas["expired_keys"], seconds),
                connected_clients=_int(g.get("connected_clients")),
                uptime_seconds=_int(g.get("uptime_in_seconds")),
                restarted=restarted,
            )
        )

    server = ServerStats(nodes=nodes)
    if not nodes:
        return server
    hits = _sum([n.keyspace_hits for n in nodes])
    misses = _sum([n.keyspace_misses for n in nodes])
    server.keyspace_hits, server.keyspace_misses = _int(hits), _int(misses)
    server.hit_rate = hit_rate(hits, misses)
    if previous is not None:
        dh, dm = _sum(deltas["keyspace_hits"]), _sum(deltas["keyspace_misses"])
        if dh is not None and dm is not None:
            own_dh = counter_delta(previous.own_hits, current.own_hits) or 0
            own_dm = counter_delta(previous.own_misses, current.own_misses) or 0
            server.interval_hit_rate = hit_rate(max(0, dh - own_dh), max(0, dm - own_dm))
    server.used_memory_bytes = _int(_sum([n.used_memory_bytes for n in nodes]))
    server.used_memory_peak_bytes = _int(_sum([n.used_memory_peak_bytes for n in nodes]))
    limits = [n.maxmemory_bytes for n in nodes]
    # A node without maxmemory has no limit, so the deployment as a whole has none.
    server.maxmemory_bytes = sum(limits) if all(limits) else None
    server.memory_used_ratio = ratio(server.used_memory_bytes, server.maxmemory_bytes)
    systems = [cur.gauges.get("total_system_memory") for cur in current.nodes]
    server.total_system_memory_bytes = _int(_sum(systems))
    rss = _sum([cur.gauges.get("used_memory_rss") for cur in current.nodes])
    server.fragmentation_ratio = (
        ratio(rss, server.used_memory_bytes) if len(nodes) > 1 else nodes[0].fragmentation_ratio
    )
    server.evicted_keys = _int(_sum([n.evicted_keys for n in nodes]))
    server.expired_keys = _int(_sum([n.expired_keys for n in nodes]))
    server.evicted_per_s = _sum([n.evicted_per_s for n in nodes])
    server.expired_per_s = _sum([n.expired_per_s for n in nodes])
    server.ops_per_s = _sum([n.ops_per_s for n in nodes])
    server.connected_clients = _int(_sum([n.connected_clients for n in nodes]))
    uptimes = [n.uptime_seconds for n in nodes if n.uptime_seconds is not None]
    server.uptime_seconds = min(uptimes) if uptimes else None
    return server


# -- one-shot --------------------------------------------------------------------------------


def take_stats(
    store: Store,
    layout: Layout,
    *,
    sample_seconds: float = 1.0,
    log_window_seconds: float | None = 300.0,
    sleep: Callable[[float], None] = time.sleep,
    sampler: Sampler | None = None,
) -> StatsReport:
    """Two samples `sample_seconds` apart; the report of the second with rates between them.

    The response-time figures cover the log's last `log_window_seconds` (None: all of it).
    With sample_seconds 0 a single sample is read and there are no rates.
    """
    sampler = sampler or Sampler(store, layout, log_window_seconds=log_window_seconds)
    first = sampler.sample()
    if sample_seconds <= 0:
        return compute_report(None, first)
    sleep(sample_seconds)
    # The second read covers the log from the window's start again, not just the pause.
    second = sampler.sample(log_from_ms=first.log_from_ms)
    report = compute_report(first, second)
    report.commands = first.commands + second.commands
    return report


# -- watching --------------------------------------------------------------------------------


@dataclass
class SessionTotals:
    """Counts since the watch began, summed from per-tick deltas so resets do not lose them."""

    started_at: float
    app_hits: float = 0
    app_misses: float = 0
    ticks: int = 0

    @property
    def hit_rate(self) -> float | None:
        return hit_rate(self.app_hits, self.app_misses)

    def to_dict(self) -> dict:
        return {**asdict(self), "hit_rate": self.hit_rate}


@dataclass
class Tick:
    """One tick of `watch`: a report (rates from the previous sample), or the error that kept
    the server from being read."""

    report: StatsReport | None
    previous: Sample | None
    current: Sample | None
    error: RedisError | None = None


class UnrecordedTicks(FailureStreak):
    """Ticks whose figures could not be stored (the server could not be sampled, or the write
    was refused)."""

    def failing_line(self, number: int, error: str) -> str:
        return (
            f"tick {number}: figures not stored: {error} (recording goes on; the ticks that "
            "fail are counted and the run will exit 6)"
        )

    def recovered_line(self, number: int, failed: int) -> str:
        return f"tick {number}: figures stored again after {plural(failed, 'failed tick')}"

    def problem_for(self, rounds: int) -> PartialFailure:
        return PartialFailure(
            f"{self.count} of {rounds} ticks not stored (last error: {self.last_error})",
            hint="the history has a gap for each of them",
            details={"failed_ticks": self.count, "ticks": rounds},
        )


def watch(
    sampler: Sampler,
    interval: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    max_ticks: int | None = None,
) -> Iterator[Tick]:
    """A Tick every `interval` seconds. A tick that cannot read the server carries the error;
    the next one tries again, and its rates span the gap."""
    previous: Sample | None = None
    ticks = 0
    deadline = monotonic()
    while True:
        try:
            current = sampler.sample()
        except RedisError as err:
            yield Tick(None, previous, None, err)
        else:
            yield Tick(compute_report(previous, current), previous, current)
            previous = current
        ticks += 1
        if max_ticks is not None and ticks >= max_ticks:
            return
        deadline += interval
        wait = deadline - monotonic()
        if wait < 0:
            # A slow tick (a retried connection): start the next interval from now.
            deadline, wait = monotonic(), 0
        sleep(wait)


# -- the dashboard's state -------------------------------------------------------------------

SPARK_POINTS = 120
# The response-time window of the dashboard holds at most this many log members (the newest).
WINDOW_MEMBERS = DEFAULT_LOG_LIMIT


class ResponseWindow:
    """The response-time log members of the last `seconds`, kept from tick to tick.

    Each tick reads only the members logged since the last one (its command count stays
    fixed), so the percentiles and slowest requests of a single tick would cover one interval
    and empty out on a quiet one. The members already read are kept here instead, for as long
    as the window, at most `limit` of them: no command more, memory bounded."""

    def __init__(self, seconds: float, limit: int = WINDOW_MEMBERS):
        self.seconds = seconds
        self.limit = limit
        self.members: deque[ResponseTime] = deque()

    def add(self, sample: Sample) -> None:
        for rt in sorted(sample.response_times, key=lambda r: r.at_ms):
            self.members.append(rt)
        horizon = int((sample.taken_at - self.seconds) * 1000)
        while self.members and (self.members[0].at_ms <= horizon or len(self.members) > self.limit):
            self.members.popleft()

    def stats(self) -> ResponseTimeStats:
        times = [rt.response_time_ms for rt in self.members]
        return ResponseTimeStats(
            count=len(times),
            p50_ms=percentile(times, 50),
            p95_ms=percentile(times, 95),
            p99_ms=percentile(times, 99),
            max_ms=max(times) if times else None,
            slowest=heapq.nlargest(SLOWEST_SHOWN, self.members, key=lambda r: r.response_time_ms),
            window_seconds=self.seconds,
        )

    def p95_by_endpoint(self) -> dict[str, float | None]:
        by_endpoint: dict[str, list[float]] = {}
        for rt in self.members:
            by_endpoint.setdefault(rt.endpoint, []).append(rt.response_time_ms)
        return {endpoint: percentile(times, 95) for endpoint, times in by_endpoint.items()}


@dataclass
class DashboardState:
    """Everything the dashboard shows, updated once a tick; the renderer is a pure function
    of it, so a test can build one from recorded samples and read the screen."""

    started_at: float
    interval_seconds: float
    report: StatsReport | None = None
    session: SessionTotals | None = None
    hit_rates: list[float] = field(default_factory=list)
    memory: list[float] = field(default_factory=list)
    ops: list[float] = field(default_factory=list)
    stored: dict[str, list[float]] = field(default_factory=dict)  # from history, oldest first
    runs: list[RecentRun] = field(default_factory=list)
    error: str | None = None
    failed_ticks: int = 0
    ticks: int = 0
    recording: bool = False
    recorded_points: int = 0
    # The response-time window the dashboard shows (None: each tick's own log members).
    log_window_seconds: float | None = None
    response_window: ResponseTimeStats | None = None
    endpoint_p95_ms: dict[str, float | None] | None = None
    warnings: list[str] = field(default_factory=list)  # about stored data, each said once
    fresh_warnings: list[str] = field(default_factory=list)  # those added this tick
    # Recording (--record): the ticks not stored, and why the last one was not.
    unrecorded: UnrecordedTicks = field(default_factory=UnrecordedTicks)
    record_error: str | None = None
    notice: str | None = None  # a run of unrecorded ticks began or ended this tick

    def __post_init__(self) -> None:
        if self.session is None:
            self.session = SessionTotals(started_at=self.started_at)
        self._window = (
            ResponseWindow(self.log_window_seconds) if self.log_window_seconds is not None else None
        )

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.fresh_warnings.append(message)

    def update(self, tick: Tick) -> None:
        self.fresh_warnings = []
        if tick.error is not None:
            self.error = tick.error.message
            self.failed_ticks += 1
            self.ticks += 1
            return
        report, previous, current = tick.report, tick.previous, tick.current
        self.report = report
        self.error = None
        self.failed_ticks = 0
        self.ticks += 1
        app, server = report.application, report.server
        if previous is not None and report.interval_seconds:
            dh = counter_delta(previous.hits or 0, current.hits)
            dm = counter_delta(previous.misses or 0, current.misses)
            self.session.app_hits += dh or 0
            self.session.app_misses += dm or 0
        self.session.ticks += 1
        _push(self.hit_rates, app.interval_hit_rate)
        _push(self.memory, server.used_memory_bytes)
        _push(self.ops, server.ops_per_s)
        if self._window is not None:
            self._window.add(current)
            self.response_window = self._window.stats()
            self.response_window.corrupt_members = app.response_times.corrupt_members
            self.response_window.truncated = app.response_times.truncated
            self.endpoint_p95_ms = self._window.p95_by_endpoint()

    def to_dict(self) -> dict:
        """One tick for machines (`stats --every ... --json`, one object per line)."""
        return {
            "tick": self.ticks,
            "report": self.report.to_dict() if self.report and not self.error else None,
            "session": self.session.to_dict(),
            "error": self.error,
            "failed_ticks": self.failed_ticks,
            "runs": [r.to_dict() for r in self.runs],
            "recorded_points": self.recorded_points if self.recording else None,
            "unrecorded_ticks": self.unrecorded.count if self.recording else None,
            "record_error": self.record_error,
            "response_window": self.response_window.to_dict() if self.response_window else None,
            "warnings": list(self.fresh_warnings),
        }


def _push(series: list[float], value: float | None) -> None:
    if value is None:
        return
    series.append(float(value))
    del series[:-SPARK_POINTS]
