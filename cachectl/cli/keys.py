"""`cachectl keys`."""

from __future__ import annotations

from typing import Annotated

import typer

from cachectl.cli.completion import complete_dependency, complete_tag
from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import ChoiceOption, JsonlOpt, ReplicaOpt


def keys(
    ctx: typer.Context,
    pattern: Annotated[
        str | None,
        typer.Argument(
            metavar="[PATTERN]",
            help="SCAN MATCH glob over whole keys (default: every entry, api_cache:*).",
        ),
    ] = None,
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            "-e",
            metavar="NAME",
            help="Only entries of this endpoint (glob characters in it are taken literally).",
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(
            "--tag",
            "-t",
            metavar="TAG",
            help="Only entries the tag set names.",
            autocompletion=complete_tag,
        ),
    ] = None,
    depends_on: Annotated[
        str | None,
        typer.Option(
            "--depends-on",
            metavar="ID",
            help="Only entries that depend on this resource id.",
            autocompletion=complete_dependency,
        ),
    ] = None,
    type_: Annotated[
        str | None,
        ChoiceOption(
            "--type",
            choices=("string", "hash", "list", "set", "zset", "stream"),
            help="Only keys of this type.",
        ),
    ] = None,
    no_ttl: Annotated[
        bool, typer.Option("--without-ttl", help="Only entries without an expiry (no TTL).")
    ] = False,
    limit: Annotated[
        int | None,
        typer.Option("--limit", "-n", min=1, metavar="N", help="Stop after this many entries."),
    ] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            "--fields",
            "-f",
            metavar="FIELDS",
            help="Only these row fields, comma-separated, of: type, "
            "ttl, size, endpoint, params (default all; the key is always shown). A "
            "figure not asked for is not read from Redis: '--fields endpoint,params' "
            "costs the server no more than a bare SCAN, '--fields key' lists at about "
            "its speed.",
        ),
    ] = None,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
    replica: ReplicaOpt = False,
) -> None:
    """List cache entries with type, TTL, size (MEMORY USAGE) and the endpoint and params read
    from the key, streamed as they are found: a table on a terminal, --json, or --jsonl.
    SCAN never KEYS; every primary of a cluster. Exit 5 when --tag/--depends-on names no set;
    exit 6 when Redis fails part way (the rows listed stand; the error says how far it got)."""
    from cachectl.keytext import glob_from_shown
    from cachectl.layout import Layout
    from cachectl.ops.keys import KeyQuery, list_keys, parse_fields
    from cachectl.render.keys import key_listing, stream_listing
    from cachectl.store import Pacer

    app_ctx = command_context(ctx, json_mode=json_, jsonl=jsonl)
    app_ctx.replica = replica
    out = app_ctx.output
    settings = app_ctx.settings
    shown = parse_fields(fields)
    glob = glob_from_shown(pattern) if pattern is not None else None  # keys' printed escapes
    query = KeyQuery(glob, endpoint, tag, depends_on, type_, no_ttl, limit, shown)
    listing, rows = list_keys(app_ctx.store, Layout(settings.layout), query, Pacer(settings.rate))
    if listing.pattern_outside_entries:
        out.warn(
            f"the pattern {pattern} reaches beyond the cache's entries: only entries are listed"
        )
    view = key_listing(out, jsonl=jsonl, fields=shown)
    error = stream_listing(out, view, rows, listing.to_dict, "entries", listing.notes)
    if error is not None:
        out.error(error, envelope=False)
        raise typer.Exit(error.exit_code)


def register(app: typer.Typer) -> None:
    app.command("keys")(keys)
