"""Durations as people write them: `90` (seconds), `1.5`, `500ms`, `10m`, `1h30m`, `2d`."""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d|w)")
EXAMPLES = "90, 30s, 10m, 1h30m or 500ms"


def parse_duration(value: object) -> float:
    """Seconds in `value`: a number (seconds) or text such as `10m`, `1h30m`, `500ms`.

    A leading `-` is read (so a caller can say "must be greater than 0" rather than "not a
    duration"); range checks are the caller's. Raises ValueError naming what is expected.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a duration such as {EXAMPLES}")  # noqa: TRY004 -- callers report ValueError as bad input
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = value.strip().replace(" ", "")
        sign = -1.0 if text.startswith("-") else 1.0
        body = text.lstrip("+-")
        try:
            seconds = sign * float(body)
        except ValueError:
            seconds = sign * _sum_of_parts(body, value)
    if not math.isfinite(seconds):
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {value!r}")
    return seconds


def _sum_of_parts(body: str, original: str) -> float:
    parts = list(_PART.finditer(body))
    if not body or "".join(p.group(0) for p in parts) != body:
        raise ValueError(f"expected a duration such as {EXAMPLES}, got {original!r}")
    return sum(float(p.group(1)) * _UNIT_SECONDS[p.group(2)] for p in parts)
