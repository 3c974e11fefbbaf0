"""`cachectl inspect`: one key, everything about it.

The key comes as typed (or as `keys` showed it, escapes and all), or is built from an endpoint and
params by the layout. Its figures come in one pipelined round trip; its last write and last
access from the write and access logs; with `tags`, the tag and dependency sets naming it are
found by scanning those sets (every primary) and asking each whether it holds the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cachectl.errors import CachectlError, NotFoundError, RedisPermissionError, UsageError
from cachectl.keytext import reply_text, show_bytes, unshow_bytes
from cachectl.layout import STRICT_JSON, Layout, parse_cli_param
from cachectl.layout_parse import EntryParser

if TYPE_CHECKING:
    from cachectl.store import Pacer, Store

# Without --full: at most this much of a string value is read, and of a collection this many
# items; people see at most PREVIEW_LINES lines of it, each cut at PREVIEW_LINE_CHARS.
VALUE_READ_LIMIT = 64 * 1024
ITEMS_LIMIT = 20
PREVIEW_LINES = 40
PREVIEW_LINE_CHARS = 400


_READS = {
    "hash": ("HLEN", "HSCAN"),
    "set": ("SCARD", "SSCAN"),
    "zset": ("ZCARD", None),
    "list": ("LLEN", None),
    "stream": ("XLEN", None),
}


@dataclass
class Value:
    """A key's value as read. For a string: `text` (escaped when not UTF-8, shortened to the read
    limit unless whole) and `json` when it is whole and valid JSON. For a collection: `items`, the
    first ITEMS_LIMIT of them (all with --full) as [member] or [field/member, value/score]."""

    type: str
    length: int  # bytes of a string; members, fields or elements of a collection
    whole: bool = True  # False when only the start was read
    format: str | None = None  # string values: "json", "text" or "binary"
    text: str | None = None
    json: Any = None
    items: list[list[str]] | None = None

    def to_dict(self) -> dict:
        out = {
            "type": self.type,
            "length": self.length,
            "whole": self.whole,
        }
        if self.type == "string":
            out.update(format=self.format, text=self.text, json=self.json)
        else:
            out["items"] = self.items
        return out


@dataclass
class Inspection:
    key: str  # as show_bytes shows it
    type: str
    encoding: str | None = None
    ttl_seconds: float | None = None  # None: no expiry
    size_bytes: int | None = None  # MEMORY USAGE
    idle_seconds: int | None = None
    lfu_frequency: int | None = None  # under an LFU policy Redis keeps this instead of idle time
    is_entry: bool = False
    endpoint: str | None = None
    params: dict | None = None
    last_write_ms: int | None = None
    last_access_ms: int | None = None
    value: Value | None = None
    tags: list[str] | None = None  # tag names; None when not asked for (or refused)
    dependencies: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    # The figures the ACL user could not read, each with the command refused: such a figure is
    # None because it is unknown, not because it is absent (a note says so too).
    refused: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "type": self.type,
            "encoding": self.encoding,
            "ttl_seconds": self.ttl_seconds,
            "size_bytes": self.size_bytes,
            "idle_seconds": self.idle_seconds,
            "lfu_frequency": self.lfu_frequency,
            "is_entry": self.is_entry,
            "endpoint": self.endpoint,
            "params": self.params,
            "last_write_ms": self.last_write_ms,
            "last_access_ms": self.last_access_ms,
            "value": self.value.to_dict() if self.value else None,
            "tags": self.tags,
            "dependencies": self.dependencies,
            "notes": self.notes,
            "refused": self.refused,
        }


def entry_key(layout: Layout, endpoint: str, params: list[str]) -> str:
    """The entry key of `--endpoint E --param k=v ...`, params read as docs/keyspace.md says."""
    parsed: dict[str, Any] = {}
    for text in params:
        name, value = parse_cli_param(text)
        if name in parsed:
            raise UsageError(f"param {name!r} is given twice")
        parsed[name] = value
    return layout.entry(endpoint, parsed)


def inspect_key(
    store: Store,
    layout: Layout,
    key: str | None = None,
    *,
    endpoint: str | None = None,
    params: list[str] = (),
    full: bool = False,
    with_tags: bool = False,
    pacer: Pacer | None = None,
) -> Inspection:
    if key is None and endpoint is None:
        raise UsageError("name a KEY, or an --endpoint (with its --param name=value)")
    if key is not None and (endpoint is not None or params):
        raise UsageError("name either a KEY or an --endpoint with --param, not both")
    if params and endpoint is None:
        raise UsageError("--param needs --endpoint")
    if key is None:
        raw = entry_key(layout, endpoint, list(params)).encode()
        found = _figures(store, raw)
        if found is None:
            raise NotFoundError(
                f"no entry {show_bytes(raw)} (endpoint {endpoint!r}, params as given)",
                hint=f"list what the endpoint has with: cachectl keys --endpoint '{endpoint}'",
            )
    else:
        raw, found = _find(store, key)
    inspection = found
    _describe_entry(layout, raw, inspection)
    _logs(store, layout, raw, inspection)
    inspection.value = _value(store, raw, inspection.type, full)
    if with_tags:
        for figure, pattern, prefix, kind in (
            ("tags", layout.tag_pattern(), layout.tag(""), "tag"),
            ("dependencies", layout.dependency_pattern(), layout.dependency(""), "dependency"),
        ):
            try:
                names = _sets_naming(store, pattern, prefix, raw, pacer)
            except RedisPermissionError as error:
                # The other kind of set may still be readable: shown, with this one unknown.
                _unknown(
                    inspection, [figure], error, f"the {kind} sets could not be read", on=pattern
                )
            else:
                setattr(inspection, figure, names)
    return inspection


def _find(store: Store, typed: str) -> tuple[bytes, Inspection]:
    """The key typed in the escaped form every listing prints (`\\xff`, `\\n`, `\\\\`): one
    reading only, so a printed key never finds another key that happens to be spelled so."""
    raw = unshow_bytes(typed)
    found = _figures(store, raw)
    if found is None:
        raise NotFoundError(f"no key {show_bytes(raw)}")
    return raw, found


def _figures(store: Store, raw: bytes) -> Inspection | None:
    replies = store.send_many(
        [
            ("TYPE", raw),
            ("PTTL", raw),
            ("MEMORY", "USAGE", raw),
            ("OBJECT", "ENCODING", raw),
            ("OBJECT", "IDLETIME", raw),
        ]
    )
    for reply in replies[:2]:
        if isinstance(reply, CachectlError):
            raise reply
    type_ = reply_text(replies[0])
    pttl = replies[1]
    if type_ == "none" or pttl == -2:
        return None
    inspection = Inspection(
        key=show_bytes(raw),
        type=type_,
        ttl_seconds=None if pttl < 0 else pttl / 1000,
        size_bytes=_ok(replies[2]),
        encoding=reply_text(_ok(replies[3])) if _ok(replies[3]) is not None else None,
        idle_seconds=_ok(replies[4]),
    )
    # These figures are extras: one the ACL refuses is left unknown, and said to be.
    for figure, what, reply in (
        ("size_bytes", "memory unknown", replies[2]),
        ("encoding", "encoding unknown", replies[3]),
        ("idle_seconds", "idle time unknown", replies[4]),
    ):
        if isinstance(reply, RedisPermissionError):
            _unknown(inspection, [figure], reply, what)
    if isinstance(replies[4], CachectlError) and "lfu" in replies[4].message.lower():
        # An LFU policy tracks access frequency instead of idle time.
        inspection.lfu_frequency = _ok(store.send_many([("OBJECT", "FREQ", raw)])[0])
    return inspection


def _describe_entry(layout: Layout, raw: bytes, inspection: Inspection) -> None:
    kind = layout.kind(raw)
    inspection.is_entry = kind == "entry"
    if kind == "entry":
        try:
            text = raw.decode()
        except UnicodeDecodeError:
            text = None
        endpoint, params, _ = EntryParser(layout).parse(raw, text)
        inspection.endpoint, inspection.params = endpoint, params
        if params is None:
            inspection.notes.append("the params part of this key could not be read back")
        if inspection.type != "string":
            inspection.notes.append(
                f"cache entries are strings; this key in the entry prefix is a {inspection.type}"
            )
    elif kind is None:
        inspection.notes.append("this key is outside the cache's prefixes")


def _logs(store: Store, layout: Layout, raw: bytes, inspection: Inspection) -> None:
    if not inspection.is_entry:
        return
    logs = [layout.entries_log(), layout.access_log()]
    written, accessed = store.send_many([("ZSCORE", log, raw) for log in logs])
    inspection.last_write_ms = _score(written)
    inspection.last_access_ms = _score(accessed)
    # A refused ZSCORE is not "not in the log": the time is unknown, and said to be.
    refused = [
        (f, r, log)
        for f, r, log in zip(("last_write_ms", "last_access_ms"), (written, accessed), logs)
        if isinstance(r, RedisPermissionError)
    ]
    if len(refused) == 2 and refused[0][1].message == refused[1][1].message:
        # One refusal of the command for both logs: said once.
        _unknown(
            inspection,
            [f for f, _, _ in refused],
            refused[0][1],
            "last write and last access unknown",
            on=" and ".join(logs),
        )
    else:
        for figure, error, log in refused:
            what = "last write" if figure == "last_write_ms" else "last access"
            _unknown(inspection, [figure], error, f"{what} unknown", on=log)


def _value(store: Store, raw: bytes, type_: str, full: bool) -> Value:
    if type_ == "string":
        return _string_value(store, raw, full)
    if type_ not in _READS:
        return Value(type_, 0, whole=False, items=[])  # a module type: nothing generic to read
    size_command, _ = _READS[type_]
    length = store.execute(size_command, raw)
    limit = None if full else ITEMS_LIMIT
    items = _items(store, raw, type_, limit)
    return Value(type_, length, whole=limit is None or length <= limit, items=items)


def _string_value(store: Store, raw: bytes, full: bool) -> Value:
    length = store.execute("STRLEN", raw)
    whole = full or length <= VALUE_READ_LIMIT
    data = (
        store.execute("GET", raw)
        if whole
        else store.execute("GETRANGE", raw, 0, VALUE_READ_LIMIT - 1)
    )
    data = data or b""
    value = Value("string", length, whole=whole)
    text = _utf8(data, cut=not whole)
    if text is None:
        value.format = "binary"
        value.text = show_bytes(data)
        return value
    value.text = text
    value.format = "text"
    if whole:
        try:
            # NaN and Infinity are not JSON: such a value is shown as text, never re-emitted.
            value.json = STRICT_JSON.decode(text)
            value.format = "json"
        except ValueError:
            pass
    elif text.lstrip()[:1] in ("{", "["):
        value.format = "json"  # most likely: its start reads so, and entries are JSON
    return value


def _utf8(data: bytes, *, cut: bool) -> str | None:
    """`data` as UTF-8 text, or None. A read that stopped short may have cut the last character
    in two: up to three bytes at the end may then be dropped."""
    for trim in range(4 if cut else 1):
        try:
            return data[: len(data) - trim].decode()
        except UnicodeDecodeError:
            continue
    return None


def _items(store: Store, raw: bytes, type_: str, limit: int | None) -> list[list[str]]:
    stop = -1 if limit is None else limit - 1
    if type_ == "list":
        return [[show_bytes(v)] for v in store.execute("LRANGE", raw, 0, stop)]
    if type_ == "zset":
        reply = store.execute("ZRANGE", raw, 0, stop, "WITHSCORES")
        return [[show_bytes(m), reply_text(s)] for m, s in _pairs(reply)]
    if type_ == "stream":
        reply = store.execute("XRANGE", raw, "-", "+", *(() if limit is None else ("COUNT", limit)))
        return [[reply_text(entry_id), show_bytes(b" ".join(fields))] for entry_id, fields in reply]
    command = _READS[type_][1]
    out: list[list[str]] = []
    cursor = 0
    while True:
        cursor, page = store.execute(command, raw, cursor, "COUNT", 100)
        if type_ == "hash":
            out += [[show_bytes(f), show_bytes(v)] for f, v in _pairs(page)]
        else:
            out += [[show_bytes(m)] for m in page]
        if int(cursor) == 0 or (limit is not None and len(out) >= limit):
            return out if limit is None else out[:limit]


def _sets_naming(
    store: Store, pattern: str, prefix: str, raw: bytes, pacer: Pacer | None
) -> list[str]:
    """Names of the sets matching `pattern` that hold `raw`: each SCAN page of sets is asked
    with one pipelined SISMEMBER per set."""
    names = set()
    for _, keys in store.scan_nodes(match=pattern, type="set", pacer=pacer):
        if not keys:
            continue
        for key, held in zip(keys, store.pipelined("SISMEMBER", keys, raw)):
            if held:
                names.add(show_bytes(key[len(prefix.encode()) :]))
    return sorted(names)


def _unknown(
    inspection: Inspection,
    figures: list[str],
    error: RedisPermissionError,
    what: str,
    on: str | None = None,
) -> None:
    """Figures the ACL refused: marked refused, with a note saying why they are missing.
    `on` names the keys the command was sent to (an ACL may refuse a command on some keys
    only: the note is true whichever it was)."""
    for figure in figures:
        inspection.refused[figure] = error.command or "?"
    inspection.notes.append(f"{what}: {error.message}" + (f" on {on}" if on else ""))


def _pairs(flat: list | dict) -> list[tuple]:
    if isinstance(flat, dict):  # redis-py's HSCAN reply
        return list(flat.items())
    if flat and isinstance(flat[0], (list, tuple)):
        return [tuple(p) for p in flat]  # RESP3 pairs
    return list(zip(flat[0::2], flat[1::2]))


def _ok(reply: Any) -> Any:
    return None if isinstance(reply, CachectlError) else reply


def _score(reply: Any) -> int | None:
    if reply is None or isinstance(reply, CachectlError):
        return None
    return int(float(reply))
