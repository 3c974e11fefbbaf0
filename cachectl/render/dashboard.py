"""The live dashboard of `cachectl stats --every`, drawn from a DashboardState alone.

`render_dashboard(state)` is a pure function: the CLI hands it to rich.live once a tick, and a
test hands it to a recording Console and reads the screen. Off a terminal the dashboard is one
line per tick (`dashboard_line`), or one JSON object per line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cachectl.render.output import plain
from cachectl.render.stats import (
    count,
    endpoint_table,
    memory_text,
    ms,
    num,
    pct,
    slowest_table,
    stats_line,
)
from cachectl.render.units import counted, human_duration

if TYPE_CHECKING:
    from cachectl.ops.stats import DashboardState
    from cachectl.runlog import RecentRun

BARS = "▁▂▃▄▅▆▇█"
ENDPOINT_ROWS = 10


def _clients(n: int | None) -> str:
    return f"{count(n)} clients" if n is None else counted(n, "client")


def sparkline(
    values: list[float], width: int = 40, low: float | None = None, high: float | None = None
) -> str:
    """The last `width` values as block characters scaled between low and high (default: the
    values' own range); empty for no values."""
    shown = values[-width:]
    if not shown:
        return ""
    lo = min(shown) if low is None else low
    hi = max(shown) if high is None else high
    if hi <= lo:
        return BARS[len(BARS) // 2] * len(shown) if low is None else BARS[0] * len(shown)
    top = len(BARS) - 1
    return "".join(BARS[max(0, min(top, round((v - lo) / (hi - lo) * top)))] for v in shown)


def gauge(ratio: float | None, width: int = 30) -> str:
    """A bar filled to `ratio` (0..1) of `width` cells."""
    if ratio is None:
        return "·" * width
    filled = max(0, min(width, round(ratio * width)))
    return "█" * filled + "·" * (width - filled)


def _gauge_style(ratio: float | None) -> str:
    if ratio is None:
        return "dim"
    return "red" if ratio >= 0.9 else "yellow" if ratio >= 0.75 else "green"


def render_dashboard(state: DashboardState):
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    parts = []
    header = Text()
    header.append("cachectl stats --every", style="bold")
    header.append(
        f"  every {num(state.interval_seconds)} s, {state.ticks} ticks, "
        f"up {human_duration(state.ticks * state.interval_seconds)}"
    )
    if state.recording:
        header.append(f"  recording ({state.recorded_points:,} points)", style="cyan")
        if state.unrecorded.count:
            header.append(f"  {state.unrecorded.count:,} ticks not stored", style="bold red")
    parts.append(header)
    if state.record_error and not state.error:
        parts.append(
            Text(f"not stored: {state.record_error} (recording goes on)", style="bold red")
        )
    if state.error:
        parts.append(
            Text(
                f"connection lost: {state.error} (retrying; {state.failed_ticks} "
                "failed ticks; the figures below are from the last good one)",
                style="bold red",
            )
        )
    report = state.report
    if report is None:
        parts.append(Text("waiting for the first sample..." if not state.error else ""))
        return Group(*parts)

    app, server = report.application, report.server
    # The response-time window kept across ticks when there is one, else this tick's members.
    rt = state.response_window or app.response_times
    span = human_duration(rt.window_seconds) if rt.window_seconds else None
    window = f"in the last {span}" if span else ""
    figures = Table.grid(padding=(0, 2))
    figures.add_column(style="bold")
    figures.add_column()
    figures.add_column()
    if app.counters_present:
        figures.add_row(
            "hit rate",
            f"{pct(app.interval_hit_rate)} last interval, "
            f"{pct(state.session.hit_rate)} since start, {pct(app.hit_rate)} lifetime",
            Text(sparkline(state.hit_rates, low=0.0, high=1.0), style="green"),
        )
        figures.add_row(
            "requests",
            f"{num(app.requests_per_s)}/s "
            f"({num(app.hits_per_s)} hits, {num(app.misses_per_s)} misses)",
            "",
        )
    else:
        figures.add_row(
            "app counters", Text("missing: only the server's figures are shown", style="yellow"), ""
        )
    figures.add_row(
        "response",
        f"p50 {ms(rt.p50_ms)}  p95 {ms(rt.p95_ms)}  p99 {ms(rt.p99_ms)}",
        f"{rt.count:,} logged {window}".rstrip(),
    )
    ratio = server.memory_used_ratio
    figures.add_row(
        "memory",
        memory_text(report),
        Text(
            gauge(ratio) if ratio is not None else sparkline(state.memory),
            style=_gauge_style(ratio),
        ),
    )
    figures.add_row(
        "operations", f"{num(server.ops_per_s)}/s", Text(sparkline(state.ops), style="cyan")
    )
    figures.add_row(
        "evictions", f"{num(server.evicted_per_s)}/s", f"expirations {num(server.expired_per_s)}/s"
    )
    figures.add_row(
        "server",
        f"keyspace hit rate {pct(server.interval_hit_rate)}, "
        f"{_clients(server.connected_clients)}, "
        f"fragmentation {num(server.fragmentation_ratio, 2)}",
        f"{len(server.nodes)} node{'s' if len(server.nodes) != 1 else ''}",
    )
    parts.append(Panel(figures, title="now", title_align="left"))

    if state.stored:
        history = Table.grid(padding=(0, 2))
        history.add_column(style="bold")
        history.add_column()
        history.add_column(justify="right")
        for name, values in state.stored.items():
            last = values[-1] if values else None
            history.add_row(plain(name), sparkline(values, width=60), num(last, 3))
        parts.append(Panel(history, title="stored history (1m averages)", title_align="left"))

    if app.endpoints:
        parts.append(
            endpoint_table(
                report,
                limit=ENDPOINT_ROWS,
                p95_ms=state.endpoint_p95_ms,
                p95_label=f"p95, last {span}" if span else None,
            )
        )
    if rt.slowest:
        parts.append(
            slowest_table(report, slowest=rt.slowest, title=f"Slowest requests {window}".rstrip())
        )
    if state.runs:
        runs = Table(title="Recent cachectl runs", title_justify="left", show_edge=False)
        runs.add_column("when", justify="right")
        runs.add_column("what it did", overflow="fold")
        now_ms = report.taken_at * 1000
        for run in state.runs:
            runs.add_row(
                f"{human_duration((now_ms - run.at_ms) / 1000)} ago", plain(run_in_words(run))
            )
        parts.append(runs)
    for warning in [*report.warnings, *state.warnings]:
        parts.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*parts)


def run_in_words(run: RecentRun) -> str:
    """`invalidate tag products: 5 deleted, 12 ms`, `warm manifest.yaml: 1,200 stored, 3 failed,
    4.1 s`: the job, what it worked on, what came of it and how long it took."""
    summary = dict(run.summary)
    selection = summary.pop("selection", None)
    head = f"{run.job} {selection}" if selection else run.job
    outcome = [*_OUTCOMES.get(run.job, _any_outcome)(summary), human_duration(run.duration_seconds)]
    return f"{head}: {', '.join(outcome)}"


def _number(summary: dict, name: str) -> int:
    value = summary.get(name)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _invalidate_outcome(summary: dict) -> list[str]:
    if summary.get("dry_run") is True:
        return [f"dry run, {_number(summary, 'matched'):,} matched"]
    said = [f"{_number(summary, 'deleted'):,} deleted"]
    if _number(summary, "already_gone"):
        said.append(f"{_number(summary, 'already_gone'):,} already gone")
    return said


def _warm_outcome(summary: dict) -> list[str]:
    said = [f"{_number(summary, 'stored'):,} stored"]
    for name in ("failed", "skipped"):
        if _number(summary, name):
            said.append(f"{_number(summary, name):,} {name}")
    if summary.get("interrupted") is True:
        said.append("interrupted")
    elif summary.get("stopped"):
        said.append(f"stopped ({summary['stopped']})")
    return said


def _any_outcome(summary: dict) -> list[str]:
    """A job without words of its own: its non-zero figures and texts, in words."""
    said = []
    for name, value in summary.items():
        words = name.replace("_", " ")
        if isinstance(value, bool):
            if value:
                said.append(words)
        elif isinstance(value, (int, float)):
            if value:
                said.append(f"{value:,} {words}")
        elif value:
            said.append(f"{words}: {value}")
    return said[:4] or ["nothing to do"]


_OUTCOMES = {"invalidate": _invalidate_outcome, "warm": _warm_outcome}


def dashboard_line(state: DashboardState) -> str:
    """The dashboard as one line, for CI logs."""
    if state.error:
        return f"connection lost: {state.error} (retrying; {state.failed_ticks} failed ticks)"
    if state.report is None:
        return "no sample yet"
    line = stats_line(state.report)
    if state.report.application.counters_present:
        line += f" session_hit_rate={pct(state.session.hit_rate)}"
    if state.recording:
        line += f" recorded_points={state.recorded_points}"
        if state.unrecorded.count:
            line += f" unrecorded_ticks={state.unrecorded.count}"
    return line
