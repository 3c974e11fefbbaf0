"""Property: over random keyspaces and random selections, what `invalidate` deletes is exactly
the union the selection describes, computed here from a model that never asks Redis."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl.config import Settings
from cachectl.keytext import show_bytes
from cachectl.layout import Layout, LayoutConfig, escape_glob
from cachectl.ops.invalidate import InvalidateOptions, invalidate
from cachectl.ops.selection import Filters, SelectionSpec, resolve_selection
from cachectl.store import Store

LAYOUTS = {enc: Layout(LayoutConfig(param_encoding=enc)) for enc in ("json", "plain")}
LAYOUT = LAYOUTS["json"]
ENDPOINTS = ["a", "ab", "a:b", "x*", "xa", "y?z", "yaz", "[q]", "q", "é", "back\\slash"]
TAGS = ["t1", "t2", "t3"]
OTHER_KEYS = [
    b"session:1",
    b"api_cache_backup:a:no_params",
    b"API_CACHE:a:no_params",
    b"tag",
    b"app:api_cache:a:no_params",
]

entries = st.lists(
    st.tuples(
        st.sampled_from(ENDPOINTS),
        st.dictionaries(
            st.sampled_from(["id", "q"]),
            st.one_of(st.integers(0, 9), st.sampled_from(["s", "t*", "ü"])),
            max_size=2,
        ),
        st.sampled_from(["json", "plain"]),
        st.frozensets(st.sampled_from(TAGS)),
    ),
    min_size=1,
    max_size=25,
)


def glob_regex(glob: str) -> re.Pattern:
    """Redis glob semantics for the patterns generated here (* ? [...] [^...] and escapes),
    over bytes as Redis matches them: `?` is one byte, not one character."""
    raw, out, i = glob.encode(), b"", 0
    while i < len(raw):
        c = raw[i : i + 1]
        if c == b"\\" and i + 1 < len(raw):
            out += re.escape(raw[i + 1 : i + 2])
            i += 2
            continue
        if c == b"*":
            out += b".*"
        elif c == b"?":
            out += b"."
        elif c == b"[":
            end = raw.index(b"]", i + 1)
            body = raw[i + 1 : end]
            out += (
                b"[^" + re.escape(body[1:]) + b"]"
                if body.startswith(b"^")
                else b"[" + re.escape(body) + b"]"
            )
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out, re.DOTALL)


@st.composite
def selections(draw, keys: list[str]):
    spec = {
        "tags": draw(st.lists(st.sampled_from(TAGS + ["missing"]), max_size=2)),
        "endpoints": draw(st.lists(st.sampled_from(ENDPOINTS), max_size=2)),
        "keys": draw(st.lists(st.sampled_from(keys + ["api_cache:none:no_params"]), max_size=3)),
        "patterns": draw(
            st.lists(
                st.one_of(
                    st.sampled_from(ENDPOINTS).map(lambda e: f"api_cache:{escape_glob(e)}*"),
                    st.sampled_from(
                        ["api_cache:?:*", "api_cache:[ax]*", "api_cache:[^a]*", "api_cache:*t\\**"]
                    ),
                ),
                max_size=2,
            )
        ),
    }
    if not any(spec.values()):
        spec["tags"] = ["t1"]
    return spec


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), written=entries)
def test_deleted_set_equals_the_selection(redis_server, data, written):
    client = redis_server.client()
    client.flushall()
    tagged: dict[str, set[bytes]] = {t: set() for t in TAGS}
    keys: dict[str, str] = {}
    for endpoint, params, encoding, tags in written:
        key = LAYOUTS[encoding].entry(endpoint, params)
        keys[key] = endpoint
        client.set(key, "v")
        for tag in tags:
            client.sadd(LAYOUT.tag(tag), key)
            tagged[tag].add(key.encode())
    for other in OTHER_KEYS:
        client.set(other, "x")
    spec = data.draw(selections(sorted(keys)))

    existing = {k.encode() for k in keys}
    expected: set[bytes] = set()
    for tag in spec["tags"]:
        expected |= tagged.get(tag, set())
    for endpoint in spec["endpoints"]:
        expected |= {k for k in existing if k.startswith(f"api_cache:{endpoint}:".encode())}
    expected |= {k.encode() for k in spec["keys"]} & existing
    for pattern in spec["patterns"]:
        regex = glob_regex(pattern)
        expected |= {k for k in existing if regex.fullmatch(k)}

    with Store(Settings(url=redis_server.url)) as store:
        # --key takes a key as `keys` prints it (a backslash doubled, odd bytes escaped).
        typed = {**spec, "keys": [show_bytes(k) for k in spec["keys"]]}
        selection = resolve_selection(LAYOUT, SelectionSpec(**typed))
        result = invalidate(
            store, selection, Filters(), InvalidateOptions(batch_size=3, scan_count=5)
        )
    left = set(client.scan_iter(count=1000))
    assert existing - left == expected
    assert result.deleted == len(expected)
    assert set(OTHER_KEYS) <= left
