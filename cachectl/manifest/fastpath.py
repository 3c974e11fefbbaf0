"""The fast path of key expansion: an endpoint's entry key compiled once into a str.format
template with one slot per matrix value, equal to the key of `Endpoint.request_for` on each
combination (tests/unit/test_manifest_fastpath.py). It serves the check that no two requests
write one key (cachectl/manifest/keys.py), which runs before warm's first request: 0.76 us a key
against 1.83 us through Layout.entry (benchmarks/plan_expand.py), a second saved per million keys
with nothing to overlap it. Whole requests are expanded by the reference path alone: compiled,
they took 2.4 us instead of 5.8, but during a warm that is a few percent of a core beside the
wait on the origin."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cachectl.layout import (
    NO_PARAMS,
    Layout,
    js_sort_key,
    js_string,
    js_stringify,
    param_order,
    well_formed,
)
from cachectl.manifest.templates import _SAFE_INTEGER, _text_of

if TYPE_CHECKING:
    from cachectl.manifest.model import Endpoint


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
