"""The cache's figures as Prometheus metric families, built with the official
`prometheus_client` (custom collectors, never hand-written text).

`metric_families(snapshot)` is the one place a metric is named: `cachectl exporter` serves it on
every scrape, and `cachectl stats --format prometheus` prints it for one report
(`Snapshot.of_report`), so the names never differ. `METRICS` lists every family with its type
and help; docs/reference/exporter.md's table and the Grafana dashboard's test are held to it.

Imports prometheus_client at the top: import this module only inside the commands that use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

if TYPE_CHECKING:
    from cachectl.ops.exporter import Snapshot

QUANTILES = (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"))

# name (as exposed; counters with their _total) -> (type, labels, help)
METRICS: dict[str, tuple[str, tuple[str, ...], str]] = {
    "cachectl_up": ("gauge", (), "1 when this scrape read Redis, 0 when it could not"),
    "cachectl_app_counters_present": (
        "gauge",
        (),
        "1 when the applications' hit and miss counters exist",
    ),
    "cachectl_app_hits_total": ("counter", (), "Cache hits counted by the applications"),
    "cachectl_app_misses_total": ("counter", (), "Cache misses counted by the applications"),
    "cachectl_app_hit_ratio": (
        "gauge",
        (),
        (
            "Hits over hits and misses, over the counters' lifetime (use rate() of the counters "
            "for a recent figure)"
        ),
    ),
    "cachectl_endpoint_hits_total": ("counter", ("endpoint",), "Cache hits per endpoint"),
    "cachectl_endpoint_misses_total": ("counter", ("endpoint",), "Cache misses per endpoint"),
    "cachectl_response_time_seconds": (
        "gauge",
        ("quantile",),
        "Response-time quantiles from the applications' response-time log, over the window",
    ),
    "cachectl_endpoint_response_time_seconds": (
        "gauge",
        ("endpoint", "quantile"),
        "95th percentile response time per endpoint, over the window",
    ),
    "cachectl_response_time_log_requests": (
        "gauge",
        (),
        "Requests in the response-time log window",
    ),
    "cachectl_corrupt_counters": ("gauge", (), "Counter values that are not whole numbers"),
    "cachectl_corrupt_log_members": (
        "gauge",
        (),
        "Response-time log members that could not be read",
    ),
    "cachectl_redis_keyspace_hits_total": ("counter", ("node",), "Server keyspace hits"),
    "cachectl_redis_keyspace_misses_total": ("counter", ("node",), "Server keyspace misses"),
    "cachectl_redis_used_memory_bytes": ("gauge", ("node",), "Memory used"),
    "cachectl_redis_used_memory_peak_bytes": ("gauge", ("node",), "Peak memory used"),
    "cachectl_redis_maxmemory_bytes": ("gauge", ("node",), "maxmemory (0: no limit)"),
    "cachectl_redis_mem_fragmentation_ratio": ("gauge", ("node",), "RSS over used memory"),
    "cachectl_redis_evicted_keys_total": ("counter", ("node",), "Keys evicted"),
    "cachectl_redis_expired_keys_total": ("counter", ("node",), "Keys expired"),
    "cachectl_redis_ops_per_second": ("gauge", ("node",), "Commands per second"),
    "cachectl_redis_connected_clients": ("gauge", ("node",), "Connected clients"),
    "cachectl_redis_uptime_seconds": ("gauge", ("node",), "Seconds since the server started"),
    "cachectl_redis_hit_ratio": (
        "gauge",
        (),
        (
            "Keyspace hits over lookups since each server started (INFO), all primaries; every "
            "client's lookups are counted, cachectl's own included"
        ),
    ),
    "cachectl_last_run_timestamp_seconds": (
        "gauge",
        ("job",),
        "When the latest run of a job (warm, invalidate, prune) ended, epoch seconds",
    ),
    "cachectl_last_run_duration_seconds": ("gauge", ("job",), "How long the latest run took"),
    "cachectl_last_run_success": (
        "gauge",
        ("job",),
        (
            "1 when the latest run finished its whole job, 0 when it was interrupted, stopped or "
            "had failures"
        ),
    ),
    "cachectl_last_run_count": (
        "gauge",
        ("job", "field"),
        "The latest run's figures (stored, failed, deleted...) by name",
    ),
    "cachectl_entries": (
        "gauge",
        (),
        "Cache entries (estimated from the refresher's sampled scan)",
    ),
    "cachectl_entries_memory_bytes": ("gauge", (), "Memory of the cache entries (estimated)"),
    "cachectl_endpoint_entries": ("gauge", ("endpoint",), "Cache entries per endpoint (estimated)"),
    "cachectl_endpoint_memory_bytes": (
        "gauge",
        ("endpoint",),
        "Memory of the cache entries per endpoint (estimated)",
    ),
    "cachectl_bookkeeping_keys": (
        "gauge",
        ("kind",),
        (
            "Bookkeeping keys (tag and dependency sets, logs, metrics, time series...) by kind "
            "(estimated)"
        ),
    ),
    "cachectl_bookkeeping_memory_bytes": (
        "gauge",
        ("kind",),
        "Memory of the bookkeeping keys by kind (estimated)",
    ),
    "cachectl_tag_sets": ("gauge", (), "Tag sets (estimated)"),
    "cachectl_dependency_sets": ("gauge", (), "Dependency sets (estimated)"),
    "cachectl_index_members_probed": (
        "gauge",
        (),
        "Members of the largest tag and dependency sets checked for an entry at the last refresh",
    ),
    "cachectl_index_members_dangling": (
        "gauge",
        (),
        (
            "Of the members probed, those whose entry no longer exists (dangling: `cachectl prune` "
            "removes them)"
        ),
    ),
    "cachectl_refresh_timestamp_seconds": (
        "gauge",
        (),
        "When the refresher's last sampled scan ended, epoch seconds",
    ),
    "cachectl_refresh_duration_seconds": ("gauge", (), "How long the last sampled scan took"),
    "cachectl_refresh_keys_scanned": ("gauge", (), "Keys the last sampled scan read"),
    "cachectl_refresh_success": ("gauge", (), "1 when the last sampled scan completed"),
    "cachectl_refresh_errors_total": ("counter", (), "Sampled scans that failed or stopped early"),
    "cachectl_scrape_duration_seconds": (
        "gauge",
        (),
        "How long this scrape took to read Redis (or to give up on it)",
    ),
    "cachectl_scrape_errors_total": (
        "counter",
        (),
        "Scrapes that could not read Redis (answered with cachectl_up 0)",
    ),
    "cachectl_scrape_commands": ("gauge", (), "Redis commands this scrape sent"),
}

# Served by the exporter only (a one-shot `stats` report has no scrape or refresh of its own).
EXPORTER_ONLY = frozenset(
    name
    for name in METRICS
    if name.startswith(("cachectl_refresh_", "cachectl_scrape_", "cachectl_last_run_"))
    or name
    in {
        "cachectl_up",
        "cachectl_entries",
        "cachectl_entries_memory_bytes",
        "cachectl_endpoint_entries",
        "cachectl_endpoint_memory_bytes",
        "cachectl_bookkeeping_keys",
        "cachectl_bookkeeping_memory_bytes",
        "cachectl_tag_sets",
        "cachectl_dependency_sets",
        "cachectl_index_members_probed",
        "cachectl_index_members_dangling",
        "cachectl_endpoint_response_time_seconds",
    }
)


class _Families:
    """Builds each family once, in METRICS order, adding samples as they come."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}

    def add(self, name: str, value: Any, labels: tuple[str, ...] = ()) -> None:
        if value is None:
            return
        family = self.families.get(name)
        if family is None:
            kind, label_names, help_text = METRICS[name]
            if kind == "counter":
                family = CounterMetricFamily(name, help_text, labels=list(label_names))
            else:
                family = GaugeMetricFamily(name, help_text, labels=list(label_names))
            self.families[name] = family
        family.add_metric(list(labels), float(value))

    def ordered(self) -> list[Metric]:
        order = {name: i for i, name in enumerate(METRICS)}
        return sorted(self.families.values(), key=lambda f: order[_exposed(f)])


def _exposed(family: Metric) -> str:
    return family.name + "_total" if family.type == "counter" else family.name


def metric_families(snapshot: Snapshot) -> list[Metric]:
    """Every family for one snapshot. A figure that is not known is left out, not written as
    0 or NaN (a missing series is what Prometheus expects of an unknown value)."""
    x = _Families()
    if snapshot.exporter:
        x.add("cachectl_up", int(snapshot.up))
    _report(x, snapshot)
    if snapshot.exporter:
        _runs(x, snapshot)
        _refresh(x, snapshot)
        x.add("cachectl_scrape_duration_seconds", snapshot.scrape_seconds)
        x.add("cachectl_scrape_errors_total", snapshot.scrape_errors)
        if snapshot.up:
            x.add("cachectl_scrape_commands", snapshot.commands)
    return x.ordered()


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _report(x: _Families, snapshot: Snapshot) -> None:
    report = snapshot.report
    if report is None:
        return
    app, server = report.application, report.server
    x.add("cachectl_app_counters_present", int(app.counters_present))
    x.add("cachectl_app_hits_total", app.hits)
    x.add("cachectl_app_misses_total", app.misses)
    x.add("cachectl_app_hit_ratio", app.hit_rate)
    for e in app.endpoints:
        x.add("cachectl_endpoint_hits_total", e.hits, (e.endpoint,))
        x.add("cachectl_endpoint_misses_total", e.misses, (e.endpoint,))
    rt = snapshot.response_times or app.response_times
    for quantile, attribute in QUANTILES:
        x.add("cachectl_response_time_seconds", _seconds(getattr(rt, attribute)), (quantile,))
    if snapshot.exporter:
        for endpoint, p95 in sorted(snapshot.endpoint_p95_ms.items()):
            x.add("cachectl_endpoint_response_time_seconds", _seconds(p95), (endpoint, "0.95"))
    x.add("cachectl_response_time_log_requests", rt.count)
    x.add("cachectl_corrupt_counters", app.corrupt_counters)
    x.add("cachectl_corrupt_log_members", rt.corrupt_members)
    for n in server.nodes:
        node = (n.node,)
        x.add("cachectl_redis_keyspace_hits_total", n.keyspace_hits, node)
        x.add("cachectl_redis_keyspace_misses_total", n.keyspace_misses, node)
        x.add("cachectl_redis_used_memory_bytes", n.used_memory_bytes, node)
        x.add("cachectl_redis_used_memory_peak_bytes", n.used_memory_peak_bytes, node)
        x.add("cachectl_redis_maxmemory_bytes", n.maxmemory_bytes, node)
        x.add("cachectl_redis_mem_fragmentation_ratio", n.fragmentation_ratio, node)
        x.add("cachectl_redis_evicted_keys_total", n.evicted_keys, node)
        x.add("cachectl_redis_expired_keys_total", n.expired_keys, node)
        x.add("cachectl_redis_ops_per_second", n.ops_per_s, node)
        x.add("cachectl_redis_connected_clients", n.connected_clients, node)
        x.add("cachectl_redis_uptime_seconds", n.uptime_seconds, node)
    x.add("cachectl_redis_hit_ratio", server.hit_rate)


def run_succeeded(summary: dict[str, Any]) -> bool:
    """A run finished its whole job: not interrupted, not stopped, nothing failed."""
    if summary.get("interrupted") is True or summary.get("stopped"):
        return False
    failed = summary.get("failed")
    return not (isinstance(failed, (int, float)) and not isinstance(failed, bool) and failed > 0)


def _runs(x: _Families, snapshot: Snapshot) -> None:
    for job, run in sorted(snapshot.runs.items()):
        x.add("cachectl_last_run_timestamp_seconds", run.at_ms / 1000, (job,))
        x.add("cachectl_last_run_duration_seconds", run.duration_seconds, (job,))
        x.add("cachectl_last_run_success", int(run_succeeded(run.summary)), (job,))
        for name, value in sorted(run.summary.items()):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                x.add("cachectl_last_run_count", value, (job, name))


def _refresh(x: _Families, snapshot: Snapshot) -> None:
    r = snapshot.refresh
    x.add("cachectl_refresh_errors_total", snapshot.refresh_errors)
    if r is None:
        return
    x.add("cachectl_refresh_timestamp_seconds", r.finished_at)
    x.add("cachectl_refresh_duration_seconds", r.duration_seconds)
    x.add("cachectl_refresh_keys_scanned", r.keys_scanned)
    x.add("cachectl_refresh_success", int(r.complete))
    if not r.keys_scanned and not r.complete:
        return  # no walk has read anything yet: no figures rather than zeros
    x.add("cachectl_entries", r.entries)
    x.add("cachectl_entries_memory_bytes", r.entry_bytes)
    for endpoint in sorted(r.endpoint_entries):
        x.add("cachectl_endpoint_entries", r.endpoint_entries[endpoint], (endpoint,))
        x.add("cachectl_endpoint_memory_bytes", r.endpoint_bytes.get(endpoint), (endpoint,))
    for kind in sorted(r.bookkeeping_keys):
        x.add("cachectl_bookkeeping_keys", r.bookkeeping_keys[kind], (kind,))
        x.add("cachectl_bookkeeping_memory_bytes", r.bookkeeping_bytes.get(kind), (kind,))
    x.add("cachectl_tag_sets", r.tag_sets)
    x.add("cachectl_dependency_sets", r.dependency_sets)
    x.add("cachectl_index_members_probed", r.members_probed)
    x.add("cachectl_index_members_dangling", r.members_dangling)


class SnapshotCollector(Collector):
    """A custom collector: each collect() takes a fresh snapshot (a scrape)."""

    def __init__(self, take: Any):
        self.take = take

    def collect(self) -> Iterable[Metric]:
        return metric_families(self.take())


class _Fixed(Collector):
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def exposition(families: list[Metric], accept: str | None = None) -> tuple[bytes, str]:
    """The families in the format the Accept header asks for (OpenMetrics when it names it,
    else Prometheus text 0.0.4): (body, content type)."""
    from prometheus_client.exposition import choose_encoder

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


def prometheus_text(snapshot: Snapshot) -> str:
    """The Prometheus text format of one snapshot (for `stats --format prometheus`)."""
    body, _ = exposition(metric_families(snapshot))
    return body.decode("utf-8")
