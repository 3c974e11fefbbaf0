"""`cachectl memory`."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import ReplicaOpt


def memory(
    ctx: typer.Context,
    depth: Annotated[
        int | None,
        typer.Option(
            "--depth",
            min=1,
            metavar="N",
            help="Group entries by their first N ':'-separated key "
            "segments instead of by endpoint.",
        ),
    ] = None,
    top: Annotated[
        int,
        typer.Option("--top", min=0, metavar="N", help="How many of the largest entries to list."),
    ] = 10,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample-size",
            min=1,
            metavar="N",
            help="Read about N keys (spread over the primaries) and "
            "scale the figures up, saying so.",
        ),
    ] = None,
    json_: JsonOpt = False,
    replica: ReplicaOpt = False,
) -> None:
    """Analyse the cache's memory: per endpoint (or key prefix) keys, total, average, largest and
    share; entries by TTL bucket; the largest entries; tag/dependency sets, logs and metrics
    apart; entries without TTL; recommendations. One SCAN of every primary; the cache's keys are
    sized server-side a page per call. Ctrl-C shows what was gathered (exit 130); a scan cut
    short by Redis shows what it covered (exit 6)."""
    from cachectl.errors import CachectlError
    from cachectl.layout import Layout
    from cachectl.ops.memory import analyze_memory, raise_if_incomplete
    from cachectl.render.memory import render_memory
    from cachectl.store import Pacer

    app_ctx = command_context(ctx, json_mode=json_)
    app_ctx.replica = replica
    out = app_ctx.output
    settings = app_ctx.settings
    layout = Layout(settings.layout)
    with ExitStack() as stack:
        bar = None

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                # Opened once DBSIZE is known: a bar of keys scanned against it, not a count.
                bar = stack.enter_context(out.progress("Scanning keys", total=max(total, 1)))
            bar.update(completed=done, total=total)

        report = analyze_memory(
            app_ctx.store,
            layout,
            depth=depth,
            top=top,
            sample=sample,
            pacer=Pacer(settings.rate),
            on_progress=progress,
        )
    try:
        raise_if_incomplete(report)
    except CachectlError as error:
        if out.json_mode:
            out.json(report.to_dict(), ok=False, error=error)
        else:
            render_memory(out, report)
        out.error(error, envelope=False)
        raise typer.Exit(error.exit_code) from None
    if out.json_mode:
        out.json(report.to_dict())
    else:
        render_memory(out, report)


def register(app: typer.Typer) -> None:
    app.command("memory")(memory)
