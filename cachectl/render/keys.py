"""`cachectl keys` (and any streamed listing) for people and machines, row by row as rows arrive.

A listing never sits in memory whole: a terminal gets a table printed a page of rows at a time
with fixed column widths, `--jsonl` one JSON object a line, and `--json` the usual envelope with
its `data` array written as it goes (its `ok` comes last, once the listing knows how it ended).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from cachectl.errors import CachectlError
from cachectl.keytext import safe_text
from cachectl.ops.keys import FIELDS, KeyRow
from cachectl.render.output import JSON_SCHEMA_VERSION, Output, dumps
from cachectl.render.units import human_bytes, human_duration

ROWS_PER_FLUSH = 500

_json_str = json.encoder.encode_basestring  # the C encoder behind json.dumps(ensure_ascii=False)
_json_obj = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def key_row_json(row: KeyRow) -> str:
    """`row.to_dict()` as one JSON line, built directly: a million rows through dict + dumps
    would double the time `keys --jsonl` takes."""
    ttl = "null" if row.pttl_ms is None or row.pttl_ms < 0 else repr(row.pttl_ms / 1000)
    size = "null" if row.size_bytes is None else str(row.size_bytes)
    endpoint = "null" if row.endpoint is None else _json_str(row.endpoint)
    params = row.params_json or ("null" if row.params is None else _json_obj(row.params))
    return (
        f'{{"key":{_json_str(row.shown)},"type":{_json_type(row.type)},'
        f'"ttl_seconds":{ttl},"size_bytes":{size},"endpoint":{endpoint},"params":{params}}}'
    )


def _json_type(type_: str | None) -> str:
    return "null" if type_ is None else _json_str(type_)


def _json_ttl(row: KeyRow) -> str:
    return "null" if row.pttl_ms is None or row.pttl_ms < 0 else repr(row.pttl_ms / 1000)


def _json_params(row: KeyRow) -> str:
    return row.params_json or ("null" if row.params is None else _json_obj(row.params))


def key_row_serializer(fields: tuple[str, ...] = FIELDS) -> Callable[[KeyRow], str]:
    """A row as one JSON line holding the key and `fields` (what `row.to_dict(fields)` says)."""
    if tuple(fields) == FIELDS:
        return key_row_json
    type_, ttl, size, endpoint, params = (f in fields for f in FIELDS)

    def row_json(row: KeyRow) -> str:
        line = '{"key":' + _json_str(row.shown)
        if type_:
            line += ',"type":' + _json_type(row.type)
        if ttl:
            line += ',"ttl_seconds":' + _json_ttl(row)
        if size:
            line += ',"size_bytes":' + ("null" if row.size_bytes is None else str(row.size_bytes))
        if endpoint:
            line += ',"endpoint":' + ("null" if row.endpoint is None else _json_str(row.endpoint))
        if params:
            line += ',"params":' + _json_params(row)
        return line + "}"

    return row_json


class StreamedListing:
    """Writes rows as they come, in the mode the output asks for; `finish` closes the listing.

    `to_json` turns a row into a JSON text; `table_row` into the cells of a people's table whose
    columns are `columns` (name, width or None for the flexible one, justify).
    """

    def __init__(
        self,
        out: Output,
        *,
        jsonl: bool,
        to_json: Callable[[Any], str],
        columns: list[tuple[str, int | None, str]],
        table_row: Callable[[Any], list[Any]],
    ):
        self.out = out
        self.jsonl = jsonl
        self.to_json = to_json
        self.columns = columns
        self.table_row = table_row
        self.count = 0
        self._buffer: list[Any] = []
        self._header_done = False
        self._widths = [len(name) for name, _, _ in columns]

    def write_all(self, rows: Iterable[Any]) -> None:
        """Writes the rows (`--jsonl` and `--json` need an Output in json mode)."""
        if self.jsonl:
            self._write_lines(rows, sep="\n", end="\n")
        elif self.out.json_mode:
            self._write_json_start()
            self._write_lines(rows, sep=",", end="")
        else:
            for row in rows:
                self._buffer.append(row)
                self.count += 1
                if len(self._buffer) >= self._table_page():
                    self._flush_table()
            self._flush_table()

    def _write_lines(self, rows: Iterable[Any], sep: str, end: str) -> None:
        stream = self.out.stdout
        to_json = self.to_json
        chunk: list[str] = []
        try:
            for row in rows:
                chunk.append(to_json(row))
                if len(chunk) >= ROWS_PER_FLUSH:
                    self._write_chunk(stream, chunk, sep, end)
                    chunk = []
        finally:
            # Rows already read are written even when the listing is cut short.
            if chunk:
                self._write_chunk(stream, chunk, sep, end)

    def _write_chunk(self, stream, chunk: list[str], sep: str, end: str) -> None:
        lead = sep if self.count and sep != "\n" else ""
        stream.write(lead + sep.join(chunk) + end)
        stream.flush()
        self.count += len(chunk)

    def _write_json_start(self) -> None:
        head = {"command": self.out.command, "schema_version": JSON_SCHEMA_VERSION}
        self.out.stdout.write(dumps(head)[:-1] + ',"data":[')

    def finish(self, summary: dict | None = None, error: CachectlError | None = None) -> None:
        """Closes the listing: the `--json` envelope gets `ok`, the summary and any error."""
        if self.jsonl or not self.out.json_mode:
            if error is None or self._buffer or self._header_done:
                self._flush_table()  # not a header over no rows when the listing failed
            return
        tail = {"ok": error is None, "summary": summary}
        if error is not None:
            tail["error"] = error.to_dict()
        self.out.stdout.write("]," + dumps(tail)[1:] + "\n")
        self.out.stdout.flush()

    def _table_page(self) -> int:
        # A first screenful quickly on a terminal; bigger pages after that keep it cheap.
        return 50 if not self._header_done else ROWS_PER_FLUSH

    def _flush_table(self) -> None:
        if self.jsonl or self.out.json_mode or (not self._buffer and self._header_done):
            return
        from rich import box
        from rich.table import Table

        rows = [self.table_row(row) for row in self._buffer]
        on_terminal = self.out.is_terminal
        if not on_terminal:
            # For logs: each column as wide as its widest cell so far (pages stay aligned as
            # long as no later row is wider), never padded to a guessed screen width.
            for i, cells in enumerate(zip(*rows)):
                self._widths[i] = max(self._widths[i], *(_cell_width(c) for c in cells))
        table = Table(
            box=box.SIMPLE_HEAD if not self._header_done else None,
            show_header=not self._header_done,
            show_edge=False,
            pad_edge=False,
            expand=on_terminal,
        )
        for i, (name, width, justify) in enumerate(self.columns):
            if not on_terminal:
                table.add_column(name, width=self._widths[i], justify=justify, no_wrap=True)
                continue
            table.add_column(
                name,
                width=width,
                min_width=width,
                justify=justify,
                no_wrap=width is not None,
                overflow="fold" if width is None else "ellipsis",
                ratio=1 if width is None else None,
            )
        for cells in rows:
            table.add_row(*cells)
        self.out.print(table)
        self._buffer = []
        self._header_done = True


def _cell_width(cell: Any) -> int:
    from rich.cells import cell_len

    return cell_len(cell.plain if hasattr(cell, "plain") else str(cell))


def _key_cells(row: KeyRow) -> dict[str, Any]:
    from rich.text import Text

    ttl = (
        "no expiry"
        if row.pttl_ms is None or row.pttl_ms < 0
        else human_duration(row.pttl_ms / 1000)
    )
    # An endpoint read out of a key may hold control characters: shown escaped, never as markup.
    endpoint = "?" if row.endpoint is None else safe_text(row.endpoint)
    return {
        "key": Text(row.shown),
        "type": Text(row.type or "?", style="" if row.type == "string" else "yellow"),
        "ttl": Text(ttl, style="yellow" if row.pttl_ms is not None and row.pttl_ms < 0 else ""),
        "size": human_bytes(row.size_bytes),
        "endpoint": Text(endpoint, style="cyan"),
        "params": Text(
            "?" if row.params is None and row.params_json is None else safe_text(_json_params(row))
        ),
    }


def key_table_row(row: KeyRow, fields: tuple[str, ...] = FIELDS) -> list[Any]:
    cells = _key_cells(row)
    return [cells[name] for name, _, _ in key_columns(fields)]


KEY_COLUMNS = [
    ("key", None, "left"),
    ("type", 6, "left"),
    ("ttl", 10, "right"),
    ("size", 10, "right"),
    ("endpoint", 18, "left"),
]


def key_columns(fields: tuple[str, ...] = FIELDS) -> list[tuple[str, int | None, str]]:
    """The table's columns: the key and each field asked for. The params are read off the key
    column itself, so they get a column of their own only when `--fields` names them."""
    columns = [c for c in KEY_COLUMNS if c[0] == "key" or c[0] in fields]
    if "params" in fields and tuple(fields) != FIELDS:
        columns.append(("params", 30, "left"))
    return columns


def key_listing(out: Output, *, jsonl: bool, fields: tuple[str, ...] = FIELDS) -> StreamedListing:
    fields = tuple(fields)
    return StreamedListing(
        out,
        jsonl=jsonl,
        to_json=key_row_serializer(fields),
        columns=key_columns(fields),
        table_row=lambda row: key_table_row(row, fields),
    )


def stream_listing(
    out: Output,
    view: StreamedListing,
    rows: Iterable[Any],
    summary: Callable[[], dict],
    what: str,
    notes: Callable[[], list[str]] = list,
) -> CachectlError | None:
    """Writes every row and closes the listing however it ends. Returns the error that cut it
    short (Ctrl-C included) after closing the output around it, for the caller to exit with."""
    from cachectl.errors import Interrupted

    error: CachectlError | None = None
    try:
        view.write_all(rows)
    except CachectlError as exc:
        error = exc
    except KeyboardInterrupt:
        error = Interrupted("interrupted: the listing above is incomplete")
    finally:
        close = getattr(rows, "close", None)
        if close:
            close()
    view.finish(summary(), error)
    if not out.json_mode and (error is None or view.count):
        extra = notes() + ([] if error is None else ["cut short"])
        out.info(f"{view.count:,} {what}" + (f" ({'; '.join(extra)})" if extra else ""))
    return error
