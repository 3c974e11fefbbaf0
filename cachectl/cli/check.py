"""`cachectl check`: thresholds for CI and alerting."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import DurationOption, RoundsOpt


def check(
    ctx: typer.Context,
    json_: JsonOpt = False,
    min_hit_rate: Annotated[
        float | None,
        typer.Option(
            "--min-hit-rate",
            min=0,
            max=100,
            metavar="PERCENT",
            help="Fail below this hit rate, in percent (overall, or of --endpoint).",
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            "-e",
            metavar="NAME",
            help="Apply --min-hit-rate and --max-p95-ms to this endpoint only.",
        ),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(
            "--max-memory",
            metavar="SIZE|P%",
            help="Fail above this used memory: a share of "
            "maxmemory (80%) or a size (2GiB, 500MB, bytes).",
        ),
    ] = None,
    max_evictions_per_s: Annotated[
        float | None,
        typer.Option(
            "--max-evictions-per-s",
            min=0,
            metavar="N",
            help="Fail above this many evictions per second.",
        ),
    ] = None,
    max_p95_ms: Annotated[
        float | None,
        typer.Option(
            "--max-p95-ms",
            metavar="MS",
            help="Fail when the 95th percentile response time is above this many milliseconds.",
        ),
    ] = None,
    fail_on_anomaly: Annotated[
        bool,
        typer.Option(
            "--fail-on-anomaly",
            help="Fail when the latest figures are anomalous "
            "against stored history (z-score beyond --sensitivity).",
        ),
    ] = False,
    sensitivity: Annotated[
        float,
        typer.Option(
            "--sensitivity",
            metavar="SIGMAS",
            help="With --fail-on-anomaly: standard deviations from "
            "the baseline's mean that count as anomalous.",
        ),
    ] = 3.0,
    baseline: Annotated[
        float,
        DurationOption(
            "--baseline",
            help="With --fail-on-anomaly and a live sample: how much "
            "stored history the sample is held against.",
        ),
    ] = "1h",  # type: ignore[assignment] -- the DURATION type reads it
    sample: Annotated[
        float | None,
        DurationOption("--sample", help="Measure over a live sample this long (default 10s)."),
    ] = None,
    allow_lifetime: Annotated[
        bool,
        typer.Option(
            "--allow-lifetime",
            help="When the live sample has no data for a condition (no requests during it), "
            "let the lifetime figure stand in: the counters' lifetime hit rate, the whole "
            "response-time log's p95, evictions over the server's uptime. Said in the "
            "condition's detail (and `lifetime` in --json). Without it such a condition is "
            "NO DATA, a failure.",
        ),
    ] = False,
    window: Annotated[
        float | None,
        DurationOption(
            "--since",
            help="Measure over the stored history since this long ago "
            "(15m, 1h) instead of a live sample.",
        ),
    ] = None,
    every: Annotated[
        float | None,
        DurationOption(
            "--every",
            help="Repeat every DURATION as an alerting loop "
            "(Ctrl-C or SIGTERM stops it; the exit code is the last round's, or 6 when it "
            "holds but some rounds could not reach Redis or some alerts were not delivered).",
        ),
    ] = None,
    rounds: RoundsOpt = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            metavar="URL",
            help="POST a JSON alert to this URL on each breach and each recovery. An alert "
            "not delivered makes the exit 6 (7 when a condition fails: that comes first).",
        ),
    ] = None,
) -> None:
    """Hold the cache to thresholds: print every condition with its measured value and verdict.
    Exit 0 when all hold, 7 when any fails or has no data in its sample or --since stretch (NO DATA;
    see --allow-lifetime), 2 for an impossible threshold."""
    from cachectl.cli.numbers import sane_number_text
    from cachectl.errors import CheckFailed, UsageError
    from cachectl.ops.check import MemoryLimit, Thresholds, check_webhook_url

    thresholds = Thresholds(
        min_hit_rate_pct=min_hit_rate,
        endpoint=endpoint,
        max_memory=MemoryLimit.parse(sane_number_text("--max-memory", max_memory))
        if max_memory is not None
        else None,
        max_evictions_per_s=max_evictions_per_s,
        max_p95_ms=max_p95_ms,
        no_anomaly=fail_on_anomaly,
        anomaly_sensitivity=sensitivity,
        allow_lifetime=allow_lifetime,
    )
    thresholds.validate()
    if sample is not None and window is not None:
        raise UsageError("--sample and --since are two ways to measure: give one")
    if allow_lifetime and window is not None:
        raise UsageError(
            "--allow-lifetime applies to a live sample, not --since: the stored history "
            "has no lifetime figure to stand in"
        )
    window_seconds = window
    sample_seconds = sample if sample is not None else 10.0
    baseline_seconds = baseline
    every_seconds = every
    if rounds is not None and every is None:
        raise UsageError("--rounds needs --every")
    if webhook is not None:
        check_webhook_url(webhook)

    from cachectl.errors import CachectlError
    from cachectl.layout import Layout
    from cachectl.ops.check import (
        UncheckedRounds,
        UndeliveredAlerts,
        check_loop,
        check_once,
        loop_problem,
        unreachable_result,
    )
    from cachectl.render.check import check_line, render_check

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    layout = Layout(app_ctx.settings.layout)
    source, seconds = ("history", window_seconds) if window_seconds else ("sample", sample_seconds)

    def run_round():
        try:
            return check_once(
                app_ctx.store,
                layout,
                thresholds,
                sample_seconds=sample_seconds,
                window_seconds=window_seconds,
                baseline_seconds=baseline_seconds,
            )
        except CachectlError as err:
            if every_seconds is None or err.exit_code != 4:
                raise
            # In the alerting loop an unreachable Redis is a breach to report, not the end.
            return unreachable_result(thresholds, err, source, seconds)

    seen: list = []  # the rounds so far: an interrupted loop's verdict is its last round's
    unchecked = UncheckedRounds()
    undelivered = UndeliveredAlerts()

    def on_round(round_):
        seen[:] = [round_]
        # Said at the start and the end of a run of alerts the webhook did not take.
        delivery = (
            undelivered.post_done(round_.number, round_.webhook_error)
            if round_.event and webhook
            else None
        )
        if every_seconds is None:
            return
        if out.json_mode:
            out.json_line(
                {
                    "round": round_.number,
                    "event": round_.event,
                    "webhook_error": round_.webhook_error,
                    "undelivered_alerts": undelivered.count,
                    **round_.result.to_dict(),
                }
            )
        else:
            out.line(check_line(round_.result) + (f" [{round_.event}]" if round_.event else ""))
        if delivery:
            out.warn(delivery)
        number, error = round_.number, round_.result.error
        notice = unchecked.failed(number, error) if error else unchecked.succeeded(number)
        if notice:  # the start and the end of a run of rounds that could not check
            out.warn(notice)

    from cachectl.signals import sigterm_as_interrupt

    try:
        # A stopped alerting loop (Ctrl-C, or SIGTERM from systemd or a cancelled job) ends
        # with its last round's verdict.
        with sigterm_as_interrupt() if every_seconds else nullcontext():
            last = check_loop(
                run_round,
                every_seconds or 0,
                rounds=1 if every is None else rounds,
                webhook=webhook,
                on_round=on_round,
            )
    except KeyboardInterrupt:
        if every_seconds is None or not seen:
            raise  # nothing was judged: exit 130
        last = seen[-1]
    result = last.result
    # Precedence: a condition that fails (7) over the job's own shortfalls (6: rounds that could
    # not check, alerts the webhook did not take). Undelivered alerts are said either way.
    lost_alerts = undelivered.problem(undelivered.posted)
    if result is not None and not result.ok:
        names = ", ".join(c.description for c in result.failed)
        failure = CheckFailed(f"{len(result.failed)} check condition(s) failed: {names}")
    else:
        failure = loop_problem(
            unchecked.problem(last.number) if every_seconds is not None else None, lost_alerts
        )
    if every_seconds is None:
        if out.json_mode:
            data = {**result.to_dict(), "undelivered_alerts": undelivered.count}
            out.json(data, ok=failure is None, error=failure)
        else:
            render_check(out, result)
    if lost_alerts is not None and isinstance(failure, CheckFailed):
        out.warn(lost_alerts.message)
    if failure is not None:
        out.error(failure, envelope=False)
        raise typer.Exit(failure.exit_code)


def register(app: typer.Typer) -> None:
    app.command("check")(check)
