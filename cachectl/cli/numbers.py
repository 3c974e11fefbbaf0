"""Sane bounds on every numeric flag, applied in one place.

click reads `--rate nan`, `--max-p95-ms 1e400` (infinity) and `--count 10^21` as numbers, and its
ranges let NaN and infinity through (every comparison with NaN is false); a 10,000-digit value
would be echoed whole in the error. `bound_numeric_options` gives every integer and float option
of the command tree a conversion that refuses them all as usage errors (exit 2) naming the flag.
Tighter bounds for one flag (`--concurrency` at most 1000) are declared on the flag itself.
"""

from __future__ import annotations

import copy
import math
import re
from typing import Any

MAX_FLAG_NUMBER = 10**9  # no count, rate, size or threshold given as a flag is sanely larger
MAX_FLAG_TEXT_NUMBER = 10**15  # a size in bytes (1 PB), a count given as text
MAX_TEXT = 40  # no sane number is longer: a longer value is refused, and quoted cut short


def bound_numeric_options(command: Any) -> None:
    """Every numeric option of `command` and its subcommands, bounded (once per command)."""
    if getattr(command, "_cachectl_bounded", False):
        return
    command._cachectl_bounded = True
    numeric = _numeric_types()
    for param in command.params:
        if isinstance(param.type, numeric):
            param.type = _bounded(param.type)
    for sub in getattr(command, "commands", {}).values():
        bound_numeric_options(sub)


def _numeric_types() -> tuple[type, ...]:
    try:  # typer 0.2x vendors click; older releases use the click package
        from typer._click import types
    except ImportError:  # pragma: no cover
        from click import types
    return (types.IntParamType, types.FloatParamType)


def shown(value: Any) -> str:
    """A flag's value as an error quotes it: cut short past MAX_TEXT characters."""
    text = str(value) if not isinstance(value, int) or abs(value) < 10**MAX_TEXT else ""
    return repr(text) if len(text) <= MAX_TEXT and text else f"{text[:MAX_TEXT]!r}... (too long)"


def _bounded(kind: Any) -> Any:
    """A copy of the click type (a range keeps its bounds and its help), its conversion
    checked."""
    bounded = copy.copy(kind)
    convert = kind.convert

    def checked(value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, str) and len(value.strip()) > MAX_TEXT:
            bounded.fail(f"{shown(value)} is not a sane number", param, ctx)
        number = convert(value, param, ctx)
        if isinstance(number, float) and not math.isfinite(number):
            bounded.fail(f"{shown(value)} is not a finite number", param, ctx)
        if abs(number) > MAX_FLAG_NUMBER:
            bounded.fail(
                f"{shown(value)} is over {MAX_FLAG_NUMBER:,}, the most any flag takes", param, ctx
            )
        return number

    bounded.convert = checked
    return bounded


_LEADING_NUMBER = re.compile(r"\s*[-+]?(\d+(?:\.\d*)?|\.\d+)")


def sane_number_text(option: str, text: str | None) -> str | None:
    """`text` unchanged, for a flag read as a number by its own parser (a size, a count or a
    percentage): refused first when it is longer than any sane number, or its number is over
    MAX_FLAG_TEXT_NUMBER, so that parser never meets 10^21 or a 10,000-digit value."""
    from cachectl.errors import UsageError

    if text is None:
        return None
    if len(text.strip()) > MAX_TEXT:
        raise UsageError(f"{option} {shown(text)} is not a sane number")
    match = _LEADING_NUMBER.match(text)
    if match and float(match.group(1)) > MAX_FLAG_TEXT_NUMBER:
        raise UsageError(f"{option} {shown(text)}: the number is over {MAX_FLAG_TEXT_NUMBER:.0e}")
    return text
