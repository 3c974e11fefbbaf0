"""The one escaping of keys, printed by every command that shows a key and read back by every
command that takes one (`inspect KEY`, `invalidate --key`): `show_bytes` and `unshow_bytes`.

    \\\\ a backslash    \\n \\r \\t those controls    \\xHH any byte    \\uHHHH a character (read only)

A key that is UTF-8 with no control character and no backslash is printed as it is; any other key
is printed escaped, its own backslashes doubled. So a printed key reads back to exactly one key,
and `\\n`, `\\x0a` and `\\x0A` read alike. A backslash that starts no escape is refused, never
guessed at. Imports nothing heavy: the manifest, the renderers and the CLI use it alike.
"""

from __future__ import annotations

import re

from cachectl.errors import UsageError

# C0 and C1 controls and DEL would move a terminal's cursor or worse.
_UNSAFE_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NEEDS_ESCAPES = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE_SEQUENCE = re.compile(rb"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[nrt\\]|.?)", re.DOTALL)
_UNESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"\\": b"\\"}


def show_bytes(raw: bytes | str) -> str:
    """A key (or a value) as printed: as it is when it is UTF-8 without control characters or
    backslashes, else with backslash escapes (`\\xff`, `\\n`, `\\\\`) that `unshow_bytes` reads
    back to the same bytes."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogateescape")
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return _escaped(raw)
    return _escaped(raw) if _NEEDS_ESCAPES.search(text) else text


def _escaped(raw: bytes) -> str:
    text = raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")
    return _UNSAFE_CHARS.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    # A C1 control is two bytes of UTF-8: \u0085 reads back to them, \x85 would not.
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}")


def reply_text(reply: object) -> str:
    """A word the server made (a TYPE, an object encoding, a run_id, a score, a stream ID) as
    text. Such words are ASCII; a byte that is not UTF-8 becomes U+FFFD rather than an error.
    Keys and values are not words: they go through `show_bytes`."""
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)


def safe_text(text: str) -> str:
    """`text` for a terminal: control characters escaped (`\\x1b`), the rest as it is. For
    names read out of a key (an endpoint, a param) that are shown apart from the key."""
    return _UNSAFE_CHARS.sub(_escape_char, text) if _UNSAFE_CHARS.search(text) else text


def unshow_bytes(text: str) -> bytes:
    """The bytes of a key as printed (or typed) with the escapes `show_bytes` writes. A backslash
    that starts no escape is a UsageError (exit 2) rather than a guess: `\\\\` is a backslash."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\\" not in raw:
        return raw

    def unescape(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1] == b"x" and len(code) == 3:
            return bytes([int(code[1:], 16)])
        if code[:1] == b"u" and len(code) == 5 and not 0xD800 <= int(code[1:], 16) <= 0xDFFF:
            return chr(int(code[1:], 16)).encode()
        if code in _UNESCAPES:
            return _UNESCAPES[code]
        at = safe_text(match.group(0).decode("utf-8", "backslashreplace"))
        where = f"the key {safe_text(raw.decode('utf-8', 'backslashreplace'))}"
        if not code:
            raise UsageError(f"{where} ends in a lone backslash: write \\\\ for a backslash")
        raise UsageError(
            f"{where} holds {at}, which starts no escape: write \\\\ for a backslash, "
            "\\xHH for a byte, \\n \\r \\t for those controls"
        )

    return _ESCAPE_SEQUENCE.sub(unescape, raw)


_GLOB_SPECIAL = frozenset(b"*?[]\\")
_PATTERN_ESCAPE = re.compile(rb"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|[nrt]|.?)", re.DOTALL)


def glob_from_shown(text: str) -> str:
    """A glob typed with the escapes keys are printed with (`\\xff`, `\\n`, `\\u00e9`), as the
    glob SCAN MATCH takes: each such escape becomes its byte (a glob character made so, such
    as `\\x2a`, stands for itself), while the glob's own escapes (`\\*`, `\\?`, `\\[`, `\\\\`)
    stay as they are. So `api_cache:bin:\\xff*` finds the keys `keys` prints that way.
    Returned as text whose undecodable bytes are surrogate escapes (`.encode("utf-8",
    "surrogateescape")` gives the bytes)."""
    raw = text.encode("utf-8", "surrogateescape")
    if b"\\" not in raw:
        return text

    def unescape(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code[:1] == b"x" and len(code) == 3:
            byte = int(code[1:], 16)
        elif code[:1] == b"u" and len(code) == 5 and not 0xD800 <= int(code[1:], 16) <= 0xDFFF:
            return _glob_literal(chr(int(code[1:], 16)).encode())
        elif code in _UNESCAPES and code != b"\\":
            byte = _UNESCAPES[code][0]
        else:
            return match.group(0)  # the glob's own escape (or a lone backslash): as typed
        return _glob_literal(bytes([byte]))

    return _PATTERN_ESCAPE.sub(unescape, raw).decode("utf-8", "surrogateescape")


def _glob_literal(raw: bytes) -> bytes:
    return b"".join(b"\\" + bytes([b]) if b in _GLOB_SPECIAL else bytes([b]) for b in raw)
