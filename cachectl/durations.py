"""Durations as people write them: `90` (seconds), `1.5`, `500ms`, `10m`, `1h30m`, `2d`; and
sizes: `8MiB`, `512KiB`, `1000000`.

Both are bounded: a duration over ten years or a size over 1 TiB is refused as absurd, so a typo
of a few digits (`--delay 99999999999999999999h`) never reaches a sleep or a Redis TTL."""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)")
EXAMPLES = "90, 30s, 10m, 1h30m or 500ms"
MAX_DURATION_SECONDS = 3650 * 86400  # ten years: more is a typo, not a plan
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}
MAX_SIZE_BYTES = 1024**4
SIZE_EXAMPLES = "8MiB, 512KiB, 64kB or a number of bytes"


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number (seconds) or text such as `10m`, `1h30m`, `500ms`.

    A leading `-` is read (so a caller can say "must be greater than 0" rather than "not a
    duration"); range checks are the caller's, past the bound of ten years. Raises ValueError naming what is expected.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a duration such as {EXAMPLES}")  # noqa: TRY004 -- callers report ValueError as bad input
    if isinstance(value, (int, float)):
        seconds = float(value) if abs(value) < 1e300 else math.inf  # no OverflowError
    else:
        text = value.strip().replace(" ", "")
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        try:
            seconds = sign * float(body)
        except ValueError:
            seconds = sign * _sum_of_parts(body, value)
    if not math.isfinite(seconds):
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {_shown(value)}")
    if abs(seconds) > MAX_DURATION_SECONDS:
        raise ValueError(f"a duration of at most 3650d (ten years), got {_shown(value)}")
    return seconds


def _shown(value: object) -> str:
    """A value as an error quotes it: a 10,000-digit number is cut, not echoed whole."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**30:
        return "a number of over 30 digits"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_size(value: object) -> int:
    """Bytes in `value`: a whole number of bytes, or text such as `8MiB`, `512KiB`, `64kB`
    (KiB = 1024, kB = 1000), at most 1 TiB. Raises ValueError naming what is expected."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a size such as {SIZE_EXAMPLES}")  # noqa: TRY004 -- callers report ValueError as bad input
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value != int(value) or value < 0:
            raise ValueError(f"expected a size such as {SIZE_EXAMPLES}, got {_shown(value)}")
        size = int(value)
    else:
        m = _SIZE.fullmatch(value.strip()) if len(value) <= 40 else None
        if m is None:
            raise ValueError(f"expected a size such as {SIZE_EXAMPLES}, got {_shown(value)}")
        unit = (m.group(2) or "").lower()
        factor = _SIZE_UNITS[unit[:1]] if "i" not in unit else 1024 ** "kmgt".index(unit[0]) * 1024
        size = float(m.group(1)) * factor
        if size != int(size):
            raise ValueError(f"expected a whole number of bytes, got {_shown(value)}")
        size = int(size)
    if size > MAX_SIZE_BYTES:
        raise ValueError(f"a size of at most 1TiB, got {_shown(value)}")
    return size


def format_size(size: int) -> str:
    """`8388608` -> `8 MiB`; a size that is no whole number of KiB, MiB... in bytes."""
    for unit, factor in (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


def _sum_of_parts(body: str, original: str) -> float:
    parts = list(_PART.finditer(body))
    if not body or "".join(p.group(0) for p in parts) != body:
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {_shown(original)}")
    return sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)
