"""`cachectl inspect`."""

from __future__ import annotations

from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context


def inspect(
    ctx: typer.Context,
    key: Annotated[
        str | None,
        typer.Argument(
            metavar="[KEY]",
            help="The key as `cachectl keys` prints it: \\xff, \\n and \\\\ (a backslash) read back.",
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint", "-e", metavar="NAME", help="Build the entry key from an endpoint..."
        ),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="NAME=VALUE",
            help="...and its params, name=value, repeated; the value is read "
            "as JSON when it parses as JSON (id=123 a number, id='\"123\"' a string).",
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="The whole value, not its start.")] = False,
    tags: Annotated[
        bool,
        typer.Option(
            "--tags",
            help="Also find the tag and dependency sets naming the key "
            "(scans every tag and dependency set).",
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Show one key: its value (JSON pretty-printed, shortened unless --full), type, encoding, TTL,
    memory, idle time, the endpoint and params read from it, its last write and last access from
    the logs, and with --tags the sets naming it. Exit 5 when the key does not exist."""
    from cachectl.layout import Layout
    from cachectl.ops.inspect import inspect_key
    from cachectl.render.inspect import render_inspection
    from cachectl.store import Pacer

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    settings = app_ctx.settings
    found = inspect_key(
        app_ctx.store,
        Layout(settings.layout),
        key,
        endpoint=endpoint,
        params=param or [],
        full=full,
        with_tags=tags,
        pacer=Pacer(settings.rate),
    )
    if out.json_mode:
        out.json(found.to_dict())
    else:
        render_inspection(out, found, full=full)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect)
