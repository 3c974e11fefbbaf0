"""Cache keys read back: entry keys into endpoint and params (`EntryParser`, fast for the common
case), the literal prefixes of the keys the cache owns, and Redis globs as regexes
(`glob_to_regex`, for keys that come from a set rather than a SCAN MATCH).

The layout (`cachectl.layout`) writes the names; this reads them, and tests hold that both agree.
"""

from __future__ import annotations

import json
import json.scanner
import re
from typing import Any

from cachectl.keytext import show_bytes
from cachectl.layout import NO_PARAMS, STRICT_JSON, Layout, js_sort_key

# --- parsing entry keys ----------------------------------------------------------------------


# The strict reader's scanner itself, as raw_decode calls it (one Python frame less per value: a
# million keys pass through here): (value, end) from a position, StopIteration when no value
# starts there, ValueError for a bad one.
_scan_json_value = json.scanner.make_scanner(STRICT_JSON)


class EntryParser:
    """Entry keys read back into endpoint and params, as `Layout.parse_entry` reads them.

    `parse_entry` tries every split of a key and both encodings; listing a million keys through
    it costs seconds. Most keys are read by its first attempt (endpoint up to the first `:`, the
    params in the configured `json` encoding), which this reads directly with the same strict
    JSON reader, value by value; anything else goes to `parse_entry` itself. Tests hold that both
    give the same answer.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self._root_length = len(layout.entry_root)
        self._fast = not layout.versioned and layout.config.param_encoding == "json"

    def parse(self, key: bytes, text: str | None = None) -> Parsed:
        """(endpoint, params, params as JSON text or None) of an entry key; params is None when
        unreadable, and everything None when `key` is not an entry. `text` is the key decoded
        as UTF-8, when it decodes."""
        if self._fast and text is not None:
            parsed = _parse_json_params(text[self._root_length :])
            if parsed is not None:
                return parsed
        if text is None:
            return self._parse_undecodable(key)
        slow = self.layout.parse_entry(key)
        return (None, None, None) if slow is None else (slow.endpoint, slow.params, None)

    def endpoint(self, key: bytes, text: str | None = None) -> str | None:
        """The endpoint alone, as `parse` reads it, a little faster."""
        if self._fast and text is not None:
            endpoint = _parse_json_params(text[self._root_length :], build=False)
            if endpoint is not None:
                return endpoint[0]
        if text is None:
            return self._parse_undecodable(key)[0]
        slow = self.layout.parse_entry(key)
        return None if slow is None else slow.endpoint

    def _parse_undecodable(self, key: bytes) -> Parsed:
        """A key that is not UTF-8, read with its stray bytes kept (not replaced by U+FFFD, which
        would make two endpoints one): every name and text in the answer is escaped as
        `show_bytes` escapes the key itself, so `\\xff` in an endpoint is the byte 0xff."""
        slow = self.layout.parse_entry(key.decode("utf-8", "surrogateescape"))
        if slow is None:
            return None, None, None
        return show_bytes(slow.endpoint), _escaped_texts(slow.params), None


Parsed = tuple[str | None, dict | None, str | None]


def _escaped_texts(value: Any) -> Any:
    if isinstance(value, str):
        return show_bytes(value)
    if isinstance(value, dict):
        return {show_bytes(k): _escaped_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped_texts(v) for v in value]
    return value


_json_str = json.encoder.encode_basestring  # C; json.dumps(s, ensure_ascii=False) without the rest


def _parse_json_params(rest: str, build: bool = True) -> Parsed | None:
    """(endpoint, params, params as JSON text) of `rest` split at its first `:`, the params in
    the `json` encoding, or None when they do not read so (`parse_entry` then decides)."""
    endpoint, sep, raw = rest.partition(":")
    if not sep:
        return None
    if raw == NO_PARAMS:
        return endpoint, {}, "{}"
    scan = _scan_json_value
    if "|" not in raw:
        # One param, the most common shape: no order to check.
        name, sep, value = raw.partition(":")
        if not sep:
            return None
        try:
            parsed, end = scan(value, 0)
        except (StopIteration, ValueError):
            return None
        if end != len(value):
            return None
        if not build:
            return endpoint, None, None
        return endpoint, {name: parsed}, "{" + _json_str(name) + ":" + value + "}"
    params: dict[str, Any] = {}
    members = []
    last = None
    ascii_names = raw.isascii()
    for piece in raw.split("|"):
        # A "|" inside a string value cuts it short: the piece then fails to read as one whole
        # JSON value and the key goes to parse_entry.
        name, sep, value = piece.partition(":")
        if not sep:
            return None
        try:
            parsed, end = scan(value, 0)
        except (StopIteration, ValueError):
            return None
        if end != len(value):
            return None
        if last is not None:
            # ASCII names sort by UTF-16 code units exactly as Python compares them.
            ordered = name > last if ascii_names else js_sort_key(name) > js_sort_key(last)
            if not ordered:
                return None
        if build:
            params[name] = parsed
            # The value's text is JSON already (JSON.stringify wrote it): not written again.
            members.append(_json_str(name) + ":" + value)
        last = name
    return endpoint, params, ("{" + ",".join(members) + "}") if build else None


def owned_prefixes(layout: Layout) -> tuple[bytes, ...]:
    """The literal start of every key the cache owns (the logs' whole names among them), read
    from the layout's own SCAN patterns: enough for a server-side script to tell the cache's
    keys from the rest; `Layout.kind` still says which is which."""
    prefixes = []
    for pattern in layout.owned_patterns():
        trailing_backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
        if pattern.endswith("*") and trailing_backslashes % 2 == 0:
            pattern = pattern[:-1]
        prefixes.append(re.sub(r"\\(.)", r"\1", pattern, flags=re.DOTALL).encode())
    return tuple(prefixes)


def entry_prefix_is_shared(layout: Layout) -> bool:
    """Whether a key that is not an entry can start with the entry prefix (a layout whose tag or
    metrics prefix nests inside it); if not, the prefix alone says a key is an entry."""
    root = layout.entry_root.encode()
    return any(p != root and p.startswith(root) for p in owned_prefixes(layout))


# --- Redis globs -----------------------------------------------------------------------------


def glob_to_regex(glob: bytes) -> re.Pattern[bytes]:
    """A compiled regex matching what Redis's stringmatchlen matches for `glob` (`*`, `?`,
    `[abc]`, `[^a-z]`, `\\x`), for keys that come from a set rather than a SCAN MATCH."""
    out = []
    i = 0
    while i < len(glob):
        c = glob[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i : i + 1]))
        elif c == b"[":
            end, body = _glob_class(glob, i + 1)
            out.append(body)
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"(?s:" + b"".join(out) + b")\\Z")


def _glob_class(glob: bytes, i: int) -> tuple[int, bytes]:
    """Reads a `[...]` class from `i` (just after `[`); returns where it ends and its regex.
    Like Redis, an unclosed class runs to the end of the pattern."""
    negate = glob[i : i + 1] == b"^"
    if negate:
        i += 1
    parts = []
    while i < len(glob) and glob[i : i + 1] != b"]":
        c = glob[i : i + 1]
        if c == b"\\" and i + 1 < len(glob):
            i += 1
            c = glob[i : i + 1]
        if glob[i + 1 : i + 2] == b"-" and i + 2 < len(glob) and glob[i + 2 : i + 3] != b"]":
            end = glob[i + 2 : i + 3]
            if end == b"\\" and i + 3 < len(glob):
                i += 1
                end = glob[i + 2 : i + 3]
            low, high = sorted((c, end))
            parts.append(re.escape(low) + b"-" + re.escape(high))
            i += 3
            continue
        parts.append(re.escape(c))
        i += 1
    body = b"".join(parts)
    if not body:
        # "[]" matches nothing in Redis; "[^]" anything.
        return i, b"." if negate else b"(?!)"
    return i, b"[" + (b"^" if negate else b"") + body + b"]"
