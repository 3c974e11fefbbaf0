"""`cachectl tags` (list tag or dependency sets) and `cachectl tags show TAG`."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from cachectl.cli.completion import complete_tag_or_dependency, complete_tags_pattern
from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import JsonlOpt


class TagsGroup(TyperGroup):
    """`tags [PATTERN]` lists, `tags show TAG` shows: a first word naming a subcommand is that
    subcommand, not a PATTERN; without one, options may follow the PATTERN."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.name == "pattern":
                # Click puts a group's arguments into its subcommands' paths: `tags show`, not
                # `tags [pattern] show` (the JSON envelope names the command by that path).
                param.get_usage_pieces = lambda ctx: []

    def collect_usage_pieces(self, ctx):
        pieces = super().collect_usage_pieces(ctx)
        return [*pieces[:-1], "[PATTERN]", pieces[-1]] if pieces else ["[PATTERN]"]

    def parse_args(self, ctx, args):
        first = next((a for a in args if not a.startswith("-")), None)
        if first is not None and first in self.commands:
            params = self.params
            self.params = [p for p in params if p.name != "pattern"]
            try:
                return super().parse_args(ctx, args)
            finally:
                self.params = params
        ctx.allow_interspersed_args = True
        return super().parse_args(ctx, args)


tags_app = typer.Typer(
    cls=TagsGroup,
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    rich_markup_mode=None,
    help="List tag sets (or dependency sets) with member counts; `tags show TAG` lists members.",
)


@tags_app.callback(invoke_without_command=True)
def tags(
    ctx: typer.Context,
    pattern: Annotated[
        str | None,
        typer.Argument(
            metavar="[PATTERN]",
            help="Glob over tag names (default *): 'user:*'.",
            autocompletion=complete_tags_pattern,
        ),
    ] = None,
    dependencies: Annotated[
        bool, typer.Option("--dependencies", "-d", help="Dependency sets instead of tag sets.")
    ] = False,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample-size",
            min=1,
            metavar="N",
            help="Estimate existing/dangling from N random members "
            "per set instead of checking every member.",
        ),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """List tag sets (or --dependencies sets) with their member count, how many members still
    exist and how many are dangling (exact, or estimated with --sample-size N), and their TTL.
    Read only: `cachectl prune` removes dangling members. Exit 6 if the scan is cut short."""
    if ctx.invoked_subcommand is not None:
        return
    from cachectl.errors import Interrupted, PartialFailure
    from cachectl.layout import Layout
    from cachectl.ops.tags import list_tag_sets
    from cachectl.render.tags import render_tag_listing
    from cachectl.store import Pacer

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    settings = app_ctx.settings
    with out.progress("Reading sets") as bar:
        listing = list_tag_sets(
            app_ctx.store,
            Layout(settings.layout),
            pattern or "*",
            dependencies=dependencies,
            sample=sample,
            pacer=Pacer(settings.rate),
            on_progress=lambda done: bar.update(completed=done),
        )
    error = None
    if not listing.complete:
        error = (Interrupted if listing.stopped.startswith("interrupted") else PartialFailure)(
            f"the listing is incomplete: {listing.stopped}"
        )
    if out.json_mode:
        out.json(listing.to_dict(), ok=error is None, error=error)
    else:
        render_tag_listing(out, listing)
    if error is not None:
        out.error(error, envelope=False)
        raise typer.Exit(error.exit_code)


@tags_app.command("show")
def show(
    ctx: typer.Context,
    tag: Annotated[
        str,
        typer.Argument(
            metavar="TAG",
            help="The tag (or, with --dependencies, the resource id).",
            autocompletion=complete_tag_or_dependency,
        ),
    ],
    dependencies: Annotated[
        bool,
        typer.Option(
            "--dependencies", "-d", help="Show the dependency set of a resource id instead."
        ),
    ] = False,
    json_: JsonOpt = False,
    jsonl: JsonlOpt = False,
) -> None:
    """List the members of one tag set (or --dependencies set), each with whether its entry still
    exists and its TTL, streamed. Exit 5 when there is no such set."""
    from cachectl.layout import Layout
    from cachectl.ops.tags import show_tag_set
    from cachectl.render.keys import stream_listing
    from cachectl.render.tags import member_listing, tag_set_heading, tag_set_notes

    # `tags --json show x` means the same as `tags show x --json`.
    json_ = json_ or bool(ctx.parent and ctx.parent.params.get("json_"))
    app_ctx = command_context(ctx, json_mode=json_, jsonl=jsonl)
    out = app_ctx.output
    info, members = show_tag_set(
        app_ctx.store, Layout(app_ctx.settings.layout), tag, dependency=dependencies
    )
    if not out.json_mode:
        tag_set_heading(out, info)
    view = member_listing(out, jsonl=jsonl)
    error = stream_listing(out, view, members, info.to_dict, "members", lambda: tag_set_notes(info))
    if error is not None:
        out.error(error, envelope=False)
        raise typer.Exit(error.exit_code)


def register(app: typer.Typer) -> None:
    app.add_typer(tags_app, name="tags")
