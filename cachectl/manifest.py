"""Warm manifests: load a YAML manifest, check every part of it, and expand it into requests.

A manifest (`version: 1`) has `defaults` and a list of `endpoints`; each endpoint becomes one
request per combination of its `matrix` params. Loading reports every problem of every file at
once (`FILE:LINE:COL: endpoints[2].ttl: ...`) and touches neither the network nor Redis.
Expansion streams: a matrix of a million combinations is produced one request at a time, and a
`{file: ...}` source is read again for each outer value rather than held in memory.

Secrets: header values that carry credentials (and secret-looking query values) are collected in
`Manifest.secrets`, masked in every URL shown (`PlannedRequest.shown_url`), and never enter a key:
a param named like a credential (`api_key`), or a param, tag or dependency holding one of those
values, is a problem, since every param is part of the entry key (docs/keyspace.md).

URLs: the manifest's own URL text is sent as written, so what cannot be sent that way (a space, a
non-ASCII character, a stray `%`, a bad host or port) is a problem too; values filled in from
params are percent-encoded.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import string
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, quote, urlsplit

from cachectl.durations import parse_duration, parse_size
from cachectl.errors import ManifestError, UsageError
from cachectl.layout import (
    NO_PARAMS,
    Layout,
    js_sort_key,
    js_string,
    js_stringify,
    param_order,
    parse_cli_param,
    well_formed,
)
from cachectl.redact import MASK, is_secret_header, mask_url, scrub
from cachectl.yamlsrc import (
    DocPath,
    InputLimits,
    Problems,
    YamlDoc,
    kind_of,
    load_yaml,
    nearest,
    read_lines,
)

MANIFEST_VERSION = 1
METHODS = ("GET", "POST")
CACHE_IF_WORDS = ("always", "non_empty")
FILE_VALUE_KINDS = ("json", "string")
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRIES = 2
DEFAULT_CONCURRENCY = 10
MAX_RETRIES = 20
# Sane bounds: past them a number is a typo (or a hostile file), and would reach a socket, a
# sleep or Redis as an OverflowError or a TTL of a thousand years.
MAX_CONCURRENCY = 1000  # connections held open at once
MIN_RATE, MAX_RATE = 0.001, 1_000_000.0  # requests per second
MAX_TIMEOUT_SECONDS = 3600.0
MAX_RANGE_VALUE = 2**53 - 1  # JavaScript's largest safe integer: keys write larger ones as 1e+21
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024

TOP_FIELDS = ("version", "defaults", "endpoints")
DEFAULT_FIELDS = (
    "base_url", "headers", "timeout", "ttl", "cache_if", "retries", "concurrency",
    "concurrency_per_host", "rate", "max_response_bytes",
)  # fmt: skip
ENDPOINT_FIELDS = (
    "name", "url", "method", "headers", "body", "timeout", "params", "matrix", "ttl", "tags",
    "depends_on", "cache_if", "fallback_url", "concurrency", "rate", "retries",
    "max_response_bytes",
)  # fmt: skip
SOURCE_FIELDS = ("range", "file", "as")

# `{name}` is a param; `{{` and `}}` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_UNMATCHED = "an unmatched brace in {text!r} (write {{{{ and }}}} for literal braces)"
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


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


def mask_query_secrets(url: str) -> str:
    """The URL with its userinfo password and every secret-looking query value as ****."""
    url = mask_url(url) or url
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}={MASK}" if eq and is_secret_header(name) else pair)
    return head + "?" + "&".join(pairs) + hash_sep + fragment


def _query_secrets(url: str) -> list[str]:
    query = url.partition("?")[2].partition("#")[0]
    return [
        value
        for name, eq, value in (pair.partition("=") for pair in query.split("&"))
        if eq and value and is_secret_header(name)
    ]


# A param's name is a credential's when redact's test for header and query names says so AND one
# of these is a whole word of it (`api_key`, `apiKey`, `accessToken`, `password`), not a part of
# a word: `keyword`, `author` or `monkey` are masked in a shown URL (harmless), but refusing them
# would refuse ordinary APIs.
_SECRET_PARAM_WORDS = frozenset({
    "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "auth",
    "authorization", "credential", "credentials", "key", "session", "sessionid", "apikey",
    "accesskey", "secretkey", "privatekey", "authkey", "appkey", "clientkey", "licensekey",
    "sessionkey", "subscriptionkey",
})  # fmt: skip
_SECRET_PARAM_ENDINGS = ("token", "tokens", "secret", "password", "passwd", "credentials")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def is_secret_param(name: str) -> bool:
    """Whether a param named `name` carries a credential (and so may not be a param: every
    param is part of the entry key)."""
    if not is_secret_header(name):
        return False
    words = re.split(r"[^a-z0-9]+", _CAMEL_BOUNDARY.sub("_", name).lower())
    return any(w in _SECRET_PARAM_WORDS or w.endswith(_SECRET_PARAM_ENDINGS) for w in words if w)


def _texts_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (a key holds them all)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts_in(item)


# ---- URLs that can be sent --------------------------------------------------------------------
#
# A manifest's URL text is sent as written (`yarl.URL(url, encoded=True)`): it counts as already
# percent-encoded, and only the values filled in from params are encoded by the plan. So a space,
# a control or non-ASCII character or a stray `%` in the text itself reaches the origin as it
# is, which answers 400 to every request; a bad host or port fails every request too.

_HOST_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_WORD_STOPS = "/?&=#"


def _unsent_char(c: str) -> bool:
    return c <= " " or c == "\x7f" or c > "\x7f"


def _describe_char(c: str) -> str:
    names = {" ": "a space", "\t": "a tab"}
    if c in names:
        return names[c]
    return f"'{c}'" if c.isprintable() else f"the character U+{ord(c):04X}"


def _url_problem(url: str, secrets: Sequence[str] = ()) -> str | None:
    """Why the absolute `url` (placeholders filled) cannot be sent as written, or None."""
    _, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    return _authority_problem(rest[:end]) or _tail_problem(rest[end:], secrets)


def _authority_problem(authority: str) -> str | None:
    # The userinfo is left alone: aiohttp sends it as an Authorization header, encoded.
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        port = port.removeprefix(":")
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return "the host in brackets is not an IPv6 address (write it as [::1])"
        if not bracket:
            return "the host's '[' is not closed (write an IPv6 address as [::1])"
    else:
        host, _, port = hostport.partition(":")
        if not host:
            return "the URL has no host"
        if not _HOST_CHARS.fullmatch(host):
            bad = next(c for c in host if not _HOST_CHARS.fullmatch(c))
            if bad > "\x7f":
                try:
                    ascii_host = host.encode("idna").decode("ascii")
                except UnicodeError:
                    return f"the host holds {_describe_char(bad)}: a host is sent in ASCII"
                return (
                    f"the host holds {_describe_char(bad)}: a host is sent in ASCII, "
                    f"write it as {ascii_host}"
                )
            return f"the host cannot hold {_describe_char(bad)}"
    if port and (not port.isdigit() or not 1 <= int(port) <= 65535):
        return f"the port {port!r} is not a port number (1 to 65535)"
    return None


def _tail_problem(tail: str, secrets: Sequence[str] = ()) -> str | None:
    """The path and query (the fragment is never sent)."""
    tail = tail.partition("#")[0]
    at = next((i for i, c in enumerate(tail) if _unsent_char(c)), None)
    if at is not None:
        start = max(tail.rfind(s, 0, at) for s in _WORD_STOPS) + 1
        ends = [i for i in (tail.find(s, at) for s in _WORD_STOPS) if i != -1]
        end = min(ends, default=len(tail))
        word = tail[start:end]
        example = "".join(quote(c, safe="") if _unsent_char(c) else c for c in word)
        # The example shows the text around the character, unless that text is a credential.
        query_name = tail[:start].rpartition("&")[2].rpartition("?")[2].rstrip("=")
        shown = not any(s in word or word in s for s in secrets if len(s) >= 4) and not (
            "?" in tail[:start] and is_secret_header(query_name)
        )
        char = _describe_char(tail[at])
        what = f"{word} -> {example}" if shown else f"{char} is {quote(tail[at], safe='')}"
        return f"the URL holds {char}, which cannot be sent as it is: percent-encode it ({what})"
    bad = _BAD_ESCAPE.search(tail)
    if bad:
        return "a '%' in the URL does not start an escape like %2F: write %25 for a literal %"
    return None


# ---- where param values come from ------------------------------------------------------------


@dataclass(frozen=True)
class ListValues:
    values: tuple

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def describe(self) -> str:
        return f"{len(self.values)} values"


@dataclass(frozen=True)
class RangeValues:
    """Every integer from `start` to `end`, both included."""

    start: int
    end: int

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end + 1))

    def __len__(self) -> int:
        return self.end - self.start + 1

    def describe(self) -> str:
        return f"range {self.start}..{self.end}"


@dataclass(frozen=True)
class FileValues:
    """One value per line of a file; blank lines and lines starting with `#` are skipped.

    As `json` (the default), a line that reads as JSON is that value (`123` the number, `"123"`
    the string) and any other line is text, the rule `--param` follows; as `string`, every line
    is text. The file is read afresh on every iteration, never held in memory.
    """

    path: str
    kind: str
    count: int
    limits: InputLimits = field(default_factory=InputLimits, repr=False)

    def __iter__(self) -> Iterator[Any]:
        # Read line by line within the line-length limit: a file that changed since it was
        # checked (a line grown past the limit, bytes that are not UTF-8) stops the run as a
        # bad manifest (exit 3), not an internal error.
        for _, line in read_lines(self.path, ManifestError, self.limits):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            yield text if self.kind == "string" else parse_cli_param("v=" + text)[1]

    def __len__(self) -> int:
        return self.count

    def describe(self) -> str:
        return f"{self.count} lines of {os.path.basename(self.path)}"


Source = ListValues | RangeValues | FileValues


def _product(sources: Sequence[Source]) -> Iterator[tuple]:
    """The cartesian product, re-iterating inner sources instead of storing them
    (itertools.product would hold every source, a whole file of ids, in memory)."""
    if not sources:
        yield ()
        return
    first, rest = sources[0], sources[1:]
    for value in first:
        for tail in _product(rest):
            yield (value, *tail)


# ---- the manifest -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per manifest entry
class Endpoint:
    file: str
    index: int  # position in its manifest's `endpoints`
    line: int
    name: str
    url: Template  # absolute: base_url already joined
    method: str
    headers: dict[str, str]
    body: bytes | None
    timeout_seconds: float
    params: dict[str, Any]
    matrix: tuple[tuple[str, Source], ...]
    ttl_ms: int
    tags: tuple[Template, ...]
    depends_on: tuple[Template, ...]
    cache_if: str | frozenset[int]
    fallback_url: Template | None
    concurrency: int | None
    rate: float | None
    retries: int
    # The largest answer stored (its own, else the manifest's defaults); None: the run's limit,
    # DEFAULT_MAX_RESPONSE_BYTES unless --max-response-bytes says otherwise.
    max_response_bytes: int | None = None
    # The secrets of its manifest that `scrub` masks (4 characters or more), longest first: a
    # shown URL is scrubbed of them, under whatever name the URL holds them.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        return math.prod(len(source) for _, source in self.matrix)

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(self.params) | {name for name, _ in self.matrix}

    @property
    def ref(self) -> str:
        return f"{self.file}:{self.line} endpoints[{self.index}] ({self.name})"

    def requests(self, layout: Layout) -> Iterator[PlannedRequest]:
        """Every request of the matrix, in order. What is constant across the matrix (static
        params, literal text, the key's head, the headers that enter a versioned key) is worked
        out once here; each request then encodes only its own matrix values. The result is the
        same as `request_for` on each combination (tests/unit/test_manifest_fastpath.py)."""
        names = [name for name, _ in self.matrix]
        combos = _product([source for _, source in self.matrix])
        cached = self.__dict__.get("_compiled")
        if cached is not None and cached[0] is layout:
            make = cached[1]
        else:
            make = _compile(self, layout)
            # Not a field: a frozen Endpoint keeps its compiled expansion for the last layout.
            object.__setattr__(self, "_compiled", (layout, make))
        if make is None:
            for combo in combos:
                params = dict(self.params)
                params.update(zip(names, combo))
                yield self.request_for(params, layout)
            return
        for combo in combos:
            yield make(combo)

    def keys(self, layout: Layout) -> Iterator[str]:
        """The key of every request of the matrix, in order, worked out alone: the same as the
        `.key` of each of `requests` (tests/unit/test_manifest_fastpath.py), at a fraction of
        the cost, for the check that no two requests write one key."""
        names = [name for name, _ in self.matrix]
        combos = _product([source for _, source in self.matrix])
        key_of = _compile_key(self, layout)
        if key_of is None:
            for combo in combos:
                params = dict(self.params)
                params.update(zip(names, combo))
                yield layout.entry(self.name, params, headers=self.headers)
            return
        for combo in combos:
            yield key_of(combo)

    def request_for(self, params: Mapping[str, Any], layout: Layout) -> PlannedRequest:
        """The request for one combination of params (which must fill every template)."""
        url = self.url.render(params, _url_value)
        in_query = [(n, v) for n, v in params.items() if n not in self.url.names]
        if in_query:
            query = "&".join(f"{quote(n, safe='')}={_query_value(v)}" for n, v in in_query)
            url += ("&" if "?" in url else "?") + query
        return PlannedRequest(
            endpoint=self,
            params=params,
            key=layout.entry(self.name, params, headers=self.headers),
            url=url,
            tags=tuple(t.render(params, _text_of) for t in self.tags),
            depends_on=tuple(t.render(params, _text_of) for t in self.depends_on),
            fallback_url=self.fallback_url.render(params, _url_value)
            if self.fallback_url
            else None,
        )


# ---- the fast path of expansion ----------------------------------------------------------------
#
# `Endpoint.request_for` is the reference: it renders every template and builds the key from the
# whole params dict, for each request. `_compile` does the same work once per endpoint for what the
# matrix does not change, and leaves str.format templates with one slot per encoded matrix value.


def _with_fast_cases(encode: Callable[[Any], str]) -> Callable[[Any], str]:
    """`encode` with the common matrix values taken first: a safe integer's text (digits and
    "-", which quote() leaves as they are) and a string, quoted whole."""

    def fast(value: Any) -> str:
        if type(value) is int and -_SAFE_INTEGER < value < _SAFE_INTEGER:
            return str(value)
        if type(value) is str:
            return quote(value, safe="")
        return encode(value)

    return fast


_url_value_fast = _with_fast_cases(_url_value)
_query_value_fast = _with_fast_cases(_query_value)


def _json_value_fast(value: Any) -> str:
    if type(value) is int and -_SAFE_INTEGER < value < _SAFE_INTEGER:
        return str(value)
    return js_stringify(value)


def _plain_value_fast(value: Any) -> str:
    if type(value) is str:
        return value
    return _text_of(value)


def _literal(text: str) -> str:
    """`text` as literal text of a str.format template."""
    return text.replace("{", "{{").replace("}", "}}")


def _key_format(endpoint: Endpoint, layout: Layout, names: list[str], slot) -> str:
    """The entry key as a str.format template, as Layout.entry writes it: params sorted by name
    (which the matrix does not change), each matrix value a slot from `slot(name, encoder)`."""
    static = endpoint.params
    config = layout.config
    position = set(names)
    order = param_order((*static, *names))
    if not layout.versioned:
        encode = _json_value_fast if config.param_encoding == "json" else _plain_value_fast
        static_encode = js_stringify if config.param_encoding == "json" else js_string
        pieces = [
            _literal(f"{n}:")
            + (slot(n, encode) if n in position else _literal(static_encode(static[n])))
            for n in order
        ]
        return _literal(f"{layout.entry_root}{endpoint.name}:") + (
            "|".join(pieces) if pieces else NO_PARAMS
        )
    key = _literal(f"{layout.entry_root}{endpoint.name}")
    pieces = [
        _literal(f"{n}=")
        + (slot(n, _json_value_fast) if n in position else _literal(js_stringify(static[n])))
        for n in order
    ]
    if pieces:
        key += "?" + "&".join(pieces)
    kept = sorted(
        layout.key_headers(endpoint.headers).items(), key=lambda item: js_sort_key(item[0])
    )
    if kept:
        key += _literal("#" + "&".join(f"{name}={value}" for name, value in kept))
    return key


def _fast_path_applies(endpoint: Endpoint, layout: Layout) -> bool:
    """Whether the endpoint is what a loaded manifest and a plain Layout give (else the caller
    takes the reference path)."""
    static = endpoint.params
    names = [name for name, _ in endpoint.matrix]
    return not (
        len(set(names)) != len(names)
        or any(name in static for name in names)
        or not all(isinstance(name, str) for name in (*static, *names))
        or getattr(type(layout), "entry", None) is not Layout.entry
    )


def _compile_key(endpoint: Endpoint, layout: Layout) -> Callable[[tuple], str] | None:
    """A function from one matrix combination to its entry key alone, equal to the key of
    `endpoint.request_for(params, layout)`; None when the fast path does not apply."""
    if not _fast_path_applies(endpoint, layout):
        return None
    names = [name for name, _ in endpoint.matrix]
    position = {name: i for i, name in enumerate(names)}
    slots: list[tuple[int, Any]] = []
    slot_of: dict[tuple[int, Any], int] = {}

    def slot(name: str, encode) -> str:
        key = (position[name], encode)
        if key not in slot_of:
            slot_of[key] = len(slots)
            slots.append(key)
        return "{" + str(slot_of[key]) + "}"

    key_f = _key_format(endpoint, layout, names, slot).format
    slot_plan = tuple(slots)

    def key_of(combo: tuple) -> str:
        return well_formed(key_f(*[encode(combo[i]) for i, encode in slot_plan]))

    return key_of


def _compile(endpoint: Endpoint, layout: Layout):
    """A function from one matrix combination (a tuple in matrix order) to its PlannedRequest,
    equal to `endpoint.request_for(params, layout)`; None when this endpoint is not one the fast
    path handles (the caller then takes the reference path)."""
    if not _fast_path_applies(endpoint, layout):
        return None  # not what a loaded manifest and a plain Layout give: the reference path
    static = endpoint.params
    names = [name for name, _ in endpoint.matrix]
    position = {name: i for i, name in enumerate(names)}

    # Every encoded matrix value a template needs gets one positional slot: (matrix index, encoder).
    slots: list[tuple[int, Any]] = []
    slot_of: dict[tuple[int, Any], int] = {}

    def slot(name: str, encode) -> str:
        key = (position[name], encode)
        if key not in slot_of:
            slot_of[key] = len(slots)
            slots.append(key)
        return "{" + str(slot_of[key]) + "}"

    def template(t: Template, encode, static_encode) -> str:
        out = []
        for part in t.parts:
            if isinstance(part, str):
                out.append(_literal(part))
            elif part[0] in position:
                out.append(slot(part[0], encode))
            else:
                out.append(_literal(static_encode(static[part[0]])))
        return "".join(out)

    # The URL: the template, then every param it does not name in the query, in params order
    # (static params first, as dict(self.params).update(matrix) orders them).
    url = template(endpoint.url, _url_value_fast, _url_value)
    query = [
        _literal(f"{quote(n, safe='')}={_query_value(v)}")
        for n, v in static.items()
        if n not in endpoint.url.names
    ]
    query += [
        _literal(f"{quote(n, safe='')}=") + slot(n, _query_value_fast)
        for n in names
        if n not in endpoint.url.names
    ]
    if query:
        # Rendered values are quoted with safe="": a "?" in the URL comes from its literal text.
        has_question = any(isinstance(p, str) and "?" in p for p in endpoint.url.parts)
        url += ("&" if has_question else "?") + "&".join(query)

    key = _key_format(endpoint, layout, names, slot)

    tags = [template(t, _plain_value_fast, _text_of) for t in endpoint.tags]
    depends_on = [template(t, _plain_value_fast, _text_of) for t in endpoint.depends_on]
    fallback = (
        template(endpoint.fallback_url, _url_value_fast, _url_value)
        if endpoint.fallback_url
        else None
    )

    # str.format of a template without a slot gives its text (the escaping undone) each time.
    url_f, key_f = url.format, key.format
    fallback_f = fallback.format if fallback is not None else None
    tag_fs = [t.format for t in tags]
    dep_fs = [t.format for t in depends_on]
    const_tags = None if any(_has_slot(t) for t in tags) else tuple(t.format() for t in tags)
    const_deps = (
        None if any(_has_slot(t) for t in depends_on) else tuple(t.format() for t in depends_on)
    )
    slot_plan = tuple(slots)
    make_request = PlannedRequest

    def make(combo: tuple) -> PlannedRequest:
        args = [encode(combo[i]) for i, encode in slot_plan]
        params = dict(static)
        params.update(zip(names, combo))
        return make_request(
            endpoint,
            params,
            well_formed(key_f(*args)),
            url_f(*args),
            const_tags if const_tags is not None else tuple([f(*args) for f in tag_fs]),
            const_deps if const_deps is not None else tuple([f(*args) for f in dep_fs]),
            None if fallback_f is None else fallback_f(*args),
        )

    return make


_FORMATTER = string.Formatter()


def _has_slot(fmt: str) -> bool:
    return any(field is not None for _, field, _, _ in _FORMATTER.parse(fmt))


@dataclass(slots=True)
class PlannedRequest:
    """One request of the plan: what to ask and where the answer goes."""

    endpoint: Endpoint
    params: Mapping[str, Any]
    key: str
    url: str
    tags: tuple[str, ...]
    depends_on: tuple[str, ...]
    fallback_url: str | None

    @property
    def shown_url(self) -> str:
        shown = mask_query_secrets(self.url)
        # `?access=${TOKEN}` as well as `?token=`: a known secret under any name is masked, as
        # `scrub` masks it (once per report record: the replacing alone, in order).
        for secret in self.endpoint.secrets:
            if secret in shown:
                shown = shown.replace(secret, MASK)
        return shown

    def to_dict(self) -> dict:
        return {
            "endpoint": self.endpoint.name,
            "method": self.endpoint.method,
            "url": self.shown_url,
            "key": self.key,
            "ttl_seconds": self.endpoint.ttl_ms / 1000,
            "tags": list(self.tags),
            "depends_on": list(self.depends_on),
        }


@dataclass(frozen=True)
class Defaults:
    concurrency: int | None = None
    concurrency_per_host: int | None = None
    rate: float | None = None


@dataclass(frozen=True)
class Manifest:
    file: str
    defaults: Defaults
    endpoints: tuple[Endpoint, ...]
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        return sum(e.count for e in self.endpoints)


# ---- loading ----------------------------------------------------------------------------------


def load_manifests(
    paths: Iterable[str | os.PathLike], env: Mapping[str, str] | None = None
) -> list[Manifest]:
    """Every manifest, or one ManifestError listing every problem of every file."""
    paths = list(paths)
    manifests, problems = [], []
    for path in paths:
        try:
            manifest = load_manifest(path, env)
        except ManifestError as exc:
            problems.extend(exc.problems or [exc.message])
        else:
            manifests.append(manifest)
    if problems:
        subject = "the manifests" if len(paths) > 1 else os.fspath(paths[0])
        message = (
            problems[0]
            if len(problems) == 1
            else (f"{subject}: {len(problems)} problems, the first: {problems[0]}")
        )
        raise ManifestError(message, problems=problems)
    return manifests


def load_manifest(
    path: str | os.PathLike,
    env: Mapping[str, str] | None = None,
    limits: InputLimits | None = None,
) -> Manifest:
    """One manifest, checked whole; a ManifestError lists every problem found. The file and its
    matrix files are read within `limits` (default: from the environment, CACHECTL_MAX_*)."""
    env = os.environ if env is None else env
    limits = limits or InputLimits.from_env(env)
    doc = load_yaml(path, env=env, kind=ManifestError, limits=limits)
    return _Reader(doc, limits).read()


class _Reader:
    """Reads one loaded document into a Manifest, collecting every problem on the way."""

    def __init__(self, doc: YamlDoc, limits: InputLimits | None = None):
        self.doc = doc
        self.limits = limits or InputLimits()
        self.problems = Problems(doc, kind=ManifestError)
        self.problems.extend(doc.problems)
        # Values left empty by an unset ${VAR}: already reported, not reported again.
        self.unset = {p.path for p in doc.problems if p.env_var}
        self.here = Path(doc.file).resolve().parent
        self.secrets: list[str] = []
        self.secret_sources: dict[str, str] = {}  # a secret -> what carries it, for problems
        # Text that goes into a key or a key name (param values, tag and dependency names, the
        # endpoint's name): checked for known secrets once every secret of the file is known.
        self.key_texts: list[tuple[DocPath, str, str]] = []  # (where, text, what it is)
        self.defaults_given: set = set()

    def add(self, path: DocPath, message: str, *, key: bool = False) -> None:
        self.problems.add(path, message, key=key)

    def read(self) -> Manifest:
        top = self.doc.data
        if top is None:
            self.add((), "the manifest is empty: expected version: 1, defaults and endpoints")
            self.problems.raise_if_any(self.doc.file)
        if not isinstance(top, dict):
            self.add(
                (), f"expected a mapping with version, defaults and endpoints, got {kind_of(top)}"
            )
            self.problems.raise_if_any(self.doc.file)
        self.problems.unknown_keys((), top, TOP_FIELDS)
        self._version(top)
        defaults = self._defaults(top.get("defaults"))
        endpoints = self._endpoints(top.get("endpoints"), defaults)
        self._no_secrets_in_keys()
        self.problems.items.sort(key=lambda p: (p.mark.line, p.mark.column) if p.mark else (0, 0))
        self.problems.raise_if_any(self.doc.file, secrets=self.secrets)
        secrets = tuple(dict.fromkeys(s for s in self.secrets if s))
        masked = tuple(sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True))
        return Manifest(
            file=self.doc.file,
            defaults=Defaults(
                concurrency=defaults.get("concurrency"),
                concurrency_per_host=defaults.get("concurrency_per_host"),
                rate=defaults.get("rate"),
            ),
            endpoints=tuple(replace(e, secrets=masked) for e in endpoints),
            secrets=secrets,
        )

    def _secret(self, value: str | None, source: str) -> None:
        if value:
            self.secrets.append(value)
            self.secret_sources.setdefault(value, source)

    def _no_secrets_in_keys(self) -> None:
        """A problem for every param value, tag, dependency or endpoint name that holds a secret
        of this file (`id: ${TOKEN}` with `Authorization: Bearer ${TOKEN}`): keys, tag and
        dependency sets are Redis keys, stored in the write log and shown by expand and the
        report. The value is never echoed, only what carries it."""
        secrets = sorted((s for s in self.secret_sources if len(s) >= 4), key=len, reverse=True)
        if not secrets:
            return
        reported: set[DocPath] = set()
        for path, text, what in self.key_texts:
            found = next((s for s in secrets if s in text), None)
            if found is None or path in reported:
                continue
            reported.add(path)
            carrier = self.secret_sources[found]
            if what.startswith("param"):
                self.add(
                    path,
                    f"{what} holds a credential (the value of {carrier}), and every param is part "
                    "of the entry key: send it as a header only (headers never enter a key)",
                )
            else:
                self.add(
                    path,
                    f"{what} holds a credential (the value of {carrier}): it would be part of a "
                    "Redis key name, stored and shown; keep credentials to headers",
                )

    def _version(self, top: dict) -> None:
        if "version" not in top:
            self.add((), f"missing field 'version' (write version: {MANIFEST_VERSION} at the top)")
        elif top["version"] != MANIFEST_VERSION or isinstance(top["version"], bool):
            self.add(
                ("version",),
                f"unsupported version {kind_of(top['version'])}: "
                f"this cachectl reads version {MANIFEST_VERSION}",
            )

    # -- defaults ----------------------------------------------------------------------------

    def _defaults(self, raw: Any) -> dict[str, Any]:
        path: DocPath = ("defaults",)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of default settings, got {kind_of(raw)}")
            return {}
        self.problems.unknown_keys(path, raw, DEFAULT_FIELDS)
        self.defaults_given = set(raw)
        out: dict[str, Any] = {}
        if "base_url" in raw:
            base = self._text(path + ("base_url",), raw["base_url"])
            if base is not None:
                parts = _split(base)
                if parts is None:
                    self.add(path + ("base_url",), _url_problem(base) or "this URL cannot be read")
                elif parts.scheme not in ("http", "https") or not parts.netloc:
                    self.add(
                        path + ("base_url",), f"expected an http:// or https:// URL, got {base!r}"
                    )
                else:
                    self._secret(parts.password, "the password in defaults.base_url")
                    for value in _query_secrets(base):
                        self._secret(value, "a secret query value in defaults.base_url")
                    problem = _url_problem(base, self.secrets)
                    if problem:
                        self.add(path + ("base_url",), problem)
                        # Kept: each endpoint's own part is still checked, its host is not.
                    out["base_url"] = base
        readers = {
            "headers": self._headers,
            "timeout": self._timeout,
            "ttl": self._ttl,
            "cache_if": self._cache_if,
            "retries": self._retries,
            "concurrency": self._positive_int,
            "concurrency_per_host": self._positive_int,
            "rate": self._rate,
            "max_response_bytes": self._size,
        }
        for name, reader in readers.items():
            if name in raw and path + (name,) not in self.unset:
                value = reader(path + (name,), raw[name])
                if value is not None:
                    out[name] = value
        for header, value in out.get("headers", {}).items():
            if is_secret_header(header):
                self._secret_header_value(header, value)
        return out

    def _secret_header_value(self, header: str, value: str) -> None:
        # `Bearer abc...`: the credential alone can show up in an error, without its scheme.
        source = f"the {header} header"
        self._secret(value, source)
        credential = value.partition(" ")[2]
        if credential.strip():
            self._secret(credential.strip(), source)

    # -- endpoints ---------------------------------------------------------------------------

    def _endpoints(self, raw: Any, defaults: dict[str, Any]) -> list[Endpoint]:
        path: DocPath = ("endpoints",)
        if raw is None:
            self.add(path, "missing field 'endpoints' (a list of endpoints to warm)")
            return []
        if not isinstance(raw, list):
            self.add(path, f"expected a list of endpoints, got {kind_of(raw)}")
            return []
        if not raw:
            self.add(path, "the list of endpoints is empty: nothing to warm")
        out = []
        for i, item in enumerate(raw):
            endpoint = self._endpoint(path + (i,), i, item, defaults)
            if endpoint is not None:
                out.append(endpoint)
        return out

    def _endpoint(self, path: DocPath, index: int, raw: Any, defaults: dict) -> Endpoint | None:
        if not isinstance(raw, dict):
            self.add(
                path, f"expected an endpoint (a mapping with name, url, ttl...), got {kind_of(raw)}"
            )
            return None
        before = len(self.problems)
        self.problems.unknown_keys(path, raw, ENDPOINT_FIELDS)

        def get(name: str, reader, fallback=None):
            if name in raw:
                if path + (name,) in self.unset:
                    return None
                return reader(path + (name,), raw[name])
            return defaults.get(name, fallback)

        name = self._required_text(path, raw, "name")
        if name is not None:
            self.key_texts.append((path + ("name",), name, "the endpoint name"))
        method = get("method", self._method, "GET")
        params = get("params", self._params, {}) or {}
        matrix = get("matrix", self._matrix, ()) or ()
        for param, _ in matrix:
            if param in params:
                self.add(
                    path + ("matrix", param),
                    f"param '{param}' is given both in params and in matrix",
                    key=True,
                )
        # Names given, even with a bad value: a template naming one is not "unknown" as well.
        known = sorted(
            {
                str(n)
                for section in ("params", "matrix")
                if isinstance(raw.get(section), dict)
                for n in raw[section]
            }
        )

        url = self._url(path, raw, defaults, known)
        headers = dict(defaults.get("headers", {}))
        own_headers = get("headers", self._headers, {}) or {}
        for header, value in own_headers.items():
            for existing in [h for h in headers if h.lower() == header.lower()]:
                del headers[existing]
            headers[header] = value
        body = None
        if "body" in raw:
            body = self._body(path + ("body",), raw["body"], method, headers)
        timeout = get("timeout", self._timeout, DEFAULT_TIMEOUT_SECONDS)
        ttl_ms = get("ttl", self._ttl)
        if ttl_ms is None and "ttl" not in raw and "ttl" not in self.defaults_given:
            self.add(path, "missing field 'ttl' (set ttl here or in defaults)")
        tags = get("tags", lambda p, v: self._templates(p, v, known), ())
        depends_on = get("depends_on", lambda p, v: self._templates(p, v, known), ())
        cache_if = get("cache_if", self._cache_if, "always")
        fallback = None
        if "fallback_url" in raw and path + ("fallback_url",) not in self.unset:
            fallback = self._url_template(
                path + ("fallback_url",), raw["fallback_url"], defaults, known
            )
        concurrency = get("concurrency", self._positive_int)
        rate = get("rate", self._rate)
        retries = get("retries", self._retries, DEFAULT_RETRIES)
        max_response_bytes = get("max_response_bytes", self._size)
        for header, value in headers.items():
            if is_secret_header(header):
                self._secret_header_value(header, value)

        has_authorization = any(h.lower() == "authorization" for h in headers)
        if url is not None and has_authorization:
            userinfo = urlsplit(url.render({n: "x" for n in url.names}, str)).username
            if userinfo is not None:
                self.add(
                    path + ("url",),
                    "the URL carries credentials (user:password@) and an Authorization header is "
                    "set too: keep one of them",
                )
        if len(self.problems) > before or None in (name, url, ttl_ms):
            return None
        return Endpoint(
            file=self.doc.file,
            index=index,
            line=self.doc.mark(path).line,
            name=name,
            url=url,
            method=method or "GET",
            headers=headers,
            body=body,
            timeout_seconds=timeout or DEFAULT_TIMEOUT_SECONDS,
            params=params,
            matrix=tuple(matrix),
            ttl_ms=ttl_ms,
            tags=tuple(tags or ()),
            depends_on=tuple(depends_on or ()),
            cache_if=cache_if or "always",
            fallback_url=fallback,
            concurrency=concurrency,
            rate=rate,
            retries=DEFAULT_RETRIES if retries is None else retries,
            max_response_bytes=max_response_bytes,
        )

    def _url(self, path: DocPath, raw: dict, defaults: dict, known: list[str]) -> Template | None:
        if "url" not in raw:
            self.add(path, "missing field 'url'")
            return None
        if path + ("url",) in self.unset:
            return None
        return self._url_template(path + ("url",), raw["url"], defaults, known)

    def _url_template(
        self, path: DocPath, raw: Any, defaults: dict, known: list[str]
    ) -> Template | None:
        text = own = self._text(path, raw)
        if text is None:
            return None
        absolute = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None
        if not absolute:
            base = defaults.get("base_url")
            if base is None:
                self.add(path, f"{text!r} is a path and defaults.base_url is not set")
                return None
            text = base.rstrip("/") + "/" + text.lstrip("/")
        template = self._template(path, text, known)
        if template is None:
            return None
        sample = template.render({n: "x" for n in template.names}, str)
        parts = _split(sample)
        if parts is None:
            self.add(path, _url_problem(sample) or "this URL cannot be read")
            return None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.add(path, f"expected an http:// or https:// URL, got {mask_query_secrets(text)!r}")
            return None
        for value in _query_secrets(text):
            self._secret(value, "a secret query value in a URL")
        self._secret(parts.password, "the password in a URL")
        # What is sent as written: the URL's own text, with each placeholder as a plain value
        # (the values filled in are percent-encoded). A path joined to base_url is checked
        # alone: the base was checked in defaults.
        written = template if absolute else Template.parse(own)[0]
        filled = written.render({n: "1" for n in written.names}, str)
        problem = (
            _url_problem(filled, self.secrets) if absolute
            else _tail_problem("/" + filled.lstrip("/"), self.secrets)
        )  # fmt: skip
        in_query = [n for n in known if n not in template.names]
        if problem is None and path[-1] == "url" and in_query and "#" in sample:
            # The params not in the URL are added to its end: after a fragment, never sent.
            problem = (
                f"the URL ends in a #fragment, which is never sent, and the params not in it "
                f"({', '.join(in_query)}) would be added after it: remove it, or write %23 for a "
                "literal #"
            )
        if problem:
            self.add(path, problem)
            return None
        return template

    def _template(self, path: DocPath, text: str, known: list[str]) -> Template | None:
        template, problems = Template.parse(text)
        for problem in problems:
            self.add(path, problem)
        for name in sorted(template.names - set(known)):
            guess = nearest(name, known)
            there = f"params here: {', '.join(known)}" if known else "this endpoint has no params"
            hint = f" (did you mean '{guess}'?)" if guess else f" ({there})"
            self.add(path, f"the template names an unknown param '{name}'{hint}")
        return None if problems or template.names - set(known) else template

    def _templates(self, path: DocPath, raw: Any, known: list[str]) -> tuple[Template, ...] | None:
        items = [raw] if isinstance(raw, (str, int)) and not isinstance(raw, bool) else raw
        if not isinstance(items, list):
            self.add(path, f"expected a list of names, got {kind_of(raw)}")
            return None
        out = []
        for i, item in enumerate(items):
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                self.add(path + (i,), f"expected a name, got {kind_of(item)}")
                continue
            text = str(item)
            if not text.strip():
                self.add(path + (i,), "expected a name, got an empty value")
                continue
            what = "a tag name" if path[-1] == "tags" else "a dependency name"
            self.key_texts.append((path + (i,), text, what))
            template = self._template(path + (i,), text, known)
            if template is not None:
                out.append(template)
        return tuple(out)

    # -- single values -----------------------------------------------------------------------

    def _text(self, path: DocPath, raw: Any) -> str | None:
        if path in self.unset:
            return None
        if not isinstance(raw, str) or not raw.strip():
            self.add(path, f"expected text, got {kind_of(raw) if raw != '' else 'an empty value'}")
            return None
        return raw.strip()

    def _required_text(self, path: DocPath, raw: dict, name: str) -> str | None:
        if name not in raw:
            self.add(path, f"missing field '{name}'")
            return None
        return self._text(path + (name,), raw[name])

    def _method(self, path: DocPath, raw: Any) -> str | None:
        method = raw.upper() if isinstance(raw, str) else None
        if method not in METHODS:
            self.add(path, f"expected one of {', '.join(METHODS)}, got {kind_of(raw)}")
            return None
        return method

    def _headers(self, path: DocPath, raw: Any) -> dict[str, str] | None:
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of header names to values, got {kind_of(raw)}")
            return None
        out = {}
        for name, value in raw.items():
            at = path + (name,)
            if not isinstance(name, str) or not _HEADER_NAME.match(name):
                self.add(at, f"'{name}' is not a valid header name", key=True)
                continue
            if at in self.unset:
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                # A secret header's value is never echoed, even when it is the wrong type.
                shown = "a value" if is_secret_header(name) else kind_of(value)
                self.add(at, f"expected text, got {shown}")
                continue
            text = str(value)
            if "\n" in text or "\r" in text:
                self.add(at, "a header value cannot span lines")
                continue
            out[name] = text
        return out

    def _body(self, path: DocPath, raw: Any, method: str | None, headers: dict) -> bytes | None:
        if method != "POST":
            self.add(path, "a body is sent only with method: POST")
            return None
        if isinstance(raw, str):
            return raw.encode()
        problem = _json_problem(raw)
        if problem:
            self.add(path, problem)
            return None
        if not any(h.lower() == "content-type" for h in headers):
            headers["Content-Type"] = "application/json"
        return js_stringify(raw).encode()

    def _timeout(self, path: DocPath, raw: Any) -> float | None:
        seconds = self._duration(path, raw, "timeout")
        if seconds is not None and seconds > MAX_TIMEOUT_SECONDS:
            self.add(path, f"the timeout must be at most 1h, got {kind_of(raw)}")
            return None
        return seconds

    def _size(self, path: DocPath, raw: Any) -> int | None:
        try:
            size = parse_size(raw)
        except ValueError as exc:
            self.add(path, str(exc))
            return None
        if size < 1:
            self.add(path, f"expected a size of 1 byte or more, got {kind_of(raw)}")
            return None
        return size

    def _ttl(self, path: DocPath, raw: Any) -> int | None:
        seconds = self._duration(path, raw, "ttl")
        if seconds is None:
            return None
        ms = round(seconds * 1000)
        if ms < 1:
            self.add(path, f"the ttl must be at least 1 ms, got {kind_of(raw)}")
            return None
        return ms

    def _duration(self, path: DocPath, raw: Any, what: str) -> float | None:
        try:
            seconds = parse_duration(raw)
        except ValueError as exc:
            self.add(path, str(exc) if isinstance(raw, str) else f"{exc}, got {kind_of(raw)}")
            return None
        if seconds <= 0:
            self.add(path, f"the {what} must be greater than 0, got {kind_of(raw)}")
            return None
        return seconds

    def _cache_if(self, path: DocPath, raw: Any) -> str | frozenset[int] | None:
        if isinstance(raw, str):
            if raw in CACHE_IF_WORDS:
                return raw
            guess = nearest(raw, CACHE_IF_WORDS)
            hint = f" (did you mean '{guess}'?)" if guess else ""
            self.add(
                path, f"expected always, non_empty or a list of 2xx statuses, got '{raw}'{hint}"
            )
            return None
        if not isinstance(raw, list) or not raw:
            self.add(
                path, f"expected always, non_empty or a list of 2xx statuses, got {kind_of(raw)}"
            )
            return None
        statuses = set()
        for i, status in enumerate(raw):
            if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 299:
                self.add(
                    path + (i,),
                    f"expected a success status (200 to 299), got {kind_of(status)}: "
                    "only successful responses are ever cached",
                )
            else:
                statuses.add(status)
        return frozenset(statuses) if len(statuses) == len(raw) else None

    def _positive_int(self, path: DocPath, raw: Any) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_CONCURRENCY:
            self.add(
                path, f"expected a whole number from 1 to {MAX_CONCURRENCY}, got {kind_of(raw)}"
            )
            return None
        return raw

    def _retries(self, path: DocPath, raw: Any) -> int | None:
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_RETRIES:
            self.add(path, f"expected a whole number from 0 to {MAX_RETRIES}, got {kind_of(raw)}")
            return None
        return raw

    def _rate(self, path: DocPath, raw: Any) -> float | None:
        if (
            isinstance(raw, bool)
            or not isinstance(raw, (int, float))
            or not MIN_RATE <= raw <= MAX_RATE
        ):
            self.add(
                path,
                f"expected requests per second from {MIN_RATE:g} to {MAX_RATE:g}, "
                f"got {kind_of(raw)}",
            )
            return None
        return float(raw)

    # -- params and matrix -------------------------------------------------------------------

    def _params(self, path: DocPath, raw: Any) -> dict[str, Any] | None:
        if not isinstance(raw, dict):
            self.add(path, f"expected a mapping of param names to values, got {kind_of(raw)}")
            return None
        out = {}
        for name, value in raw.items():
            if not isinstance(name, str):
                self.add(
                    path + (name,), f"a param name must be text, got {kind_of(name)}", key=True
                )
                continue
            if not self._param_name(path + (name,), name):
                continue
            if path + (name,) in self.unset:
                continue
            problem = _json_problem(value)
            if problem:
                self.add(path + (name,), problem)
                continue
            self.key_texts.extend((path + (name,), t, f"param '{name}'") for t in _texts_in(value))
            out[name] = value
        return out

    def _param_name(self, path: DocPath, name: str) -> bool:
        """False (with a problem) for a param named like a credential: docs/keyspace.md makes every
        param part of the entry key, which Redis, the tag sets and the write log hold and
        expand and the report show."""
        if not is_secret_param(name):
            return True
        self.add(
            path,
            f"param '{name}' looks like a credential, and every param is part of the entry key: "
            "send it as a header (headers never enter a key), or, if the API reads it only from "
            f"the query string, write it into the url (?{name}=${{VAR}}): the url's own text "
            "never enters a key",
            key=True,
        )
        return False

    def _matrix(self, path: DocPath, raw: Any) -> list[tuple[str, Source]] | None:
        if not isinstance(raw, dict):
            self.add(
                path,
                f"expected a mapping of param names to lists, ranges or files, got {kind_of(raw)}",
            )
            return None
        if not raw:
            self.add(path, "the matrix is empty: remove it, or give it params")
        out = []
        for name, spec in raw.items():
            at = path + (name,)
            if not isinstance(name, str):
                self.add(at, f"a param name must be text, got {kind_of(name)}", key=True)
                continue
            if not self._param_name(at, name):
                continue
            source = self._source(at, spec)
            if source is not None:
                out.append((name, source))
                if isinstance(source, ListValues):
                    self.key_texts.extend(
                        (at + (i,), t, f"param '{name}'")
                        for i, value in enumerate(source) for t in _texts_in(value)
                    )  # fmt: skip
        return out

    def _source(self, path: DocPath, spec: Any) -> Source | None:
        if isinstance(spec, list):
            if not spec:
                self.add(path, "the list of values is empty")
                return None
            ok = True
            for i, value in enumerate(spec):
                problem = _json_problem(value)
                if problem:
                    self.add(path + (i,), problem)
                    ok = False
            return ListValues(tuple(spec)) if ok else None
        if not isinstance(spec, dict):
            self.add(
                path,
                f"expected a list, {{range: [first, last]}} or {{file: path}}, got {kind_of(spec)}",
            )
            return None
        if set(self.problems.unknown_keys(path, spec, SOURCE_FIELDS)):
            return None
        if ("range" in spec) == ("file" in spec):
            self.add(path, "expected exactly one of range: [first, last] or file: path")
            return None
        if "range" in spec:
            if "as" in spec:
                self.add(path + ("as",), "'as' applies to file: sources only", key=True)
            return self._range(path + ("range",), spec["range"])
        return self._file(path, spec)

    def _range(self, path: DocPath, raw: Any) -> RangeValues | None:
        ints = (
            isinstance(raw, list)
            and len(raw) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
        )
        if not ints:
            self.add(path, f"expected two whole numbers [first, last], got {_range_kind(raw)}")
            return None
        first, last = raw
        if max(abs(first), abs(last)) > MAX_RANGE_VALUE:
            self.add(
                path,
                f"a range's ends must be within ±{MAX_RANGE_VALUE} (2^53 - 1, the largest whole "
                "number a key writes exactly), got " + ", ".join(_short_number(v) for v in raw),
            )
            return None
        if first > last:
            self.add(path, f"the range is empty: first ({first}) is greater than last ({last})")
            return None
        return RangeValues(first, last)

    def _file(self, path: DocPath, spec: dict) -> FileValues | None:
        kind = spec.get("as", "json")
        if kind not in FILE_VALUE_KINDS:
            self.add(path + ("as",), f"expected json or string, got {kind_of(kind)}")
            return None
        name = self._text(path + ("file",), spec["file"])
        if name is None:
            return None
        file = self.here / os.path.expanduser(name)
        try:
            count = _count_values(file, self.limits)
        except ManifestError as exc:  # unreadable, not a regular file, a line past the limit
            self.add(path + ("file",), exc.message)
            return None
        if count == 0:
            self.add(path + ("file",), f"{file} holds no values (blank and # lines are skipped)")
            return None
        return FileValues(str(file), kind, count, self.limits)


def _split(url: str) -> SplitResult | None:
    """urlsplit, or None for a URL it refuses (`http://[::1/x`: an unclosed IPv6 host)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None


def _count_values(file: Path, limits: InputLimits) -> int:
    count = 0
    for _, line in read_lines(str(file), ManifestError, limits):
        text = line.strip()
        if text and not text.startswith("#"):
            count += 1
    return count


def _short_number(value: int) -> str:
    text = str(value) if abs(value) < 10**30 else ""
    return text or "a number of over 30 digits"


def _range_kind(raw: Any) -> str:
    if isinstance(raw, list):
        return f"a list of {len(raw)}: " + ", ".join(kind_of(v) for v in raw[:3])
    return kind_of(raw)


def _json_problem(value: Any) -> str | None:
    """Why `value` cannot be a param or body value (JSON holds it), or None when it can."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{value} is not a JSON number"
    if isinstance(value, list):
        return next((p for p in map(_json_problem, value) if p), None)
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"an object key must be text, got {kind_of(key)}"
            problem = _json_problem(item)
            if problem:
                return problem
        return None
    if type(value).__name__ in ("date", "datetime"):
        return f"{value} reads as a date: put it in quotes to keep it as text"
    return f"expected a JSON value, got a {type(value).__name__}"


# ---- the plan ---------------------------------------------------------------------------------


class Plan:
    """What a warm run asks for: the endpoints of the manifests (those named, or all), expanded
    lazily against a layout."""

    def __init__(self, manifests: Sequence[Manifest], layout: Layout, only: Sequence[str] = ()):
        self.manifests = list(manifests)
        self.layout = layout
        every = [e for m in self.manifests for e in m.endpoints]
        names = sorted({e.name for e in every})
        unknown = [n for n in only if n not in names]
        if unknown:
            guess = nearest(unknown[0], names)
            raise UsageError(
                f"no endpoint named '{unknown[0]}' in the manifests"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"endpoints there: {', '.join(names)}",
            )
        self.endpoints = [e for e in every if not only or e.name in only]

    @property
    def files(self) -> list[str]:
        return [m.file for m in self.manifests]

    @property
    def total(self) -> int:
        return sum(e.count for e in self.endpoints)

    @property
    def secrets(self) -> list[str]:
        return [s for m in self.manifests for s in m.secrets]

    @property
    def endpoint_names(self) -> list[str]:
        return sorted({e.name for e in self.endpoints})

    def requests(self) -> Iterator[PlannedRequest]:
        for endpoint in self.endpoints:
            yield from endpoint.requests(self.layout)

    def summary(self) -> dict[str, Any]:
        """The plan in brief: per endpoint, where it is defined and how many entries it gives."""
        return {
            "manifests": self.files,
            "total": self.total,
            "endpoints": [
                {
                    "name": e.name,
                    "file": e.file,
                    "line": e.line,
                    "method": e.method,
                    "entries": e.count,
                    "ttl_seconds": e.ttl_ms / 1000,
                    "matrix": {name: source.describe() for name, source in e.matrix},
                }
                for e in self.endpoints
            ],
        }

    def scrub(self, text: str) -> str:
        """`text` with every secret of the manifests masked (for errors from the network)."""
        return scrub(text, self.secrets)

    def check_unique_keys(self) -> None:
        """A ManifestError naming both places when two requests of the plan write one key
        (checked once per plan: `warm --every` does not pay for it each round)."""
        if not self.__dict__.get("_keys_checked"):
            from cachectl.manifest_keys import check_unique_keys

            check_unique_keys(self)
            self._keys_checked = True

    def request_for_entry(
        self, key: str, endpoint: str, params: Mapping[str, Any]
    ) -> tuple[PlannedRequest | None, str | None]:
        """The request that refreshes an existing entry (read back from its key), or None and
        why not: the first definition of `endpoint` whose templates the params fill is used,
        and the key it gives must be the entry's own key."""
        candidates = [e for e in self.endpoints if e.name == endpoint]
        if not candidates:
            return None, "not_in_manifest"
        for definition in candidates:
            needed = definition.url.names.union(
                *(t.names for t in (*definition.tags, *definition.depends_on)),
                definition.fallback_url.names if definition.fallback_url else (),
            )
            if needed <= set(params):
                request = definition.request_for(dict(params), self.layout)
                return (request, None) if request.key == key else (None, "key_mismatch")
        return None, "params_do_not_fit"
