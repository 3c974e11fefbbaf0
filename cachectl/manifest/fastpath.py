"""The fast path of plan expansion: each endpoint's templates and key head compiled once,
equal to `Endpoint.request_for` on each combination (tests/unit/test_manifest_fastpath.py)."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cachectl.layout import (
    NO_PARAMS,
    Layout,
    js_sort_key,
    js_string,
    js_stringify,
    param_order,
    well_formed,
)
from cachectl.manifest.templates import _SAFE_INTEGER, Template, _query_value, _text_of, _url_value

if TYPE_CHECKING:
    from cachectl.manifest.model import Endpoint


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
    # Here, not at the top: model imports this module (Endpoint.requests compiles with it).
    from cachectl.manifest.model import PlannedRequest

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
