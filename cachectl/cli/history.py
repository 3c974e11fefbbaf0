"""`cachectl history ...`: record, show, list, prune, compact (and the analyses)."""

from __future__ import annotations

from typing import Annotated

import typer

from cachectl.cli.context import DryRunOpt, JsonOpt, command_context
from cachectl.cli.options import ChoiceOption, DurationOption

history_app = typer.Typer(
    name="history",
    help="The cache's figures as time series in Redis (metric:, meta:, agg: keys): record them, "
    "read them back, keep them in bounds, look for anomalies.",
    no_args_is_help=True,
)

RetentionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--retention",
        metavar="RESOLUTION=DURATION",
        help="RESOLUTION=DURATION, repeatable: raw=24h, 1m=7d, 5m=30d, "
        "1h=90d, 1d=365d by default; `forever` keeps a resolution for good.",
    ),
]
CompactAfterOpt = Annotated[
    float,
    DurationOption(
        "--compact-after",
        help="Raw points older than this are compacted into chunks (whole hours).",
    ),
]
RESOLUTIONS = ("raw", "1m", "5m", "1h", "1d")  # layout.AGG_RESOLUTIONS and raw, kept light


def ResolutionOpt(help: str) -> typer.models.OptionInfo:
    return ChoiceOption("--resolution", "-r", choices=RESOLUTIONS, help=help)


def time_series(app_ctx, retention: list[str] | None = None, on_lookups=None):
    from cachectl.durations import parse_duration
    from cachectl.layout import Layout
    from cachectl.timeseries import TimeSeries, parse_retention

    return TimeSeries(
        app_ctx.store,
        Layout(app_ctx.settings.layout),
        retention=parse_retention(retention or [], parse_duration),
        on_lookups=on_lookups,
    )


@history_app.command("record")
def record(
    ctx: typer.Context,
    json_: JsonOpt = False,
    every: Annotated[float, DurationOption("--every", help="Sample this often (10s, 1m).")] = "10s",  # type: ignore[assignment] -- the DURATION type reads it
    rounds: Annotated[
        int | None, typer.Option("--rounds", min=1, metavar="N", help="Stop after N samples.")
    ] = None,
    retention: RetentionOpt = None,
    compact_after: CompactAfterOpt = "1h",  # type: ignore[assignment]
    discover_every: Annotated[
        int,
        typer.Option(
            "--discover-every", min=1, metavar="N", help="Look for new endpoints every N samples."
        ),
    ] = 60,
) -> None:
    """Sample the cache's and the server's figures until stopped (Ctrl-C or SIGTERM) and store
    them as time series with 1m/5m/1h/1d aggregates. Compaction and retention run at the start
    and every hour. One line per sample (one JSON object per line with --json). A tick that
    cannot be stored is counted and the run goes on; the first of a run of them is said on
    stderr. Exit 0 when every tick was stored, 6 when any was not."""
    from cachectl.layout import Layout
    from cachectl.ops.history import Recorder
    from cachectl.ops.history import record as run_record
    from cachectl.ops.stats import Sampler
    from cachectl.render.history import record_line
    from cachectl.signals import sigterm_as_interrupt

    every_seconds = every
    compact_seconds = compact_after
    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    sampler = Sampler(
        app_ctx.store,
        Layout(app_ctx.settings.layout),
        discover_every=discover_every,
        log_window_seconds=every_seconds,
    )
    series = time_series(app_ctx, retention, on_lookups=sampler.count_own)
    recorder = Recorder(series, compact_after=compact_seconds)

    seen: list = []  # the progress so far: a stopped run's failed ticks still count

    def on_tick(tick, progress):
        seen[:] = [progress]
        error = tick.error.message if tick.error else None
        if out.json_mode:
            out.json_line(
                {
                    "tick": progress.ticks,
                    "points": progress.points,
                    "failed_ticks": progress.failed_ticks,
                    "error": error,
                    "taken_at": tick.report.taken_at if tick.report else None,
                    "warnings": progress.new_warnings,
                }
            )
        else:
            for warning in progress.new_warnings:  # each said once
                out.warn(warning)
            out.line(record_line(progress, error))
        if progress.notice:  # the start and the end of a run of failed ticks, not each one
            out.warn(progress.notice)

    try:
        with sigterm_as_interrupt():  # SIGTERM (systemd, a cancelled job) stops it like Ctrl-C
            run_record(sampler, recorder, every_seconds, ticks=rounds, on_tick=on_tick)
    except KeyboardInterrupt:
        pass
    problem = seen[0].problem() if seen else None
    if problem is not None:
        out.error(problem, envelope=False)
        raise typer.Exit(problem.exit_code)


@history_app.command("add")
def add(
    ctx: typer.Context,
    series: Annotated[
        str,
        typer.Argument(
            metavar="SERIES", help="The series, e.g. deploy.seconds; `-` reads points from stdin."
        ),
    ],
    value: Annotated[
        str | None,
        typer.Argument(metavar="[VALUE]", help="The value (a number). Not with `-`."),
    ] = None,
    json_: JsonOpt = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="TIME",
            help="The point's time: epoch seconds or ISO 8601 (default: now). Not with `-`.",
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label",
            metavar="NAME=VALUE",
            help="Kept in the point's tags (the layout's `tags` field), repeatable.",
        ),
    ] = None,
    dry_run: DryRunOpt = False,
) -> None:
    """Add points to a series, with its 1m/5m/1h/1d buckets, as `record` stores its own: one
    from the arguments, or with `-` a batch of `series value [time]` lines from stdin (at most
    100,000; blank lines and # comments skipped). Every point is checked before any is written:
    a bad line is one error naming its line number, exit 3, and nothing written."""
    from cachectl.errors import UsageError
    from cachectl.ops import history_add

    app_ctx = command_context(ctx, json_mode=json_)  # a bad line is then a JSON error too
    now_ms = history_add.now_ms()
    tags = history_add.parse_tags(label or [])
    result = history_add.AddResult(dry_run=dry_run)
    if series == "-":
        if value is not None or at is not None:
            raise UsageError("with `-` each stdin line has its own value and time: give neither")
        import sys

        result.points = history_add.read_lines(sys.stdin, tags, now_ms)
    else:
        if value is None:
            raise UsageError("give the value: cachectl history add SERIES VALUE")
        result.points = [history_add.one_point(series, value, at, tags, now_ms)]
    if not dry_run and result.points:
        history_add.write(time_series(app_ctx), result)
    out = app_ctx.output
    if out.json_mode:
        out.json(result.to_dict())
    else:
        n, names = len(result.points), result.series
        what = f"{n:,} point{'s' if n != 1 else ''} to {len(names)} series ({', '.join(names)})"
        out.line(f"dry run: {what} checked; nothing written" if dry_run else f"added {what}")


@history_app.command("show")
def show(
    ctx: typer.Context,
    metric: Annotated[
        str, typer.Argument(metavar="METRIC", help="The series, e.g. cache.hit_ratio.")
    ],
    json_: JsonOpt = False,
    since: Annotated[float, DurationOption("--since", help="How far back (15m, 6h, 7d).")] = "1h",  # type: ignore[assignment] -- the DURATION type reads it
    resolution: Annotated[
        str | None, ResolutionOpt("The buckets shown (default: chosen from --since).")
    ] = None,
) -> None:
    """One series over a time range: a chart and a table (raw points or aggregate buckets)."""
    from cachectl.ops.history import check_resolution
    from cachectl.ops.history import show as show_series
    from cachectl.render.history import render_show

    since_seconds = since
    check_resolution(resolution)
    app_ctx = command_context(ctx, json_mode=json_)
    result = show_series(time_series(app_ctx), metric, since_seconds, resolution)
    if app_ctx.output.json_mode:
        app_ctx.output.json(result.to_dict())
    else:
        render_show(app_ctx.output, result)


@history_app.command("list")
def list_(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Every stored series: points (raw and compacted), time range, aggregate buckets, memory
    (the buckets' from a sample of them on a series with many)."""
    from cachectl.ops.history import list_series
    from cachectl.render.history import render_list

    app_ctx = command_context(ctx, json_mode=json_)
    result = list_series(time_series(app_ctx))
    if app_ctx.output.json_mode:
        app_ctx.output.json(result.to_dict())
    else:
        render_list(app_ctx.output, result)


@history_app.command("prune")
def prune(ctx: typer.Context, json_: JsonOpt = False, retention: RetentionOpt = None) -> None:
    """Apply the retention: delete raw points, chunks and aggregate buckets older than their
    resolution keeps them. Only cachectl's time-series keys are touched."""
    from cachectl.render.history import render_prune

    app_ctx = command_context(ctx, json_mode=json_)
    result = time_series(app_ctx, retention).prune()
    if app_ctx.output.json_mode:
        app_ctx.output.json(result.to_dict())
    else:
        render_prune(app_ctx.output, result)


@history_app.command("compact")
def compact(
    ctx: typer.Context,
    json_: JsonOpt = False,
    older_than: CompactAfterOpt = "1h",  # type: ignore[assignment] -- the DURATION type reads it
) -> None:
    """Compact raw points older than --compact-after into delta-encoded chunks; reads return
    them as before."""
    from cachectl.render.history import render_compact

    seconds = older_than
    app_ctx = command_context(ctx, json_mode=json_)
    result = time_series(app_ctx).compact(seconds)
    if app_ctx.output.json_mode:
        app_ctx.output.json(result.to_dict())
    else:
        render_compact(app_ctx.output, result)


@history_app.command("anomalies")
def anomalies(
    ctx: typer.Context,
    metrics: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[METRIC]...",
            help="Series to judge (default: hit "
            "ratio, requests, p95, memory, operations, evictions).",
        ),
    ] = None,
    json_: JsonOpt = False,
    baseline: Annotated[
        float,
        DurationOption("--baseline", help="The window before the latest value it is held against."),
    ] = "1h",  # type: ignore[assignment] -- the DURATION type reads it
    resolution: Annotated[str, ResolutionOpt("The buckets judged.")] = "raw",
    sensitivity: Annotated[
        float,
        typer.Option(
            "--sensitivity",
            metavar="SIGMAS",
            help="Standard deviations from the baseline's mean that count as anomalous.",
        ),
    ] = 3.0,
) -> None:
    """Each series' latest value against its baseline window by z-score."""
    from cachectl.ops.history import anomalies as find_anomalies
    from cachectl.render.history import render_anomalies

    baseline_seconds = baseline
    app_ctx = command_context(ctx, json_mode=json_)
    report = find_anomalies(
        time_series(app_ctx),
        metrics,
        baseline_seconds=baseline_seconds,
        resolution=resolution,
        sensitivity=sensitivity,
    )
    if app_ctx.output.json_mode:
        app_ctx.output.json(report.to_dict())
    else:
        render_anomalies(app_ctx.output, report)


@history_app.command("outliers")
def outliers(
    ctx: typer.Context,
    metric: Annotated[str, typer.Argument(metavar="METRIC", help="The series.")],
    json_: JsonOpt = False,
    since: Annotated[float, DurationOption("--since", help="How far back.")] = "6h",  # type: ignore[assignment] -- the DURATION type reads it
    resolution: Annotated[
        str | None, ResolutionOpt("The buckets judged (default: chosen from --since).")
    ] = None,
    k: Annotated[
        float, typer.Option("--k", metavar="K", help="Fences at Q1 - k*IQR and Q3 + k*IQR.")
    ] = 1.5,
) -> None:
    """Values outside the interquartile-range fences (Tukey's)."""
    from cachectl.ops.history import outliers as find_outliers
    from cachectl.render.history import render_outliers

    since_seconds = since
    app_ctx = command_context(ctx, json_mode=json_)
    report = find_outliers(time_series(app_ctx), metric, since_seconds, resolution=resolution, k=k)
    if app_ctx.output.json_mode:
        app_ctx.output.json(report.to_dict())
    else:
        render_outliers(app_ctx.output, report)


@history_app.command("correlate")
def correlate(
    ctx: typer.Context,
    metric_a: Annotated[str, typer.Argument(metavar="METRIC_A", help="The first series.")],
    metric_b: Annotated[str, typer.Argument(metavar="METRIC_B", help="The second series.")],
    json_: JsonOpt = False,
    since: Annotated[float, DurationOption("--since", help="How far back.")] = "6h",  # type: ignore[assignment] -- the DURATION type reads it
    resolution: Annotated[
        str, ResolutionOpt("The windows the two series are aligned on (raw: 1 s).")
    ] = "1m",
) -> None:
    """Pearson's correlation of two series over aligned windows."""
    from cachectl.ops.history import correlate as find_correlation
    from cachectl.render.history import render_correlation

    since_seconds = since
    app_ctx = command_context(ctx, json_mode=json_)
    report = find_correlation(
        time_series(app_ctx), metric_a, metric_b, since_seconds, resolution=resolution
    )
    if app_ctx.output.json_mode:
        app_ctx.output.json(report.to_dict())
    else:
        render_correlation(app_ctx.output, report)


def register(app: typer.Typer) -> None:
    app.add_typer(history_app, name="history")
