"""`cachectl warm FILE...`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cachectl.cli.context import DryRunOpt, JsonOpt, command_context
from cachectl.cli.options import DurationOption, EndpointOpt, RoundsOpt


def warm(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILE...", help="Warm manifests (YAML, version: 1).", show_default=False
        ),
    ],
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            min=1,
            metavar="N",
            max=1000,  # manifest.MAX_CONCURRENCY: connections held open at once
            help="Requests in flight at once (default: the "
            "manifests' defaults.concurrency, else 10).",
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            max=1_000_000,  # manifest.MAX_RATE
            metavar="REQ_PER_S",
            help="Cap on requests per second "
            "over the whole run (default: the manifests' defaults.rate, else none).",
        ),
    ] = None,
    only_missing: Annotated[
        bool, typer.Option("--only-missing", help="Skip entries that are already cached.")
    ] = False,
    refresh_below: Annotated[
        float | None,
        DurationOption(
            "--refresh-below",
            help="Only entries missing or whose TTL "
            "is below this (90, 10m, 1h...): refresh ahead of expiry.",
        ),
    ] = None,
    endpoint: EndpointOpt = None,
    dry_run: DryRunOpt = False,
    every: Annotated[
        float | None,
        DurationOption(
            "--every",
            help="Repeat every DURATION (30s, 10m...) until stopped, with a report per round. "
            "A failed round does not end the loop; the loop then exits 6, naming how many failed.",
        ),
    ] = None,
    rounds: RoundsOpt = None,
    from_access_log: Annotated[
        bool,
        typer.Option(
            "--from-access-log",
            help="Warm the most recently hit entries of the "
            "manifests' endpoints, read from the access log (see --top).",
        ),
    ] = False,
    top: Annotated[
        int | None,
        typer.Option(
            "--top",
            min=1,
            metavar="N",
            help="With --from-access-log: how many entries (default 100).",
        ),
    ] = None,
    max_failures: Annotated[
        str,
        typer.Option(
            "--max-failures",
            metavar="N|P%",
            help="Failed requests tolerated before the "
            "exit code says partial failure (6): a count or a percentage.",
        ),
    ] = "0",
    max_response_bytes: Annotated[
        str | None,
        typer.Option(
            "--max-response-bytes",
            metavar="SIZE",
            help="Largest answer stored (8MiB, 512KiB, bytes), over every endpoint's "
            "max_response_bytes (default: theirs, else 8MiB). A bigger answer fails as too_large.",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            metavar="FILE",
            help="Write a JSON report: per request the key, "
            "status, latency, bytes, attempts and error.",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Call the endpoints of warm manifests and store each answer as a cache entry, with its TTL,
    tags and dependencies. Every manifest is checked before anything is fetched. Exit 3 for a bad
    manifest or two requests that would write one key, 4 when Redis is lost (with a report of
    what was stored), 6 when more requests failed than --max-failures allows or Redis is full
    (maxmemory: the run stops at the first refused write), 130 on Ctrl-C (with the report so
    far). With --every, 6 when any round failed, not only the last."""
    from cachectl.cli.numbers import sane_number_text
    from cachectl.durations import parse_size
    from cachectl.errors import UsageError
    from cachectl.layout import Layout
    from cachectl.manifest import Plan, load_manifests
    from cachectl.ops.warm import FailureLimit, WarmOptions, warm, warm_every
    from cachectl.render.warm import WarmProgressView, render_warm
    from cachectl.runlog import record_run

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output

    def size(option: str, text: str | None) -> int | None:
        if text is None:
            return None
        try:
            value = parse_size(sane_number_text(option, text))
        except ValueError as exc:
            raise UsageError(f"{option}: {exc}") from None
        if value < 1:
            raise UsageError(f"{option} must be 1 byte or more, got {text!r}")
        return value

    if rounds is not None and every is None:
        raise UsageError("--rounds needs --every")
    if top is not None and not from_access_log:
        raise UsageError("--top applies only with --from-access-log")
    options = WarmOptions(
        concurrency=concurrency,
        rate=rate,
        only_missing=only_missing,
        refresh_below_seconds=refresh_below,
        dry_run=dry_run,
        from_access_log_top=(top or 100) if from_access_log else None,
        max_failures=FailureLimit.parse(sane_number_text("--max-failures", max_failures)),
        report_path=str(report) if report else None,
        max_response_bytes=size("--max-response-bytes", max_response_bytes),
    )
    every_seconds = every

    layout = Layout(app_ctx.settings.layout)
    plan = Plan(load_manifests(files), layout, only=endpoint or ())
    progress = WarmProgressView(out)

    def show(result) -> None:
        progress.round_done()
        # A point of `cachectl.runs` for the dashboard and `history`, unless nothing was written
        # or Redis is gone (no point waiting on it again). Never fails the run. With --every, a
        # Ctrl-C or SIGTERM while the round is reported waits for the report, then ends the loop.
        if not result.dry_run and result.stopped != "redis":
            record_run(
                app_ctx.store,
                layout,
                "warm",
                result.run_summary(),
                result.duration_seconds,
                selection=", ".join(Path(str(f)).name for f in files),
            )
        problem = result.problem()
        if out.json_mode:
            out.json(result.to_dict(), ok=problem is None, error=problem)
        else:
            render_warm(out, result)
            if every_seconds and not result.stopped:
                out.print()

    if every_seconds:
        outcome = warm_every(
            app_ctx.store,
            plan,
            options,
            every_seconds,
            rounds=rounds,
            on_round=show,
            on_progress=progress.update,
            on_notice=out.warn,
        )
    else:
        from cachectl.signals import sigterm_as_interrupt

        # The round handles SIGTERM itself; around it (the report being printed), SIGTERM ends
        # the command as Ctrl-C does rather than killing it silently.
        with sigterm_as_interrupt():
            outcome = warm(app_ctx.store, plan, options, on_progress=progress.update)
            show(outcome)
    # A loop is judged on every round (WarmLoop.problem), a single run on itself.
    problem = outcome.problem()
    if problem is not None:
        out.error(problem, envelope=False)
        raise typer.Exit(problem.exit_code)


def register(app: typer.Typer) -> None:
    app.command("warm")(warm)
