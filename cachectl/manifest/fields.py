"""The settings of an endpoint and of `defaults`, one table: each field's name, the value it
expects (in words), its check, its value when neither the endpoint nor `defaults` gives one, and
where it may be written. A check is given the reader (for `add`, which records a problem at a
path, and `unset`, the paths an unset ${VAR} left empty) and returns the value read, or None
after recording why not. Fields whose check needs other fields (`url` and `fallback_url` need
`defaults.base_url`, `tags` and `depends_on` the params' names, `body` the method and headers)
have no check here: the reader reads them (cachectl/manifest/reader.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cachectl.durations import parse_duration, parse_size
from cachectl.manifest.model import (
    CACHE_IF_WORDS,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_CONCURRENCY,
    MAX_RATE,
    MAX_RETRIES,
    MAX_TIMEOUT_SECONDS,
    METHODS,
    MIN_RATE,
)
from cachectl.redact import is_secret_header
from cachectl.yamlsrc import DocPath, kind_of, nearest

_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


class Checking(Protocol):
    """What a check needs of the reader."""

    unset: set[DocPath]

    def add(self, path: DocPath, message: str, *, key: bool = False) -> None: ...


Check = Callable[[Checking, DocPath, Any], Any]


# ---- the checks -------------------------------------------------------------------------------


def text(ctx: Checking, path: DocPath, raw: Any) -> str | None:
    if path in ctx.unset:
        return None
    if not isinstance(raw, str) or not raw.strip():
        ctx.add(path, f"expected text, got {kind_of(raw) if raw != '' else 'an empty value'}")
        return None
    return raw.strip()


def method(ctx: Checking, path: DocPath, raw: Any) -> str | None:
    value = raw.upper() if isinstance(raw, str) else None
    if value not in METHODS:
        ctx.add(path, f"expected one of {', '.join(METHODS)}, got {kind_of(raw)}")
        return None
    return value


def headers(ctx: Checking, path: DocPath, raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, dict):
        ctx.add(path, f"expected a mapping of header names to values, got {kind_of(raw)}")
        return None
    out = {}
    for name, value in raw.items():
        at = path + (name,)
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            ctx.add(at, f"'{name}' is not a valid header name", key=True)
            continue
        if at in ctx.unset:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            # A secret header's value is never echoed, even when it is the wrong type.
            shown = "a value" if is_secret_header(name) else kind_of(value)
            ctx.add(at, f"expected text, got {shown}")
            continue
        value_text = str(value)
        if "\n" in value_text or "\r" in value_text:
            ctx.add(at, "a header value cannot span lines")
            continue
        out[name] = value_text
    return out


def _duration(ctx: Checking, path: DocPath, raw: Any, what: str) -> float | None:
    try:
        seconds = parse_duration(raw)
    except ValueError as exc:
        ctx.add(path, str(exc) if isinstance(raw, str) else f"{exc}, got {kind_of(raw)}")
        return None
    if seconds <= 0:
        ctx.add(path, f"the {what} must be greater than 0, got {kind_of(raw)}")
        return None
    return seconds


def timeout(ctx: Checking, path: DocPath, raw: Any) -> float | None:
    seconds = _duration(ctx, path, raw, "timeout")
    if seconds is not None and seconds > MAX_TIMEOUT_SECONDS:
        ctx.add(path, f"the timeout must be at most 1h, got {kind_of(raw)}")
        return None
    return seconds


def ttl(ctx: Checking, path: DocPath, raw: Any) -> int | None:
    """The TTL in milliseconds."""
    seconds = _duration(ctx, path, raw, "ttl")
    if seconds is None:
        return None
    ms = round(seconds * 1000)
    if ms < 1:
        ctx.add(path, f"the ttl must be at least 1 ms, got {kind_of(raw)}")
        return None
    return ms


def size(ctx: Checking, path: DocPath, raw: Any) -> int | None:
    try:
        value = parse_size(raw)
    except ValueError as exc:
        ctx.add(path, str(exc))
        return None
    if value < 1:
        ctx.add(path, f"expected a size of 1 byte or more, got {kind_of(raw)}")
        return None
    return value


def cache_if(ctx: Checking, path: DocPath, raw: Any) -> str | frozenset[int] | None:
    if isinstance(raw, str):
        if raw in CACHE_IF_WORDS:
            return raw
        guess = nearest(raw, CACHE_IF_WORDS)
        hint = f" (did you mean '{guess}'?)" if guess else ""
        ctx.add(path, f"expected always, non_empty or a list of 2xx statuses, got '{raw}'{hint}")
        return None
    if not isinstance(raw, list) or not raw:
        ctx.add(path, f"expected always, non_empty or a list of 2xx statuses, got {kind_of(raw)}")
        return None
    statuses = set()
    for i, status in enumerate(raw):
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 299:
            ctx.add(
                path + (i,),
                f"expected a success status (200 to 299), got {kind_of(status)}: "
                "only successful responses are ever cached",
            )
        else:
            statuses.add(status)
    return frozenset(statuses) if len(statuses) == len(raw) else None


def whole(low: int, high: int) -> Check:
    """A whole number from `low` to `high`, both included."""

    def check(ctx: Checking, path: DocPath, raw: Any) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            ctx.add(path, f"expected a whole number from {low} to {high}, got {kind_of(raw)}")
            return None
        return raw

    return check


def rate(ctx: Checking, path: DocPath, raw: Any) -> float | None:
    if (
        isinstance(raw, bool)
        or not isinstance(raw, (int, float))
        or not MIN_RATE <= raw <= MAX_RATE
    ):
        ctx.add(
            path,
            f"expected requests per second from {MIN_RATE:g} to {MAX_RATE:g}, got {kind_of(raw)}",
        )
        return None
    return float(raw)


# ---- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    name: str
    expects: str  # in words, as the README's manifest reference says it
    check: Check | None  # None: read by the reader, from other fields too
    default: Any = None  # an endpoint's value when neither it nor `defaults` gives one
    in_defaults: bool = True  # may be written under `defaults` (and then applies to every endpoint)
    in_endpoint: bool = True


_ENDPOINT_ONLY = {"in_defaults": False}
_DEFAULTS_ONLY = {"in_endpoint": False}

FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        Field("name", "text", None, **_ENDPOINT_ONLY),
        Field("base_url", "an http:// or https:// URL", None, **_DEFAULTS_ONLY),
        Field("url", "a URL template, absolute or a path under base_url", None, **_ENDPOINT_ONLY),
        Field("method", "GET or POST", method, "GET", **_ENDPOINT_ONLY),
        Field("headers", "a mapping of header names to text", headers, {}),
        Field("body", "text or a JSON value (POST only)", None, **_ENDPOINT_ONLY),
        Field("timeout", "a duration up to 1h", timeout, DEFAULT_TIMEOUT_SECONDS),
        Field("params", "a mapping of param names to JSON values", None, **_ENDPOINT_ONLY),
        Field(
            "matrix", "a mapping of param names to lists, ranges or files", None, **_ENDPOINT_ONLY
        ),
        Field("ttl", "a duration of 1 ms or more", ttl),
        Field("tags", "a list of name templates", None, (), **_ENDPOINT_ONLY),
        Field("depends_on", "a list of name templates", None, (), **_ENDPOINT_ONLY),
        Field("cache_if", "always, non_empty or a list of 2xx statuses", cache_if, "always"),
        Field("fallback_url", "a URL template", None, **_ENDPOINT_ONLY),
        Field(
            "concurrency", f"a whole number from 1 to {MAX_CONCURRENCY}", whole(1, MAX_CONCURRENCY)
        ),
        Field(
            "concurrency_per_host",
            f"a whole number from 1 to {MAX_CONCURRENCY}",
            whole(1, MAX_CONCURRENCY),
            **_DEFAULTS_ONLY,
        ),
        Field("rate", f"requests per second, {MIN_RATE:g} to {MAX_RATE:g}", rate),
        Field(
            "retries",
            f"a whole number from 0 to {MAX_RETRIES}",
            whole(0, MAX_RETRIES),
            DEFAULT_RETRIES,
        ),
        Field("max_response_bytes", "a size of 1 byte or more (8MB, 512kB)", size),
    )
}
DEFAULT_FIELDS = tuple(f.name for f in FIELDS.values() if f.in_defaults)
ENDPOINT_FIELDS = tuple(f.name for f in FIELDS.values() if f.in_endpoint)
# Read by their checks alone, before the fields that depend on others.
CHECKED_FIELDS = tuple(f for f in FIELDS.values() if f.check is not None)
