"""People's view of `cachectl inspect`."""

from __future__ import annotations

import json
import re
import time

from cachectl.keytext import safe_text
from cachectl.ops.inspect import PREVIEW_LINE_CHARS, PREVIEW_LINES, Inspection, Value
from cachectl.render.output import Output, plain
from cachectl.render.units import human_bytes, human_duration

# Control characters other than newline and tab would drive the terminal; shown escaped.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1 = re.compile(r"[\x7f-\x9f]")


def render_inspection(out: Output, found: Inspection, *, full: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    facts = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    facts.add_column("what", style="bold")
    facts.add_column("value", overflow="fold")
    facts.add_row("key", Text(found.key))
    encoding = f" ({found.encoding})" if found.encoding else ""
    facts.add_row("type", plain(f"{found.type}{encoding}"))
    facts.add_row(
        "ttl",
        "no expiry"
        if found.ttl_seconds is None
        else f"{human_duration(found.ttl_seconds)} ({_seconds(found.ttl_seconds)} s)",
    )
    facts.add_row(
        "memory",
        _refused(found, "size_bytes") or "?"
        if found.size_bytes is None
        else f"{human_bytes(found.size_bytes)} ({found.size_bytes:,} bytes)",
    )
    if found.lfu_frequency is not None:
        facts.add_row("access frequency", f"{found.lfu_frequency} (LFU counter)")
    elif found.idle_seconds is not None:
        facts.add_row("idle", human_duration(found.idle_seconds) if found.idle_seconds else "0 s")
    if found.is_entry:
        facts.add_row("endpoint", Text(safe_text(found.endpoint or "?")))
        facts.add_row(
            "params",
            Text(
                "?"
                if found.params is None
                else _json_text(json.dumps(found.params, ensure_ascii=False))
            ),
        )
        facts.add_row("last write", _refused(found, "last_write_ms") or _when(found.last_write_ms))
        facts.add_row(
            "last access", _refused(found, "last_access_ms") or _when(found.last_access_ms)
        )
    # Asked for with --tags: each kind is listed, or said to be unknown when its read was refused.
    if (
        found.tags is not None
        or found.dependencies is not None
        or ({"tags", "dependencies"} & found.refused.keys())
    ):
        for figure in ("tags", "dependencies"):
            names = getattr(found, figure)
            facts.add_row(
                figure, _refused(found, figure) or Text(", ".join(names or []) or "(none)")
            )
    out.print(facts)
    for note in found.notes:
        out.print(Text(f"note: {note}", style="yellow"))
    if found.value is not None:
        out.print()
        _value(out, found.value, full=full)


def _seconds(value: float) -> str:
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _refused(found, figure: str) -> str | None:
    """ "unknown (ZSCORE refused)" for a figure the ACL user could not read, else None."""
    command = found.refused.get(figure)
    return None if command is None else f"unknown ({command} refused)"


def _when(ms: int | None) -> str:
    if ms is None:
        return "not in the log"
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000))
    ago = time.time() - ms / 1000
    return f"{stamp} ({human_duration(ago)} ago)" if ago >= 0 else f"{stamp} (in the future)"


def _value(out: Output, value: Value, *, full: bool) -> None:
    from rich.syntax import Syntax
    from rich.text import Text

    if value.type != "string":
        noun = {
            "hash": "fields",
            "set": "members",
            "zset": "members",
            "list": "elements",
            "stream": "entries",
        }.get(value.type, "items")
        out.print(Text(f"value: {value.type} of {value.length:,} {noun}", style="bold"))
        for item in value.items or []:
            out.print(Text("  " + "  ".join(_safe(i) for i in item)))
        if not value.whole:
            out.print(
                Text(
                    f"  ... {value.length - len(value.items or []):,} more (--full shows all)",
                    style="dim",
                )
            )
        return
    out.print(Text(f"value: {value.format}, {human_bytes(value.length)}", style="bold"))
    if value.format == "json" and value.json is not None:
        text = _json_text(json.dumps(value.json, indent=2, ensure_ascii=False))
        lexer = "json"
    else:
        text = value.text if value.format == "binary" else _safe(value.text or "")
        lexer = None
    lines = text.splitlines()
    shown = lines if full else lines[:PREVIEW_LINES]
    cut = 0
    if not full:
        # One minified JSON line can be megabytes long.
        cut = sum(1 for line in shown if len(line) > PREVIEW_LINE_CHARS)
        shown = [
            line if len(line) <= PREVIEW_LINE_CHARS else line[:PREVIEW_LINE_CHARS] + " …"
            for line in shown
        ]
    body = "\n".join(shown)
    if lexer and out.color:
        out.print(
            Syntax(body, lexer, theme="ansi_dark", word_wrap=True, background_color="default")
        )
    else:
        out.print(Text(body))
    hidden_lines = len(lines) - len(shown)
    if hidden_lines > 0 or cut or not value.whole:
        more = []
        if hidden_lines > 0:
            more.append(f"{hidden_lines:,} more lines")
        if cut:
            more.append(f"{cut} long line{'s' if cut > 1 else ''} cut")
        if not value.whole:
            more.append(f"{human_bytes(value.length)} in all, only the start was read")
        out.print(Text(f"... {', '.join(more)} (--full shows all)", style="dim"))


def _json_text(text: str) -> str:
    """JSON text for a terminal: json.dumps leaves DEL and the C1 controls (U+0080 to U+009F)
    as they are, and some terminals act on them; written as \\u escapes, it is the same JSON."""
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _safe(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
