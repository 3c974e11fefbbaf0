"""Templates: text with `{param}` placeholders (a URL, a tag, a dependency), and how a param's
value is written into each (JavaScript's String(), percent-encoded in a URL)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cachectl.layout import js_string, js_stringify

# `{name}` is a param; `{{` and `}}` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_UNMATCHED = "an unmatched brace in {text!r} (write {{{{ and }}}} for literal braces)"


# ---- templates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """Text with `{param}` placeholders, read once when the manifest is loaded."""

    text: str
    parts: tuple[str | tuple[str], ...]  # literal text, or (param name,)
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> tuple[Template, list[str]]:
        """The template and the problems with it (an unclosed or empty placeholder)."""
        parts: list[str | tuple[str]] = []
        problems = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            literal = text[pos : m.start()]
            pos = m.end()
            if "{" in literal or "}" in literal:
                problems.append(_UNMATCHED.format(text=text))
            if m.group(0) in ("{{", "}}"):
                parts.append(literal + m.group(0)[0])
                continue
            parts.append(literal)
            name = m.group(1).strip()
            if not name:
                problems.append("an empty placeholder {} (write {{ and }} for literal braces)")
                continue
            parts.append((name,))
        tail = text[pos:]
        if "{" in tail or "}" in tail:
            problems.append(_UNMATCHED.format(text=text))
        parts.append(tail)
        merged: list[str | tuple[str]] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            elif part != "":
                merged.append(part)
        names = frozenset(p[0] for p in merged if isinstance(p, tuple))
        return cls(text, tuple(merged), names), problems

    def render(self, params: Mapping[str, Any], encode) -> str:
        return "".join(p if isinstance(p, str) else encode(params[p[0]]) for p in self.parts)


_SAFE_INTEGER = 2**53


def _text_of(value: Any) -> str:
    """JavaScript's String(value); a safe integer (most ids) the quick way, the same text."""
    if type(value) is int and -_SAFE_INTEGER < value < _SAFE_INTEGER:
        return str(value)
    return js_string(value)


def _url_value(value: Any) -> str:
    return quote(_text_of(value), safe="")


def _query_value(value: Any) -> str:
    # An object has no useful String() form ("[object Object]"); its JSON text is what an API
    # reading a structured query value expects.
    text = js_stringify(value) if isinstance(value, Mapping) else _text_of(value)
    return quote(text, safe="")
