"""`cachectl invalidate`, and the --delay handling `cachectl prune` shares."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cachectl.cli.completion import complete_dependency, complete_tag
from cachectl.cli.context import (
    DryRunOpt,
    JsonOpt,
    YesOpt,
    can_ask,
    command_context,
    confirm_destructive,
)
from cachectl.cli.options import BatchOpt, CountOpt, DurationOption, HintedChoice, RateOpt

if TYPE_CHECKING:
    from cachectl.cli.context import AppContext
    from cachectl.layout import Layout
    from cachectl.ops.invalidate import InvalidateOptions
    from cachectl.ops.selection import Filters, Selection
    from cachectl.render.output import Output
    from cachectl.signals import StopFlag

Many = list[str] | None


def invalidate(
    ctx: typer.Context,
    tag: Annotated[
        Many,
        typer.Option(
            "--tag",
            "-t",
            metavar="TAG",
            help="Entries in the tag's set (repeatable).",
            autocompletion=complete_tag,
        ),
    ] = None,
    pattern: Annotated[
        Many,
        typer.Option(
            "--pattern",
            metavar="GLOB",
            help="Entries whose key matches, by SCAN MATCH (repeatable). "
            "Must start with the entry prefix and not match every entry, unless --force.",
        ),
    ] = None,
    key: Annotated[
        Many,
        typer.Option(
            "--key",
            metavar="KEY",
            help="An exact entry key as `cachectl keys` prints it, \\xff, \\n and \\\\ "
            "(a backslash) read back (repeatable).",
        ),
    ] = None,
    endpoint: Annotated[
        Many,
        typer.Option(
            "--endpoint",
            "-e",
            metavar="NAME",
            help="Every entry of an endpoint, in either param "
            "encoding (repeatable); with --param, the one entry of those params.",
        ),
    ] = None,
    param: Annotated[
        Many,
        typer.Option(
            "--param",
            metavar="NAME=VALUE",
            help="A param of --endpoint (repeatable); the value is "
            "read as JSON when it parses (id=123 is a number, id='\"123\"' a string).",
        ),
    ] = None,
    depends_on: Annotated[
        Many,
        typer.Option(
            "--depends-on",
            metavar="ID",
            help="Entries that depend on a resource (repeatable); with --graph, on everything it "
            "reaches.",
            autocompletion=complete_dependency,
        ),
    ] = None,
    graph: Annotated[
        str | None,
        typer.Option(
            "--graph",
            metavar="FILE",
            help="YAML dependency graph: `user_123: [profile_data, preferences]`.",
        ),
    ] = None,
    ttl_below: Annotated[
        float | None,
        DurationOption(
            "--ttl-below",
            allow_zero=True,
            help="Only entries expiring within this (90, 10m, 1h).",
        ),
    ] = None,
    ttl_above: Annotated[
        float | None,
        DurationOption(
            "--ttl-above",
            allow_zero=True,
            help="Only entries with more TTL left than this, or none.",
        ),
    ] = None,
    idle_above: Annotated[
        float | None,
        DurationOption(
            "--idle-above",
            allow_zero=True,
            help="Only entries not read for longer than this "
            "(OBJECT IDLETIME: not under an LFU maxmemory-policy).",
        ),
    ] = None,
    older_than: Annotated[
        float | None,
        DurationOption(
            "--older-than",
            allow_zero=True,
            help="Only entries last written longer ago than this "
            "(by the write log; entries missing from it are kept).",
        ),
    ] = None,
    larger_than: Annotated[
        str | None,
        typer.Option(
            "--larger-than",
            metavar="BYTES",
            help="Only entries larger than this (2048, 10kb, 1MiB; MEMORY USAGE).",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Allow a pattern that reaches outside the entries or matches all of "
            "them; still only cache entries are deleted.",
        ),
    ] = False,
    delay: Annotated[
        float | None,
        DurationOption(
            "--delay",
            allow_zero=True,
            help="Wait this long first (30s, 5m), counting down on "
            "a terminal; Ctrl-C while waiting deletes nothing.",
        ),
    ] = None,
    index_cleanup: Annotated[
        str,
        typer.Option(
            "--index-cleanup",
            click_type=HintedChoice(("auto", "sweep", "skip")),
            help="Remove deleted entries from the other tag and dependency sets that name them (a "
            "pass over the keyspace): auto (after --pattern or --endpoint, which walk it anyway), "
            "sweep (always), skip (leave it to prune).",
        ),
    ] = "auto",
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Exit 5 (not found) when a --tag or --depends-on set does not exist, or "
            "nothing matched (default: the strict setting, off: exit 0, with a warning for a "
            "missing set).",
        ),
    ] = None,
    show: Annotated[
        int,
        typer.Option(
            "--show", min=0, metavar="N", help="Keys listed by a dry run or a confirmation."
        ),
    ] = 20,
    count: CountOpt = None,
    batch_size: BatchOpt = None,
    rate: RateOpt = None,
    dry_run: DryRunOpt = False,
    yes: YesOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Delete cache entries: by tag, pattern, key, endpoint or dependency (the union of all
    given), narrowed by filters. Only cache entries are ever deleted. Asks first on a terminal
    (--yes skips it; with no terminal, --yes is required). Ctrl-C stops after the current batch;
    rerunning the same command finishes an interrupted run. Exit 0 done, 2 bad flags (or no
    terminal to ask on and no --yes), 3 bad graph file, 4 Redis error before any change, 5 a
    named set missing or nothing matched (with --strict), 6 Redis error after some deletions
    (or servers restarting throughout), 130 interrupted (or the question answered no)."""
    from cachectl.cli.numbers import sane_number_text
    from cachectl.errors import ExitCode
    from cachectl.layout import Layout
    from cachectl.ops.invalidate import InvalidateOptions, InvalidateResult, preview
    from cachectl.ops.selection import (
        SelectionSpec,
        make_filters,
        resolve_selection,
    )
    from cachectl.render.invalidate import render_preview, warn_missing_sets

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    settings = app_ctx.settings
    layout = Layout(settings.layout)
    spec = SelectionSpec(
        tags=tag or (),
        patterns=pattern or (),
        keys=key or (),
        endpoints=endpoint or (),
        params=param or (),
        depends_on=depends_on or (),
        graph_file=graph,
        force=force,
    )
    selection = resolve_selection(layout, spec)
    filters = make_filters(
        ttl_below=ttl_below,
        ttl_above=ttl_above,
        idle_above=idle_above,
        older_than=older_than,
        larger_than=sane_number_text("--larger-than", larger_than),
    )
    delay_seconds = delay or 0.0
    options = InvalidateOptions(
        scan_count=count or settings.scan_count,
        batch_size=batch_size or settings.batch_size,
        rate=rate or settings.rate,
        index_cleanup=index_cleanup,
    )
    strict = settings.strict if strict is None else strict
    store = app_ctx.store
    if dry_run:
        result = InvalidateResult(notes=list(selection.notes))
        error = render_preview(
            out,
            preview(store, selection, filters, options, result),
            result,
            show=show,
            strict=strict,
        )
        if error is None or error.exit_code != ExitCode.NOT_FOUND:
            warn_missing_sets(out, result)
        if error is not None:
            out.error(error, envelope=False)
            raise typer.Exit(error.exit_code)
        return
    if not yes and not can_ask():
        confirm_destructive(app_ctx, "", yes=False)  # refuses: no terminal to ask on

    from cachectl.ops.invalidate import check_permissions

    check_permissions(store, layout, selection, filters, options)
    if not yes and not _confirmed_with_count(app_ctx, selection, filters, options, show, strict):
        return
    from cachectl.signals import stop_on_signals

    with stop_on_signals() as stop:
        wait_first(out, delay_seconds, stop)
        _run(app_ctx, layout, selection, filters, options, stop, strict)


def _confirmed_with_count(
    app_ctx: AppContext,
    selection: Selection,
    filters: Filters,
    options: InvalidateOptions,
    show: int,
    strict: bool,
) -> bool:
    """Counts what would go (a read-only pass: the count is the question's point), shows it
    and asks. False when nothing matches, so there is nothing to ask (exit 5 with --strict)."""
    from cachectl.ops.invalidate import InvalidateResult, preview
    from cachectl.render.invalidate import preview_lines, warn_missing_sets

    out = app_ctx.output
    result = InvalidateResult(notes=list(selection.notes))
    shown = []
    with out.progress("counting what would be deleted") as bar:
        for key in preview(app_ctx.store, selection, filters, options, result):
            if len(shown) < show:
                shown.append(key)
            bar.update(completed=result.matched)
    if result.matched == 0:
        error = result.strict_problem() if strict else None
        if error is None:
            warn_missing_sets(out, result)
            out.info("nothing matches: nothing to delete")
        result.dry_run = False
        if out.json_mode:
            out.json(result.to_dict(), ok=error is None, error=error)
        if error is not None:
            out.error(error, envelope=False)
            raise typer.Exit(error.exit_code)
        return False
    result.dry_run = False
    for line in preview_lines(result, shown):
        out.info(line)
    noun = "entry" if result.matched == 1 else "entries"
    confirm_destructive(app_ctx, f"Delete {result.matched:,} {noun}?", yes=False)
    return True


def _run(
    app_ctx: AppContext,
    layout: Layout,
    selection: Selection,
    filters: Filters,
    options: InvalidateOptions,
    stop: StopFlag,
    strict: bool,
) -> None:
    from cachectl.errors import (
        ExitCode,
        Interrupted,
        PartialFailure,
        RedisTimeout,
        RedisUnreachable,
    )
    from cachectl.ops.invalidate import invalidate as run_invalidate
    from cachectl.render.invalidate import (
        invalidate_progress_text,
        render_invalidate,
        warn_missing_sets,
    )
    from cachectl.runlog import record_run

    out = app_ctx.output
    with out.progress("deleting") as bar:
        result = run_invalidate(
            app_ctx.store,
            selection,
            filters,
            options,
            stop=stop,
            on_progress=lambda p: bar.update(
                completed=p.deleted, extra=invalidate_progress_text(p)
            ),
        )
    if result.failure is None:  # after a failure Redis is likely unreachable: do not wait on it
        record_run(
            app_ctx.store,
            layout,
            "invalidate",
            result.to_dict(),
            result.duration_seconds,
            selection=", ".join(selection.describe()),
        )
    error = None
    if result.failure is not None:
        error = result.failure
        if result.changed:
            error = PartialFailure(
                f"stopped part way: {result.failure.message}; {result.deleted:,} of "
                f"{result.matched:,} entries found so far were deleted",
                hint="rerun the same command to finish",
                result=result,
                details={"cause": result.failure.to_dict()},
            )
        elif isinstance(error, (RedisTimeout, RedisUnreachable)):
            # Redis lost or silent before any change: the whole job is left, and the same
            # command does it (a refusal needs a fix first, not a rerun).
            error.message += "; nothing was deleted"
            error.hint = "; then ".join(filter(None, [error.hint, "rerun the same command"]))
    elif result.interrupted:
        error = Interrupted(
            f"interrupted after {result.deleted:,} deletions",
            hint="rerun the same command to finish",
        )
    elif strict:
        error = result.strict_problem()
    if error is None or error.exit_code != ExitCode.NOT_FOUND:
        warn_missing_sets(out, result)
    if out.json_mode:
        out.json(result.to_dict(), ok=error is None, error=error)
    elif result.matched or result.changed or error is None:
        render_invalidate(out, result)
    if error is not None:
        out.error(error, envelope=False)
        raise typer.Exit(error.exit_code)


# --- shared with prune -------------------------------------------------------------------


def wait_first(out: Output, seconds: float, stop: StopFlag) -> None:
    """--delay: wait, counting down on a terminal; a Ctrl-C meanwhile cancels the whole run."""
    import time

    from cachectl.errors import Interrupted
    from cachectl.render.units import human_duration

    if seconds <= 0:
        return
    # Polling, not stop.wait(): the SIGINT handler sets the event on this same thread, and
    # Event.set() would deadlock on the lock a wait() in progress holds.
    deadline = time.monotonic() + seconds
    if not out.live:
        out.info(f"waiting {human_duration(seconds)} before deleting (Ctrl-C cancels)")
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        with out.progress("waiting before deleting (Ctrl-C cancels)", total=seconds) as bar:
            while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
                bar.update(completed=seconds - left, extra=f"{left:,.0f}s left")
                time.sleep(min(left, 0.05))
    if stop.is_set():
        raise Interrupted("cancelled during --delay: nothing was deleted")


def register(app: typer.Typer) -> None:
    app.command("invalidate")(invalidate)
