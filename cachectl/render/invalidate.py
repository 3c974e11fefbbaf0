"""People's and machines' views of `cachectl invalidate` and `cachectl prune`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cachectl.keytext import show_bytes
from cachectl.render.output import JSON_SCHEMA_VERSION, Output, dumps, plain
from cachectl.render.units import counted, human_duration

if TYPE_CHECKING:
    from cachectl.errors import CachectlError
    from cachectl.ops.invalidate import InvalidateProgress, InvalidateResult
    from cachectl.ops.prune import PruneProgress, PruneResult


def show_key(key: bytes | str) -> str:
    """A key as one safe line, escaped as every command prints keys and reads them back
    (`cachectl.keytext.show_bytes`): `invalidate --key` takes this form."""
    return show_bytes(key)


# --- dry run -----------------------------------------------------------------------------


def render_preview(
    out: Output,
    keys: Iterable[bytes],
    result: InvalidateResult,
    *,
    show: int,
    strict: bool = False,
) -> CachectlError | None:
    """Streams a dry run: with --json every key (written as found, so a million keys never
    sit in memory), else the count and the first `show` keys. A Redis error part way through
    still ends the JSON document properly; it is returned for the caller to report, as is,
    with `strict`, the result's strict_problem(). A reader that goes away (`| head`) ends the
    command quietly in the CLI's frame (exit 141)."""
    from cachectl.errors import CachectlError

    error: CachectlError | None = None
    if out.json_mode:
        out.stdout.write(
            f'{{"command":{dumps(out.command)},"schema_version":{JSON_SCHEMA_VERSION},'
            f'"data":{{"keys":['
        )
        first = True
        try:
            for key in keys:
                out.stdout.write(("" if first else ",") + dumps(key))
                first = False
        except CachectlError as err:
            error = err
        if error is None and strict:
            error = result.strict_problem()
        data = dumps(result.to_dict())[1:-1]
        ending = f'],{data}}},"ok":{dumps(error is None)}'
        if error is not None:
            ending += f',"error":{dumps(error.to_dict())}'
        out.stdout.write(ending + "}\n")
        out.stdout.flush()
        return error
    shown = []
    try:
        with out.progress("finding entries") as bar:
            for key in keys:
                if len(shown) < show:
                    shown.append(key)
                bar.update(completed=result.matched, extra=f"{result.scanned:,} looked at")
    except CachectlError as err:
        error = err
    if error is None:
        for line in preview_lines(result, shown):
            out.line(line)
        return result.strict_problem() if strict else None
    if result.matched:
        out.line(
            f"{counted(result.matched, 'entry')} found before the error (the selection is not complete)"
        )
    return error


def preview_lines(result: InvalidateResult, shown: list[bytes]) -> list[str]:
    verb = "would be deleted" if result.dry_run else "will be deleted"
    noun = "entry" if result.matched == 1 else "entries"
    what = "; ".join(result.selection) + _filters_text(result.filters)
    lines = [f"{result.matched:,} {noun} {verb} ({what})"]
    lines += [f"  {show_key(k)}" for k in shown]
    if result.matched > len(shown):
        lines.append(f"  ... and {result.matched - len(shown):,} more (--json lists every one)")
    lines += [f"note: {note}" for note in result.notes]
    return lines


def _filters_text(filters: dict) -> str:
    if not filters:
        return ""
    names = {
        "ttl_below_seconds": "TTL below {}",
        "ttl_above_seconds": "TTL above {}",
        "idle_above_seconds": "idle over {}",
        "older_than_seconds": "written over {} ago",
    }
    parts = [text.format(human_duration(filters[k])) for k, text in names.items() if k in filters]
    if "larger_than_bytes" in filters:
        parts.append(f"larger than {filters['larger_than_bytes']:,} bytes")
    return ", only " + ", ".join(parts)


def warn_missing_sets(out: Output, result: InvalidateResult) -> None:
    """A warning on stderr for each named set that does not exist (with --json too)."""
    from cachectl.ops.invalidate import missing_set_text

    for missing in result.missing_sets:
        out.warn(show_key(missing_set_text(missing)))


# --- a run -------------------------------------------------------------------------------


def invalidate_progress_text(p: InvalidateProgress) -> str:
    rate = p.deleted / p.elapsed_seconds if p.elapsed_seconds > 0 else 0
    scanned = f"~{p.scanned:,}" + (f" of {p.scan_total:,}" if p.scan_total else "")
    phase = f"{p.phase}; " if p.phase == "cleaning indexes" else ""
    return f"{phase}scanned {scanned}, matched {p.matched:,}, {rate:,.0f} keys/s"


def render_invalidate(out: Output, result: InvalidateResult) -> None:
    """The summary: counts first, then what is left to do, if anything."""
    rows = [
        ("matched", f"{result.matched:,}"),
        ("deleted", f"{result.deleted:,}"),
        ("already gone", f"{result.already_gone:,}"),
        ("sets deleted", f"{result.sets_deleted:,}"),
        ("sets updated", f"{result.sets_updated:,}"),
        ("index cleanup", index_cleanup_text(result)),
        (
            "duration",
            f"{human_duration(result.duration_seconds)} ({result.keys_per_second:,.0f} keys/s)",
        ),
    ]
    if result.not_entries_skipped:
        rows.insert(3, ("not entries, kept", f"{result.not_entries_skipped:,}"))
    if result.deleted_again:
        rows.insert(2, ("brought back by a restart, deleted again", f"{result.deleted_again:,}"))
    _render_rows(
        out,
        "Invalidated" if not (result.failure or result.interrupted) else "Invalidation stopped",
        rows,
    )
    for note in result.notes:
        out.warn(note)
    if result.pending_sets:
        out.warn(
            f"{len(result.pending_sets)} set(s) half invalidated "
            f"({', '.join(result.pending_sets[:3])}"  # escaped by the run
            f"{', ...' if len(result.pending_sets) > 3 else ''}): rerun the same command to finish"
        )


def index_cleanup_text(result: InvalidateResult) -> str:
    if result.index_cleanup != "skipped" or not result.unswept_entries:
        return result.index_cleanup
    n = result.unswept_entries
    return (
        f"skipped: {n:,} deleted {'entry' if n == 1 else 'entries'} may still be named in other "
        "tag or dependency sets (dangling members; cachectl prune or --index-cleanup sweep "
        "removes them)"
    )


def prune_progress_text(p: PruneProgress) -> str:
    again = f" (pass {p.attempt}, after a server restart)" if p.attempt > 1 else ""
    return (
        f"{p.phase}{again}: {p.sets_scanned:,} sets, {p.members_checked:,} members checked, "
        f"{p.removed:,} removed"
    )


def render_prune(out: Output, result: PruneResult) -> None:
    would = "would be " if result.dry_run else ""
    rows = [
        ("sets scanned", f"{result.sets_scanned:,}"),
        ("members checked", f"{result.members_checked:,}"),
        (f"dangling members {would}removed", f"{result.members_removed:,}"),
        (f"sets {would}deleted (emptied)", f"{result.sets_deleted:,}"),
        (f"sets {would}updated", f"{result.sets_updated:,}"),
        (f"write log members {would}removed", f"{result.entries_log_removed:,}"),
        (f"access log members {would}removed", f"{result.access_log_removed:,}"),
        (f"response times {would}removed (older than 1h)", f"{result.response_times_removed:,}"),
        ("duration", human_duration(result.duration_seconds)),
    ]
    if result.passes > 1:
        rows.insert(-1, ("passes (a server restarted)", f"{result.passes}"))
    title = "Prune (dry run)" if result.dry_run else "Pruned"
    if result.failure or result.interrupted:
        title = "Prune stopped"
    _render_rows(out, title, rows)
    for note in result.notes:
        out.warn(note)
    if result.pending_invalidations:
        out.warn(
            f"{len(result.pending_invalidations)} half-finished invalidation(s) found "
            f"({', '.join(result.pending_invalidations[:3])}): rerun the "  # escaped by the run
            "`cachectl invalidate` that was interrupted to finish it"
        )


def _render_rows(out: Output, title: str, rows: list[tuple[str, str]]) -> None:
    if not out.is_terminal:
        out.line(title)
        for name, value in rows:
            out.line(f"  {name}: {value}")
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False, show_edge=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, value in rows:
        table.add_row(name, plain(value))
    out.print(table)
