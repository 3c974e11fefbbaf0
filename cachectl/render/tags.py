"""People's view of `cachectl tags` and `cachectl tags show`."""

from __future__ import annotations

import json
from typing import Any

from cachectl.ops.tags import MemberRow, TagListing, TagSet
from cachectl.render.keys import StreamedListing
from cachectl.render.output import Output
from cachectl.render.units import human_duration


def render_tag_listing(out: Output, listing: TagListing) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False)
    table.add_column(listing.kind, overflow="fold")
    for name in ("members", "existing", "dangling", "ttl"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in listing.rows:
        if row.type != "set":
            table.add_row(
                Text(row.name),
                Text(f"a {row.type}, not a set", style="yellow"),
                "",
                "",
                _ttl(row.ttl_seconds),
            )
            continue
        mark = "~" if row.sampled else ""
        dangling = Text(
            f"{mark}{row.dangling:,}",
            style="yellow" if row.members and row.dangling * 2 >= row.members else "",
        )
        table.add_row(
            Text(row.name),
            f"{row.members:,}",
            f"{mark}{row.existing:,}",
            dangling,
            _ttl(row.ttl_seconds),
        )
    if listing.rows:
        out.print(table)
    totals = listing.totals
    what = "dependency sets" if listing.kind == "dependency" else "tag sets"
    line = (
        f"{totals['sets']:,} {what}, {totals['members']:,} members: "
        f"{totals['existing']:,} existing, {totals['dangling']:,} dangling"
    )
    if listing.sample is not None:
        line += f" (estimated from up to {listing.sample} random members per set, marked ~)"
    if totals["not_sets"]:
        line += f"; {totals['not_sets']} keys under the prefix are not sets"
    out.print(Text(line))
    if totals["dangling"]:
        out.print(
            Text(
                "dangling members name entries that are gone: `cachectl prune` removes them",
                style="dim",
            )
        )


def _ttl(seconds: float | None) -> str:
    return "no expiry" if seconds is None else human_duration(seconds)


MEMBER_COLUMNS = [("member", None, "left"), ("exists", 7, "left"), ("ttl", 10, "right")]


def member_table_row(row: MemberRow) -> list[Any]:
    from rich.text import Text

    return [
        Text(row.key),
        Text("yes" if row.exists else "no", style="" if row.exists else "yellow"),
        "" if not row.exists else _ttl(row.ttl_seconds),
    ]


def member_json(row: MemberRow) -> str:
    return json.dumps(row.to_dict(), ensure_ascii=False, separators=(",", ":"))


def member_listing(out: Output, *, jsonl: bool) -> StreamedListing:
    return StreamedListing(
        out, jsonl=jsonl, to_json=member_json, columns=MEMBER_COLUMNS, table_row=member_table_row
    )


def tag_set_heading(out: Output, info: TagSet) -> None:
    from rich.text import Text

    out.print(
        Text(
            f"{info.kind} set {info.key}: {info.members:,} members, TTL {_ttl(info.ttl_seconds)}",
            style="bold",
        )
    )


def tag_set_notes(info: TagSet) -> list[str]:
    return [f"{info.existing:,} existing", f"{info.shown - info.existing:,} dangling"]
