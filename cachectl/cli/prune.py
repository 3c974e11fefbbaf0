"""`cachectl prune`."""

from __future__ import annotations

import typer

from cachectl.cli.context import (
    DryRunOpt,
    JsonOpt,
    YesOpt,
    can_ask,
    command_context,
    confirm_destructive,
)
from cachectl.cli.options import BatchOpt, CountOpt, RateOpt


def prune(
    ctx: typer.Context,
    count: CountOpt = None,
    batch_size: BatchOpt = None,
    rate: RateOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Remove tag and dependency set members whose entry no longer exists (Redis deletes the
    sets left empty), trim the write and access logs to live entries and the response-time log
    to its last hour. Asks first on a terminal (--yes skips it; with no terminal, --yes is
    required). Every command it sends is tried first, changing nothing. Exit 0 done, 2 no
    terminal to ask on and no --yes, 4 a command the ACL user may not run or a Redis error,
    before any change, 6 Redis error after some changes (or servers that restarted during each
    of 3 passes: a restart makes it go through everything again), 130 interrupted (or the
    question answered no)."""
    from cachectl.errors import Interrupted, PartialFailure, RedisTimeout, RedisUnreachable
    from cachectl.ops.prune import PruneOptions
    from cachectl.ops.prune import prune as run_prune
    from cachectl.render.invalidate import prune_progress_text, render_prune

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    settings = app_ctx.settings
    if not dry_run and not yes:
        if can_ask():
            out.info(
                "prune removes members whose entry is gone from every tag and dependency "
                "set, and trims the logs (--dry-run shows how many first)"
            )
        confirm_destructive(app_ctx, "Prune the cache's indexes and logs?", yes=False)
    options = PruneOptions(
        scan_count=count or settings.scan_count,
        batch_size=batch_size or settings.batch_size,
        rate=rate or settings.rate,
        dry_run=dry_run,
    )
    from cachectl.signals import stop_on_signals

    with stop_on_signals() as stop, out.progress("pruning") as bar:
        result = run_prune(
            app_ctx.store,
            options,
            stop=stop,
            on_progress=lambda p: bar.update(
                completed=p.members_checked, extra=prune_progress_text(p)
            ),
        )
    if result.failure is None and not dry_run:
        from cachectl.layout import Layout
        from cachectl.runlog import record_run

        record_run(
            app_ctx.store,
            Layout(settings.layout),
            "prune",
            result.to_dict(),
            result.duration_seconds,
        )
    error = None
    if result.failure is not None:
        error = result.failure
        if result.changed:
            error = PartialFailure(
                f"stopped part way: {result.failure.message}",
                hint="rerun to finish",
                result=result,
                details={"cause": result.failure.to_dict()},
            )
        elif not dry_run and isinstance(error, (RedisTimeout, RedisUnreachable)):
            # Redis lost or silent before any change: the whole prune is left, and a rerun
            # does it (a refusal needs a fix first, not a rerun).
            error.message += "; nothing was pruned"
            error.hint = "; then ".join(filter(None, [error.hint, "rerun to finish"]))
    elif result.interrupted:
        error = Interrupted("interrupted", hint="rerun to finish")
    if out.json_mode:
        out.json(result.to_dict(), ok=error is None, error=error)
    else:
        render_prune(out, result)
    if error is not None:
        out.error(error, envelope=False)
        raise typer.Exit(error.exit_code)


def register(app: typer.Typer) -> None:
    app.command("prune")(prune)
