"""`cachectl check`: thresholds for CI and alerting."""

from __future__ import annotations

from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context


def check(
    ctx: typer.Context,
    json_: JsonOpt = False,
    min_hit_rate: Annotated[
        float | None, typer.Option("--min-hit-rate", help="Fail below this hit rate, in percent "
                                      "(overall, or of --endpoint).")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Apply --min-hit-rate and "
                                    "--max-p95-ms to this endpoint only.")
    ] = None,
    max_memory: Annotated[
        str | None, typer.Option("--max-memory", help="Fail above this used memory: a share of "
                                    "maxmemory (80%) or a size (2GiB, 500MB, bytes).")
    ] = None,
    max_evictions_per_s: Annotated[
        float | None, typer.Option("--max-evictions-per-s", help="Fail above this many "
                                      "evictions per second.")
    ] = None,
    max_p95_ms: Annotated[
        float | None, typer.Option("--max-p95-ms", help="Fail when the 95th percentile "
                                      "response time is above this many milliseconds.")
    ] = None,
    sample: Annotated[
        str, typer.Option("--sample", help="Measure over a live sample this long (10s, 1m).")
    ] = "10s",
) -> None:
    """Hold the cache to thresholds: print every condition with its measured value and verdict.
    Exit 0 when all hold, 7 when any fails (or cannot be measured), 2 for an impossible
    threshold."""
    from cachectl.cli.stats import duration_option
    from cachectl.errors import CheckFailed
    from cachectl.layout import Layout
    from cachectl.ops.check import MemoryLimit, Thresholds, check_sample
    from cachectl.render.check import render_check

    thresholds = Thresholds(
        min_hit_rate_pct=min_hit_rate,
        endpoint=endpoint,
        max_memory=MemoryLimit.parse(max_memory) if max_memory is not None else None,
        max_evictions_per_s=max_evictions_per_s,
        max_p95_ms=max_p95_ms,
    )
    thresholds.validate()
    sample_seconds = duration_option("--sample", sample)
    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    result = check_sample(app_ctx.store, Layout(app_ctx.settings.layout), thresholds,
                          sample_seconds=sample_seconds)
    failure = None
    if not result.ok:
        names = ", ".join(c.description for c in result.failed)
        failure = CheckFailed(f"{len(result.failed)} check condition(s) failed: {names}")
    if out.json_mode:
        out.json(result.to_dict(), ok=result.ok, error=failure)
    else:
        render_check(out, result)
    if failure is not None:
        out.error(failure, envelope=False)
        raise typer.Exit(failure.exit_code)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
