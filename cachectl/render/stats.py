"""People's view of `cachectl stats` and its one-line form for logs (Prometheus: render/prometheus.py)."""

from __future__ import annotations

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
