"""People's view of `cachectl memory`."""

from __future__ import annotations

from cachectl.keytext import safe_text
from cachectl.ops.memory import MemoryReport, sorted_groups
from cachectl.render.output import Output, plain
from cachectl.render.units import counted, human_bytes, human_duration

GROUPS_SHOWN = 25
TTL_LABELS = {
    "no_expiry": "no expiry",
    "under_1m": "< 1 minute",
    "under_1h": "< 1 hour",
    "under_1d": "< 1 day",
    "under_1w": "< 1 week",
    "longer": "1 week or more",
}


def render_memory(out: Output, report: MemoryReport) -> None:
    _summary(out, report)
    n = "~" if report.sampled else ""

    groups = sorted_groups(report.groups)
    # A Text title keeps its own style (the table's title_style is for str titles).
    title = plain(
        "By endpoint" if report.group_by == "endpoint" else f"By key prefix ({report.group_by})",
        style="bold",
    )
    table = _table(
        title,
        ("endpoint" if report.group_by == "endpoint" else "prefix", "left"),
        ("keys", "right"),
        ("memory", "right"),
        ("average", "right"),
        ("largest", "right"),
        ("share", "right"),
    )
    for group in groups[:GROUPS_SHOWN]:
        table.add_row(
            plain(safe_text(group.name)),
            f"{n}{group.keys:,}",
            n + human_bytes(group.total_bytes),
            human_bytes(group.avg_bytes),
            human_bytes(group.max_bytes),
            f"{report.share(group.total_bytes):.1%}",
        )
    if len(groups) > GROUPS_SHOWN:
        rest = groups[GROUPS_SHOWN:]
        table.add_row(
            f"({len(rest)} more)",
            f"{n}{sum(g.keys for g in rest):,}",
            n + human_bytes(sum(g.total_bytes for g in rest)),
            "",
            "",
            f"{report.share(sum(g.total_bytes for g in rest)):.1%}",
            style="dim",
        )
    out.print(table)

    ttl = _table(
        "Entries by time to live",
        ("TTL", "left"),
        ("keys", "right"),
        ("memory", "right"),
        ("share", "right"),
    )
    for bucket in report.ttl_buckets.values():
        ttl.add_row(
            TTL_LABELS[bucket.name],
            f"{n}{bucket.keys:,}",
            n + human_bytes(bucket.total_bytes),
            f"{report.share(bucket.total_bytes):.1%}",
            style="yellow" if bucket.name == "no_expiry" and bucket.keys else None,
        )
    out.print(ttl)

    if report.largest:
        title = "Largest entries" + (" (of the sample)" if report.sampled else "")
        largest = _table(
            title, ("key", "left"), ("memory", "right"), ("ttl", "right"), ("endpoint", "left")
        )
        for entry in report.largest:
            ttl_text = (
                "no expiry" if entry.ttl_seconds is None else human_duration(entry.ttl_seconds)
            )
            largest.add_row(
                plain(entry.key),
                human_bytes(entry.size_bytes),
                ttl_text,
                plain(safe_text(entry.endpoint or "?")),
            )
        out.print(largest)

    if report.overhead:
        overhead = _table(
            "Bookkeeping",
            ("what", "left"),
            ("keys", "right"),
            ("memory", "right"),
            ("largest", "right"),
            ("share", "right"),
        )
        for group in sorted_groups(report.overhead):
            overhead.add_row(
                plain(group.name),
                f"{n}{group.keys:,}",
                n + human_bytes(group.total_bytes),
                human_bytes(group.max_bytes),
                f"{report.share(group.total_bytes):.1%}",
            )
        out.print(overhead)

    if report.no_ttl_examples:
        out.print("[bold]Entries without a TTL[/], for example:")
        for key in report.no_ttl_examples:
            out.print(plain(f"  {key}"))
        out.print()
    if report.unexpected_types:
        out.print(
            "[bold yellow]Keys of an unexpected type[/] (entries are strings, tag and "
            "dependency sets are sets, the logs sorted sets):"
        )
        for name, count in sorted(report.unexpected_types.items()):
            kind, _, type_ = name.partition(":")
            out.print(plain(f"  {n}{count:,} {kind} key(s) of type {type_}"))
        for example in report.unexpected_examples:
            out.print(plain(f"  e.g. {example}"))
        out.print()

    if report.recommendations:
        out.print("[bold]Recommendations[/]")
        for rec in report.recommendations:
            out.print(plain(f"  - {rec.message}"))
    elif report.complete:
        out.print("[green]Nothing to recommend.[/]")


def _summary(out: Output, report: MemoryReport) -> None:
    from rich.markup import escape

    n = "~" if report.sampled else ""
    overhead = sum(g.total_bytes for g in report.overhead.values())
    lines = [
        (
            f"[bold]{n}{human_bytes(report.cache_bytes)}[/] in the cache: "
            f"{n}{counted(report.entries.keys, 'entry')} ({n}{human_bytes(report.entries.total_bytes)}, "
            f"average {human_bytes(report.entries.avg_bytes)}) and {n}{human_bytes(overhead)} "
            "of bookkeeping"
        ),
        f"{n}{report.other_keys:,} other keys outside the cache's prefixes (not sized)",
    ]
    server = []
    if report.used_memory_bytes is not None:
        server.append(f"used_memory {human_bytes(report.used_memory_bytes)}")
        server.append(
            "maxmemory "
            + (human_bytes(report.maxmemory_bytes) if report.maxmemory_bytes else "0 (no limit)")
        )
    if report.maxmemory_policy:
        server.append(f"policy {escape(report.maxmemory_policy)}")
    if server:
        nodes = f" over {len(report.nodes)} primaries" if len(report.nodes) > 1 else ""
        lines.append("server" + nodes + ": " + ", ".join(server))
    if report.sampled:
        lines.append(
            f"[yellow]sampled:[/] {report.keys_scanned:,} of {report.dbsize:,} keys read; counts "
            f"and sums scaled by {report.scale:.1f} (marked ~), largest entries are the sample's"
        )
    if not report.complete:
        # The reason may quote a key or a server's words: text, never markup.
        lines.append(
            f"[bold yellow]incomplete:[/] {report.keys_scanned:,} of {report.dbsize:,} keys "
            f"read before the scan stopped ({escape(safe_text(report.stopped or ''))})"
        )
    if report.read_by == "pipeline":
        lines.append("[dim]scripts not allowed here: sized by pipelining, which is slower[/]")
    for line in lines:
        out.print(line, soft_wrap=True)
    out.print()


def _table(title, *columns: tuple[str, str]):
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, title_style="bold")
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    return table
