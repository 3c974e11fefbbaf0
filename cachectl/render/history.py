"""People's view of `cachectl history`: a series as a chart and a table, the list of series,
what prune and compact did, a line per recorded sample."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING

from cachectl.render.output import plain
from cachectl.render.stats import num
from cachectl.render.units import human_bytes, human_duration

if TYPE_CHECKING:
    from cachectl.ops.history import (
        AnomalyReport,
        CorrelationReport,
        ListResult,
        OutlierReport,
        RecordProgress,
        ShowResult,
    )
    from cachectl.render.output import Output
    from cachectl.timeseries import CompactResult, PruneResult

EIGHTHS = " ▁▂▃▄▅▆▇█"
TABLE_ROWS = 60


def at(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def chart(values: list[float], width: int = 72, height: int = 8) -> list[str]:
    """A column chart of `values` (resampled to `width` columns by averaging), `height` rows
    of eighth blocks, top row first."""
    if not values:
        return []
    columns = min(width, len(values))
    resampled = []
    for c in range(columns):
        part = values[c * len(values) // columns : (c + 1) * len(values) // columns] or [values[-1]]
        resampled.append(sum(part) / len(part))
    lo, hi = min(resampled), max(resampled)
    span = hi - lo
    levels = [(v - lo) / span * height * 8 if span else height * 4 for v in resampled]
    rows = []
    for row in range(height - 1, -1, -1):
        cells = []
        for level in levels:
            filled = level - row * 8
            if filled >= 8:
                cells.append(EIGHTHS[8])
            elif filled > 0:
                cells.append(EIGHTHS[max(1, int(filled))])
            else:
                # The bottom row always shows, so the lowest value is not a gap.
                cells.append(EIGHTHS[1] if row == 0 else " ")
        rows.append("".join(cells))
    return rows


def render_show(out: Output, result: ShowResult) -> None:
    from rich.table import Table

    r = result.range
    title = (
        f"{r.name}: the last {human_duration(result.since_seconds)}, "
        f"{'raw points' if r.resolution == 'raw' else r.resolution + ' buckets'}"
    )
    out.print(plain(title, style="bold"))
    pairs = r.values()
    if not pairs:
        out.print("no data in this range")
        return
    values = [v for _, v in pairs]
    width = max(20, min(100, (out.console.width or 80) - 14))
    rows = chart(values, width=width)
    top, bottom = max(values), min(values)
    for i, line in enumerate(rows):
        label = num(top, 3) if i == 0 else num(bottom, 3) if i == len(rows) - 1 else ""
        out.print(f"{label:>12} {line}", highlight=False)
    out.print(f"{'':>12} {at(pairs[0][0])} .. {at(pairs[-1][0])} UTC", highlight=False)
    out.print(
        f"count {result.count:,}  min {num(result.min, 3)}  max {num(result.max, 3)}  "
        f"avg {num(result.avg, 3)}  last {num(result.last, 3)}"
    )
    table = Table(show_edge=False)
    table.add_column("time (UTC)")
    if r.resolution == "raw":
        table.add_column("value", justify="right")
        table.add_column("tags", overflow="fold")
        shown = r.points[-TABLE_ROWS:]
        for p in shown:
            table.add_row(
                at(p.timestamp_ms), num(p.value, 3), plain("" if p.tags == "{}" else p.tags)
            )
        hidden = len(r.points) - len(shown)
    else:
        for name in ("count", "avg", "min", "max", "first", "last"):
            table.add_column(name, justify="right")
        shown = r.aggregates[-TABLE_ROWS:]
        for a in shown:
            table.add_row(
                at(a.bucket_start_ms),
                f"{a.count:,}",
                num(a.avg, 3),
                num(a.min, 3),
                num(a.max, 3),
                num(a.first, 3),
                num(a.last, 3),
            )
        hidden = len(r.aggregates) - len(shown)
    out.print()
    out.print(table)
    if hidden:
        out.print(f"({hidden} earlier rows not shown; --json has them all)")
    if r.computed:
        which = "the" if r.computed == len(r.aggregates) else f"{r.computed:,} of the"
        out.print(f"({which} buckets computed from raw points: none was stored for them)")
    if r.corrupt:
        out.warn(f"{r.corrupt} stored value(s) could not be read: skipped")


def render_list(out: Output, result: ListResult) -> None:
    from rich.table import Table

    if not result.series:
        out.print("no series stored yet (`cachectl history record` writes them)")
        return
    table = Table(show_edge=False)
    for name, justify in (
        ("series", "left"),
        ("points", "right"),
        ("compacted", "right"),
        ("from (UTC)", "left"),
        ("to (UTC)", "left"),
        ("buckets", "right"),
        ("bucket memory", "right"),
        ("memory", "right"),
    ):
        table.add_column(name, justify=justify, overflow="fold" if name == "series" else None)
    for s in result.series:
        estimate = "~" if s.aggregate_memory_estimated else ""
        table.add_row(
            plain(s.name),
            f"{s.points:,}",
            f"{s.compacted_points:,}",
            at(s.first_ms),
            at(s.last_ms),
            f"{s.aggregate_buckets:,}",
            estimate + human_bytes(s.aggregate_memory_bytes),
            estimate + human_bytes(s.memory_bytes),
        )
    out.print(table)
    data = result.to_dict()
    points_bytes = data["total_memory_bytes"] - data["total_aggregate_memory_bytes"]
    out.print(
        f"{len(result.series)} series, {data['total_points']:,} points, "
        f"{data['total_aggregate_buckets']:,} aggregate buckets; memory "
        f"{'~' if result.aggregate_memory_estimated else ''}"
        f"{human_bytes(data['total_memory_bytes'])}: points and chunks "
        f"{human_bytes(points_bytes)}, aggregate buckets "
        f"{'~' if result.aggregate_memory_estimated else ''}"
        f"{human_bytes(data['total_aggregate_memory_bytes'])}"
    )
    if result.aggregate_memory_estimated:
        out.print(
            "~ estimated: the memory of a sample of each series' buckets, scaled to all of them"
        )


def render_prune(out: Output, result: PruneResult) -> None:
    kept = ", ".join(
        f"{k} {'forever' if v is None else human_duration(v)}"
        for k, v in result.retention_seconds.items()
    )
    out.print(f"retention: {kept}")
    out.print(
        f"removed {result.raw_points_removed:,} raw points, "
        f"{result.compacted_points_removed:,} compacted points "
        f"({result.chunks_removed:,} chunks) and {result.aggregates_removed:,} aggregate "
        f"buckets from {result.series} series"
    )
    if result.corrupt_chunks:
        out.warn(
            f"{result.corrupt_chunks} compacted chunk(s) could not be read and were left as "
            "they are (skipped; each goes once all of its hour is past the retention)"
        )


def render_compact(out: Output, result: CompactResult) -> None:
    out.print(
        f"compacted {result.points_compacted:,} points older than "
        f"{human_duration(result.older_than_seconds)} into {result.chunks_written:,} chunks "
        f"over {result.series} series"
    )
    if result.points_compacted:
        before = result.raw_bytes_before + result.meta_bytes_before
        after = result.raw_bytes_after + result.meta_bytes_after
        out.print(f"memory of those series: {human_bytes(before)} -> {human_bytes(after)}")
    if result.corrupt_members:
        out.warn(
            f"{result.corrupt_members} raw member(s) could not be read and were left as they are"
        )
    if result.corrupt_chunks:
        out.warn(
            f"{result.corrupt_chunks} compacted chunk(s) could not be read: kept aside as "
            "chunk:{window}:unreadable fields, and the hour's new points written beside them"
        )


def record_line(progress: RecordProgress, error: str | None) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if error:
        return f"{now} tick {progress.ticks}: not recorded: {error} (retrying)"
    return f"{now} tick {progress.ticks}: {progress.points:,} points stored so far"


def render_anomalies(out: Output, report: AnomalyReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(
        title=f"Latest value against the {human_duration(report.baseline_seconds)} "
        f"before it ({report.resolution}, |z| > {report.sensitivity:g} is anomalous)",
        title_justify="left",
        show_edge=False,
    )
    for name, justify in (
        ("series", "left"),
        ("latest", "right"),
        ("baseline mean", "right"),
        ("stdev", "right"),
        ("z", "right"),
        ("verdict", "left"),
    ):
        table.add_column(name, justify=justify)
    for s in report.series:
        a = s.anomaly
        if a is None:
            table.add_row(plain(s.name), "-", "-", "-", "-", "no data")
            continue
        if not a.enough_history:
            verdict = f"too little history ({a.baseline_points} points)"
        else:
            verdict = "ANOMALOUS" if a.anomalous else "normal"
        z = (
            "-"
            if a.z_score is None
            else ("inf" if abs(a.z_score) == float("inf") else f"{a.z_score:+.2f}")
        )
        table.add_row(
            plain(s.name),
            num(a.value, 3),
            num(a.baseline_mean, 3),
            num(a.baseline_stdev, 3),
            z,
            f"[bold red]{verdict}[/]" if a.anomalous and out.color else verdict,
        )
    out.print(table)
    found = report.anomalous
    out.print(
        f"{len(found)} anomalous series"
        + (f": {escape(', '.join(s.name for s in found))}" if found else "")
    )


def render_outliers(out: Output, report: OutlierReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    out.print(
        f"{escape(report.name)}: {report.points:,} values over the last "
        f"{human_duration(report.since_seconds)} ({report.resolution})"
    )
    if report.fences is None:
        out.print("too few values for quartiles (4 or more are needed)")
        return
    f = report.fences
    out.print(
        escape(
            f"Q1 {num(f.q1, 3)}, Q3 {num(f.q3, 3)}, IQR {num(f.iqr, 3)}; values outside "
            f"[{num(f.low, 3)}, {num(f.high, 3)}] (k={report.k:g}) are outliers"
        )
    )
    if not report.outliers:
        out.print("no outliers")
        return
    table = Table(show_edge=False)
    table.add_column("time (UTC)")
    table.add_column("value", justify="right")
    table.add_column("side")
    for t, v in report.outliers:
        table.add_row(at(t), num(v, 3), "high" if v > f.high else "low")
    out.print(table)


def render_correlation(out: Output, report: CorrelationReport) -> None:
    from rich.markup import escape

    out.print(
        f"{escape(report.a)} and {escape(report.b)} over the last "
        f"{human_duration(report.since_seconds)}, aligned on {report.resolution} windows: "
        f"{report.pairs} pairs"
    )
    if report.r is None:
        out.print("no correlation can be computed (fewer than 3 aligned windows, or a flat series)")
        return
    out.print(f"r = {report.r:+.3f} ({report.strength})")
