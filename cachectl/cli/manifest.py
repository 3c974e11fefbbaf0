"""`cachectl manifest validate|expand`: check warm manifests and see what they would ask for,
without fetching anything or touching Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cachectl.cli.completion import complete_manifest_endpoint
from cachectl.cli.context import JsonOpt, command_context

manifest_app = typer.Typer(
    help="Check warm manifests and show the requests they expand to (nothing is fetched).",
    no_args_is_help=True,
)

FilesArg = Annotated[
    list[Path], typer.Argument(help="Warm manifests (YAML, version: 1).", show_default=False)
]


@manifest_app.command("validate")
def validate(ctx: typer.Context, files: FilesArg, json_: JsonOpt = False) -> None:
    """Check manifests: every problem of every file at once, each with file, line, column and
    field; unknown fields with the nearest valid name; unset environment variables; two requests
    that would write one key (keys as the config's layout writes them). Exit 3 when anything is
    wrong. Nothing is fetched."""
    from cachectl.layout import Layout
    from cachectl.manifest import Plan, load_manifests
    from cachectl.render.warm import render_validate, validate_data
    from cachectl.signals import sigterm_as_interrupt

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    manifests = load_manifests(files)
    # SIGTERM (a cancelled CI job) ends the check like Ctrl-C: its temporary folder is removed.
    with sigterm_as_interrupt():
        Plan(manifests, Layout(app_ctx.settings.layout)).check_unique_keys()
    if out.json_mode:
        out.json(validate_data(manifests))
    else:
        render_validate(out, manifests)


@manifest_app.command("expand")
def expand(
    ctx: typer.Context,
    files: FilesArg,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            metavar="NAME",
            help="Only this endpoint (repeat for more).",
            autocompletion=complete_manifest_endpoint,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=0,
            help="Show at most this many requests (default: 50 in the table, all with --json).",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show the requests a manifest expands to: method, URL, key, TTL, tags and dependencies,
    with secrets masked. Keys follow the layout of the config in use. Nothing is fetched."""
    from cachectl.layout import Layout
    from cachectl.manifest import Plan, load_manifests
    from cachectl.render.warm import render_expand, write_expand_json

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    plan = Plan(load_manifests(files), Layout(app_ctx.settings.layout), only=endpoint or ())
    if out.json_mode:
        write_expand_json(out, plan, limit)
    else:
        render_expand(out, plan, 50 if limit is None else limit)


def register(app: typer.Typer) -> None:
    app.add_typer(manifest_app, name="manifest")
