"""`cachectl stats` (one shot, --format prometheus, --watch dashboard)."""

from __future__ import annotations

from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context


def duration_option(option: str, text: str | None, *, allow_zero: bool = False) -> float | None:
    """A duration option's seconds, or a usage error naming the option."""
    if text is None:
        return None
    from cachectl.durations import parse_duration
    from cachectl.errors import UsageError

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise UsageError(f"{option} must be greater than 0, not {text!r}")
    return seconds


FORMATS = ("text", "json", "prometheus")


def stats(
    ctx: typer.Context,
    json_: JsonOpt = False,
    format_: Annotated[
        str,
        typer.Option("--format", "-f", help="text (default), json (same as --json) or prometheus "
                     "(text exposition for node_exporter's textfile collector)."),
    ] = "text",
    sample: Annotated[
        str,
        typer.Option("--sample", help="Rates are measured over this pause between two samples "
                     "(for example 1s, 10s; 0 for no rates)."),
    ] = "1s",
    window: Annotated[
        str,
        typer.Option("--window", help="Response-time percentiles cover this much of the log "
                     "(the log keeps the last hour)."),
    ] = "5m",
) -> None:
    """The cache's figures: hits, misses and hit rate overall and per endpoint, response-time
    percentiles and the slowest requests, and the server's memory, evictions, operations and
    keyspace hit rate (summed over a cluster's primaries, with per-node detail)."""
    from cachectl.errors import UsageError

    if format_ not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, not {format_!r}")
    json_mode = json_ or format_ == "json"
    if json_mode and format_ == "prometheus":
        raise UsageError("--json and --format prometheus cannot be used together")
    sample_seconds = duration_option("--sample", sample, allow_zero=True)
    window_seconds = duration_option("--window", window)
    from cachectl.layout import Layout
    from cachectl.ops.stats import take_stats
    from cachectl.render.stats import prometheus_text, render_stats

    app_ctx = command_context(ctx, json_mode=json_mode)
    out = app_ctx.output
    report = take_stats(app_ctx.store, Layout(app_ctx.settings.layout),
                        sample_seconds=sample_seconds, log_window_seconds=window_seconds)
    if out.json_mode:
        out.json(report.to_dict())
    elif format_ == "prometheus":
        out.stdout.write(prometheus_text(report))
        out.stdout.flush()
    else:
        render_stats(out, report)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
