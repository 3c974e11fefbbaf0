"""People's view of `cachectl check`: every condition, its measured value and its verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cachectl.render.output import plain
from cachectl.render.units import human_bytes, human_duration

if TYPE_CHECKING:
    from cachectl.ops.check import CheckResult, Condition
    from cachectl.render.output import Output


def measured_text(condition: Condition) -> str:
    value = condition.measured
    if value is None:
        return "-"
    if condition.unit == "percent":
        return f"{value:.2f}%"
    if condition.unit == "bytes":
        return human_bytes(value)
    if condition.unit == "per_second":
        return f"{value:,.2f}/s"
    if condition.unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:.2f}"


def render_check(out: Output, result: CheckResult) -> None:
    from rich.table import Table

    over = (
        f"a {human_duration(result.seconds)} live sample"
        if result.source == "sample"
        else f"the last {human_duration(result.seconds)} of history"
    )
    table = Table(title=f"Checked over {over}", title_justify="left", show_edge=False)
    table.add_column("condition")
    table.add_column("measured", justify="right")
    table.add_column("verdict")
    table.add_column("detail", style="dim", overflow="fold")
    styles = {"pass": "green", "fail": "bold red", "no data": "bold red"}
    for c in result.conditions:
        verdict = c.verdict
        shown = f"[{styles[verdict]}]{verdict.upper()}[/]" if out.color else verdict.upper()
        measured = measured_text(c) + (" (lifetime)" if c.lifetime else "")
        table.add_row(plain(c.description), measured, shown, plain(c.detail))
    out.print(table)
    failed = len(result.failed)
    if failed:
        out.print(f"{failed} of {len(result.conditions)} conditions failed")
    else:
        out.print(f"all {len(result.conditions)} conditions hold")


def check_line(result: CheckResult) -> str:
    """One line per round of `check --every`, for logs."""
    from datetime import datetime, timezone

    at = datetime.fromtimestamp(result.checked_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts = [
        f"{c.name}={measured_text(c).replace(' ', '')}{'(lifetime)' if c.lifetime else ''}:"
        f"{c.verdict.upper().replace(' ', '_')}"
        for c in result.conditions
    ]
    return f"{at} {'OK' if result.ok else 'FAILED'} " + " ".join(parts)
