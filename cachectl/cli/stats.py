"""`cachectl stats` (one shot, --format prometheus, --every dashboard)."""

from __future__ import annotations

from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import ChoiceOption, DurationOption, ReplicaOpt, RoundsOpt

FORMATS = ("text", "prometheus")


def stats(
    ctx: typer.Context,
    json_: JsonOpt = False,
    format_: Annotated[
        str,
        ChoiceOption(
            "--format",
            choices=FORMATS,
            hints={"json": "--json"},
            help="text, or prometheus (text exposition for node_exporter's textfile collector).",
        ),
    ] = "text",
    sample: Annotated[
        float,
        DurationOption(
            "--sample",
            allow_zero=True,
            help="Rates are measured over this pause between two samples "
            "(for example 1s, 10s; 0 for no rates).",
        ),
    ] = "1s",  # type: ignore[assignment] -- the DURATION type reads it
    window: Annotated[
        float,
        DurationOption(
            "--since",
            help="Response-time percentiles and the slowest requests cover "
            "the log since this long ago (the log keeps the last hour); with --every the "
            "dashboard keeps this much from round to round.",
        ),
    ] = "5m",  # type: ignore[assignment]
    every: Annotated[
        float | None,
        DurationOption(
            "--every",
            help="A live dashboard updated every DURATION (one line per round off a "
            "terminal; one JSON object per line with --json). Ctrl-C or SIGTERM "
            "leaves (exit 0).",
        ),
    ] = None,
    discover_every: Annotated[
        int,
        typer.Option(
            "--discover-every",
            min=1,
            metavar="N",
            help="With --every: look for new endpoints (one SCAN "
            "of the metrics prefix) every N rounds.",
        ),
    ] = 60,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="With --every: also store each sample as history "
            "(as `cachectl history record` does; exit 6 if any round was not stored).",
        ),
    ] = False,
    rounds: RoundsOpt = None,
    replica: ReplicaOpt = False,
) -> None:
    """The cache's figures: hits, misses and hit rate overall and per endpoint, response-time
    percentiles and the slowest requests, and the server's memory, evictions, operations and
    keyspace hit rate (summed over a cluster's primaries, with per-node detail)."""
    from cachectl.errors import UsageError

    if json_ and format_ == "prometheus":
        raise UsageError("--json and --format prometheus cannot be used together")
    if record and replica:
        raise UsageError("--record writes history, which a replica refuses: drop --replica")
    if every is not None:
        if format_ == "prometheus":
            raise UsageError("--format prometheus is a one-shot format; drop --every")
        app_ctx = command_context(ctx, json_mode=json_)
        app_ctx.replica = replica
        _watch(
            app_ctx,
            interval=every,
            record=record,
            discover_every=discover_every,
            window_seconds=window,
            ticks=rounds,
        )
        return

    if record:
        raise UsageError("--record needs --every (or use `cachectl history record`)")
    # Only options given (not their defaults) are refused. Compared by name: the enum's class
    # lives in whichever click Typer brings (recent Typers carry their own copy).
    given = [
        option
        for option, param in (("--rounds", "rounds"), ("--discover-every", "discover_every"))
        if getattr(ctx.get_parameter_source(param), "name", "DEFAULT") != "DEFAULT"
    ]
    if given:
        several = len(given) > 1
        raise UsageError(
            f"{' and '.join(given)} only appl{'y' if several else 'ies'} with "
            f"--every: add --every DURATION, or drop {'them' if several else 'it'}"
        )

    from cachectl.layout import Layout
    from cachectl.ops.stats import take_stats
    from cachectl.render.stats import render_stats

    app_ctx = command_context(ctx, json_mode=json_)
    app_ctx.replica = replica
    out = app_ctx.output
    report = take_stats(
        app_ctx.store,
        Layout(app_ctx.settings.layout),
        sample_seconds=sample,
        log_window_seconds=window,
    )
    if out.json_mode:
        out.json(report.to_dict())
    elif format_ == "prometheus":
        # The exporter's own collectors (prometheus-client), so the names never differ.
        from cachectl.ops.exporter import Snapshot
        from cachectl.render.prometheus import prometheus_text

        out.stdout.write(prometheus_text(Snapshot.of_report(report)))
        out.stdout.flush()
    else:
        render_stats(out, report)


def _watch(
    app_ctx,
    *,
    interval: float,
    record: bool,
    discover_every: int,
    window_seconds: float,
    ticks: int | None,
) -> None:
    """The dashboard loop: rich.live on a terminal, a line (or JSON object) per tick elsewhere.
    Ctrl-C leaves with exit 0: stopping the watch is how it is meant to end."""
    import time

    from cachectl.layout import Layout
    from cachectl.ops.history import Recorder, dashboard_tick
    from cachectl.ops.stats import DashboardState, Sampler, watch
    from cachectl.render.dashboard import dashboard_line, render_dashboard
    from cachectl.signals import sigterm_as_interrupt
    from cachectl.timeseries import DEFAULT_COMPACT_AFTER_SECONDS, TimeSeries

    out = app_ctx.output
    layout = Layout(app_ctx.settings.layout)
    sampler = Sampler(
        app_ctx.store, layout, discover_every=discover_every, log_window_seconds=window_seconds
    )
    series = TimeSeries(app_ctx.store, layout, on_lookups=sampler.count_own)
    recorder = Recorder(series, compact_after=DEFAULT_COMPACT_AFTER_SECONDS) if record else None
    # The percentiles and slowest requests cover the last --since, kept across rounds.
    state = DashboardState(
        started_at=time.time(),
        interval_seconds=interval,
        recording=record,
        log_window_seconds=window_seconds,
    )
    frames = watch(sampler, interval, max_ticks=ticks)
    try:
        with sigterm_as_interrupt():  # SIGTERM (a cancelled job) leaves like Ctrl-C: exit 0
            if out.live:
                from rich.live import Live

                # Drawn once a tick and never in between: the dashboard's CPU stays near zero.
                with Live(
                    render_dashboard(state),
                    console=out.console,
                    auto_refresh=False,
                    redirect_stdout=False,
                    redirect_stderr=False,
                ) as live:
                    for tick in frames:
                        dashboard_tick(state, tick, series, recorder)
                        live.update(render_dashboard(state), refresh=True)
            else:
                for tick in frames:
                    dashboard_tick(state, tick, series, recorder)
                    if out.json_mode:
                        out.json_line(state.to_dict())  # its `warnings`: this tick's new ones
                    else:
                        for warning in state.fresh_warnings:
                            out.warn(warning)
                        out.line(dashboard_line(state))
                    if state.notice:  # a run of unrecorded ticks began or ended
                        out.warn(state.notice)
    except KeyboardInterrupt:
        pass
    # With --record the job is the history: ticks not stored make it a partial failure.
    problem = state.unrecorded.problem(state.ticks) if record else None
    if problem is not None:
        out.error(problem, envelope=False)
        raise typer.Exit(problem.exit_code)


def register(app: typer.Typer) -> None:
    app.command("stats")(stats)
