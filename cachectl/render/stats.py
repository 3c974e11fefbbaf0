"""People's view of `cachectl stats`, its one-line form for logs, and the Prometheus text format."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cachectl.render.output import plain
from cachectl.render.units import human_bytes, human_duration

if TYPE_CHECKING:
    from cachectl.ops.stats import StatsReport
    from cachectl.render.output import Output


def pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def count(value: float | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def memory_text(report: StatsReport) -> str:
    server = report.server
    used = human_bytes(server.used_memory_bytes)
    if server.maxmemory_bytes:
        limit = human_bytes(server.maxmemory_bytes)
        ratio = server.memory_used_ratio
        if ratio is not None and ratio > 1:
            # Not "543655%": a maxmemory below what the server holds is said as such.
            times = f"{ratio:,.0f}" if ratio >= 10 else f"{ratio:.1f}"
            return f"{used} of {limit} (over maxmemory, {times}x the limit)"
        return f"{used} of {limit} ({pct(ratio)})"
    return f"{used} (no maxmemory)"


def render_stats(out: Output, report: StatsReport) -> None:
    from rich.table import Table

    app, server = report.application, report.server
    summary = Table(title="Cache", title_justify="left", show_header=False, show_edge=False)
    summary.add_column("what")
    summary.add_column("value")
    if app.counters_present:
        summary.add_row("hits / misses", f"{count(app.hits)} / {count(app.misses)}")
        summary.add_row(
            "hit rate",
            f"{pct(app.hit_rate)} (counters' lifetime), "
            f"{pct(app.interval_hit_rate)} over the last {_interval(report)}",
        )
        summary.add_row("requests", f"{num(app.requests_per_s)}/s")
    else:
        summary.add_row("counters", "[yellow]missing[/]")
    rt = app.response_times
    summary.add_row(
        "response times",
        f"p50 {ms(rt.p50_ms)}, p95 {ms(rt.p95_ms)}, p99 {ms(rt.p99_ms)} "
        f"({rt.count:,} requests{_window(rt.window_seconds)})",
    )
    out.print(summary)

    if app.endpoints:
        out.print()
        out.print(endpoint_table(report))
    if rt.slowest:
        out.print()
        out.print(slowest_table(report))

    out.print()
    srv = Table(title="Server", title_justify="left", show_header=False, show_edge=False)
    srv.add_column("what")
    srv.add_column("value")
    srv.add_row(
        "keyspace hit rate",
        f"{pct(server.hit_rate)} ({count(server.keyspace_hits)} hits, "
        f"{count(server.keyspace_misses)} misses)",
    )
    srv.add_row(
        "memory", f"{memory_text(report)}, peak {human_bytes(server.used_memory_peak_bytes)}"
    )
    srv.add_row("fragmentation", num(server.fragmentation_ratio, 2))
    srv.add_row("evicted keys", f"{count(server.evicted_keys)} ({num(server.evicted_per_s)}/s)")
    srv.add_row("expired keys", f"{count(server.expired_keys)} ({num(server.expired_per_s)}/s)")
    srv.add_row("operations", f"{num(server.ops_per_s)}/s")
    srv.add_row("clients", count(server.connected_clients))
    srv.add_row("uptime", human_duration(server.uptime_seconds))
    out.print(srv)
    if len(server.nodes) > 1:
        out.print()
        out.print(node_table(report))
    for warning in report.warnings:
        out.warn(warning)


def _interval(report: StatsReport) -> str:
    return "-" if report.interval_seconds is None else human_duration(report.interval_seconds)


def _window(seconds: float | None) -> str:
    return f" in the last {human_duration(seconds)}" if seconds else ""


def endpoint_table(
    report: StatsReport,
    limit: int | None = None,
    p95_ms: dict[str, float | None] | None = None,
    p95_label: str | None = None,
):
    """The endpoints by traffic. `p95_ms` (by endpoint) replaces the report's own p95s: the
    dashboard's are over its response-time window, named by `p95_label`."""
    from rich.table import Table

    table = Table(title="Endpoints by traffic", title_justify="left", show_edge=False)
    for name, justify in (
        ("endpoint", "left"),
        ("req/s", "right"),
        ("hit rate", "right"),
        ("interval", "right"),
        ("hits", "right"),
        ("misses", "right"),
        (p95_label or "p95", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold" if name == "endpoint" else None)
    endpoints = report.application.endpoints
    for e in endpoints[:limit] if limit else endpoints:
        p95 = e.p95_ms if p95_ms is None else p95_ms.get(e.endpoint)
        table.add_row(
            plain(e.endpoint),
            num(e.requests_per_s),
            pct(e.hit_rate),
            pct(e.interval_hit_rate),
            count(e.hits),
            count(e.misses),
            ms(p95),
        )
    if limit and len(endpoints) > limit:
        table.caption = f"{len(endpoints) - limit} more endpoints"
    return table


def slowest_table(
    report: StatsReport, slowest: list | None = None, title: str = "Slowest requests"
):
    from rich.table import Table

    # As wide as its title at least, so a title naming the window never wraps.
    table = Table(title=title, title_justify="left", show_edge=False, min_width=len(title))
    table.add_column("time", justify="right")
    table.add_column("endpoint")
    table.add_column("hit")
    table.add_column("key", overflow="ellipsis", no_wrap=True, max_width=60)
    for r in report.application.response_times.slowest if slowest is None else slowest:
        hit = "-" if r.hit is None else ("hit" if r.hit else "miss")
        table.add_row(ms(r.response_time_ms), plain(r.endpoint), hit, plain(r.key or ""))
    return table


def node_table(report: StatsReport):
    from rich.table import Table

    table = Table(title="Nodes", title_justify="left", show_edge=False)
    for name in ("node", "memory", "hit rate", "ops/s", "evicted/s", "clients", "uptime"):
        table.add_column(name, justify="left" if name == "node" else "right")
    for n in report.server.nodes:
        node = plain(n.node)
        if n.restarted:
            node.append(" (restarted)", style="yellow")
        table.add_row(
            node,
            human_bytes(n.used_memory_bytes),
            pct(n.hit_rate),
            num(n.ops_per_s),
            num(n.evicted_per_s),
            count(n.connected_clients),
            human_duration(n.uptime_seconds),
        )
    return table


def stats_line(report: StatsReport) -> str:
    """One line per sample for logs and CI: the figures that move."""
    from datetime import datetime, timezone

    app, server, rt = report.application, report.server, report.application.response_times
    at = datetime.fromtimestamp(report.taken_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [at]
    if app.counters_present:
        parts.append(f"hit_rate={pct(app.interval_hit_rate)}")
        parts.append(f"req/s={num(app.requests_per_s)}")
    else:
        parts.append("app_counters=missing")
    parts += [
        f"p95={ms(rt.p95_ms)}",
        f"memory={memory_text(report)}",
        f"ops/s={num(server.ops_per_s)}",
        f"evicted/s={num(server.evicted_per_s)}",
        f"expired/s={num(server.expired_per_s)}",
    ]
    return " ".join(parts)


# -- Prometheus ------------------------------------------------------------------------------


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _prom_value(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Exposition:
    """Samples grouped by metric family: the exposition format wants every sample of a family
    right after its one HELP and TYPE, whatever order they were added in (per endpoint, per
    node)."""

    def __init__(self) -> None:
        self._families: dict[str, list[str]] = {}

    @property
    def lines(self) -> list[str]:
        return [line for family in self._families.values() for line in family]

    def add(
        self,
        name: str,
        kind: str,
        help_text: str,
        value: float | None,
        labels: dict[str, str] | None = None,
    ) -> None:
        if value is None:
            return
        family = self._families.get(name)
        if family is None:
            family = self._families[name] = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        label_text = ""
        if labels:
            label_text = (
                "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"
            )
        family.append(f"{name}{label_text} {_prom_value(value)}")


def prometheus_text(report: StatsReport) -> str:
    """The report in Prometheus' text exposition format (for node_exporter's textfile
    collector): counters as *_total, ratios in 0..1, sizes in bytes, times in seconds."""
    x = _Exposition()
    app, server, rt = report.application, report.server, report.application.response_times
    x.add(
        "cachectl_app_counters_present",
        "gauge",
        "1 when the applications' hit and miss counters exist",
        int(app.counters_present),
    )
    x.add("cachectl_app_hits_total", "counter", "Cache hits counted by the applications", app.hits)
    x.add(
        "cachectl_app_misses_total",
        "counter",
        "Cache misses counted by the applications",
        app.misses,
    )
    x.add(
        "cachectl_app_hit_ratio",
        "gauge",
        "Hits over hits and misses, lifetime of the counters",
        app.hit_rate,
    )
    for e in app.endpoints:
        labels = {"endpoint": e.endpoint}
        x.add("cachectl_endpoint_hits_total", "counter", "Cache hits per endpoint", e.hits, labels)
        x.add(
            "cachectl_endpoint_misses_total",
            "counter",
            "Cache misses per endpoint",
            e.misses,
            labels,
        )
    for quantile, value in (("0.5", rt.p50_ms), ("0.95", rt.p95_ms), ("0.99", rt.p99_ms)):
        x.add(
            "cachectl_response_time_seconds",
            "gauge",
            "Response-time quantiles from the applications' log",
            None if value is None else value / 1000,
            {"quantile": quantile},
        )
    x.add(
        "cachectl_response_time_log_requests",
        "gauge",
        "Requests in the response-time log window",
        rt.count,
    )
    x.add(
        "cachectl_corrupt_counters",
        "gauge",
        "Counter values that are not whole numbers",
        app.corrupt_counters,
    )
    x.add(
        "cachectl_corrupt_log_members",
        "gauge",
        "Response-time log members that could not be read",
        rt.corrupt_members,
    )
    for n in server.nodes:
        labels = {"node": n.node}
        x.add(
            "cachectl_redis_keyspace_hits_total",
            "counter",
            "Server keyspace hits",
            n.keyspace_hits,
            labels,
        )
        x.add(
            "cachectl_redis_keyspace_misses_total",
            "counter",
            "Server keyspace misses",
            n.keyspace_misses,
            labels,
        )
        x.add(
            "cachectl_redis_used_memory_bytes", "gauge", "Memory used", n.used_memory_bytes, labels
        )
        x.add(
            "cachectl_redis_used_memory_peak_bytes",
            "gauge",
            "Peak memory used",
            n.used_memory_peak_bytes,
            labels,
        )
        x.add(
            "cachectl_redis_maxmemory_bytes",
            "gauge",
            "maxmemory (0: no limit)",
            n.maxmemory_bytes,
            labels,
        )
        x.add(
            "cachectl_redis_mem_fragmentation_ratio",
            "gauge",
            "RSS over used memory",
            n.fragmentation_ratio,
            labels,
        )
        x.add(
            "cachectl_redis_evicted_keys_total", "counter", "Keys evicted", n.evicted_keys, labels
        )
        x.add(
            "cachectl_redis_expired_keys_total", "counter", "Keys expired", n.expired_keys, labels
        )
        x.add("cachectl_redis_ops_per_second", "gauge", "Commands per second", n.ops_per_s, labels)
        x.add(
            "cachectl_redis_connected_clients",
            "gauge",
            "Connected clients",
            n.connected_clients,
            labels,
        )
        x.add(
            "cachectl_redis_uptime_seconds",
            "gauge",
            "Seconds since the server started",
            n.uptime_seconds,
            labels,
        )
    x.add(
        "cachectl_redis_hit_ratio",
        "gauge",
        "Keyspace hits over lookups since each server started (INFO), all primaries; every "
        "client's lookups are counted, cachectl's own included",
        server.hit_rate,
    )
    return "\n".join(x.lines) + "\n"
