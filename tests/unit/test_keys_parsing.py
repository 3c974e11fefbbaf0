"""The pure parts of `keys`: reading entry keys back (as Layout.parse_entry does, faster),
showing keys and values safely, Redis globs, and one row as a JSON line."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl.errors import UsageError
from cachectl.keytext import safe_text, show_bytes, unshow_bytes
from cachectl.layout import Layout, LayoutConfig
from cachectl.layout_parse import EntryParser, entry_prefix_is_shared, glob_to_regex, owned_prefixes
from cachectl.ops.keys import FIELDS, KeyRow, parse_fields
from cachectl.render.keys import key_row_json, key_row_serializer
from tests.unit.test_layout_vectors import VECTORS

PROPERTY = settings(deadline=None, max_examples=400)

# Param values and names built to hit the parser's edges: "|" and ":" inside strings, escapes,
# nesting, numbers in exponent form, non-ASCII names and values.
tricky_text = st.text(alphabet=st.sampled_from(list('ab|:"\\[]{},é🚀\n ')), max_size=6)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | tricky_text
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(tricky_text, inner, max_size=3),
    max_leaves=6,
)
names = st.text(alphabet=st.sampled_from(list('abcXYZ_é:|"')), min_size=1, max_size=4)
endpoints = st.text(alphabet=st.sampled_from(list("abc_:[]*?")), min_size=1, max_size=8)


@PROPERTY
@given(endpoint=endpoints, params=st.dictionaries(names, values, max_size=4))
def test_fast_parse_reads_every_key_as_parse_entry_does(endpoint, params):
    layout = Layout()
    key = layout.entry(endpoint, params)
    expected = layout.parse_entry(key)
    endpoint_read, params_read, params_json = EntryParser(layout).parse(key.encode(), key)
    assert (endpoint_read, params_read) == (expected.endpoint, expected.params)
    if params_json is not None:
        assert json.loads(params_json) == params_read
    assert EntryParser(layout).endpoint(key.encode(), key) == expected.endpoint


def _vector_keys() -> list[tuple[LayoutConfig, str]]:
    out = []
    for case in VECTORS:
        for encoding in ("json", "plain"):
            if encoding in case:
                out.append((LayoutConfig(param_encoding=encoding), case[encoding]))
        if "versioned" in case:
            version = case.get("versioned_options", {}).get("version", "v1")
            out.append((LayoutConfig(scheme="versioned", version=version), case["versioned"]))
    return out


@pytest.mark.parametrize(("config", "key"), _vector_keys())
def test_fast_parse_agrees_on_every_shared_vector(config, key):
    layout = Layout(config)
    expected = layout.parse_entry(key)
    assert EntryParser(layout).parse(key.encode(), key)[:2] == (expected.endpoint, expected.params)


@pytest.mark.parametrize(
    "key",
    [
        "api_cache:a:b:id:1",  # an endpoint holding ":" needs a second split
        'api_cache:search:q:"a|b:c"',  # "|" inside a string
        "api_cache:x:b:1|a:2",  # names out of order: not a key JavaScript writes
        "api_cache:x:a:NaN",  # not JSON
        "api_cache:x:a:1 ",  # trailing space
        "api_cache:x:",
        "api_cache:x",
        'api_cache:x:a:1,"a":2',  # a value that would smuggle a second member in
    ],
)
def test_keys_off_the_fast_path_get_parse_entrys_answer(key):
    layout = Layout()
    expected = layout.parse_entry(key)
    assert EntryParser(layout).parse(key.encode(), key)[:2] == (expected.endpoint, expected.params)


def test_non_utf8_and_versioned_keys_go_to_parse_entry():
    layout = Layout()
    raw = b"api_cache:ep:id:\xff"
    # Read as parse_entry reads it, the stray byte escaped as show_bytes escapes the key.
    assert EntryParser(layout).parse(raw, None)[:2] == ("ep", {"id": "\\xff"})
    assert layout.parse_entry(raw).params == {"id": "\ufffd"}
    versioned = Layout(LayoutConfig(scheme="versioned", version="v2"))
    key = versioned.entry("products", {"limit": 10}, user_id="u1")
    assert EntryParser(versioned).parse(key.encode(), key)[:2] == ("products", {"limit": 10})


def test_endpoints_that_are_not_utf8_stay_apart_and_read_back():
    parser = EntryParser(Layout())
    one, two = b"api_cache:\xff:no_params", b"api_cache:\xfe:no_params"
    assert parser.endpoint(one, None) == "\\xff" != parser.endpoint(two, None)
    assert unshow_bytes(parser.parse(one, None)[0]) == b"\xff"
    assert parser.parse(b'api_cache:e\\:q:"\xff\\\\"', None)[:2] == ("e\\\\", {"q": "\\xff\\\\"})


def test_safe_text_escapes_control_characters_only():
    assert safe_text("a\x1b[31m\x9bb\\c é") == "a\\x1b[31m\\u009bb\\c é"
    assert safe_text("plain") == "plain"


@given(st.binary(max_size=40))
@settings(deadline=None, max_examples=500)
def test_shown_bytes_read_back_and_never_hold_control_characters(raw):
    shown = show_bytes(raw)
    assert unshow_bytes(shown) == raw
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", shown)


def test_plain_utf8_keys_are_shown_as_they_are():
    assert show_bytes('api_cache:search:q:"café"'.encode()) == 'api_cache:search:q:"café"'
    assert show_bytes(b"a\xffb\nc\\d") == "a\\xffb\\nc\\\\d"


@pytest.mark.parametrize(
    ("glob", "matches", "misses"),
    [
        (b"api_cache:*", [b"api_cache:", b"api_cache:x:y"], [b"api_cachex", b"tag:x"]),
        (b"a?c", [b"abc", b"a:c"], [b"ac", b"abbc"]),
        (b"[abc]x", [b"ax", b"cx"], [b"dx", b"x"]),
        (b"[^a]x", [b"bx"], [b"ax"]),
        (b"[a-c]", [b"b"], [b"d"]),
        (b"x\\*y", [b"x*y"], [b"xay"]),
        (b"ep\\[1\\]:*", [b"ep[1]:id:1"], [b"ep1:id:1"]),
        (b"*\n*", [b"a\nb"], [b"ab"]),
    ],
)
def test_redis_globs_match_as_redis_matches(glob, matches, misses):
    regex = glob_to_regex(glob)
    assert all(regex.match(k) for k in matches)
    assert not any(regex.match(k) for k in misses)


def test_owned_prefixes_come_from_the_layout_patterns():
    layout = Layout(LayoutConfig(prefix="shop:api[cache]", tag_prefix="t*g"))
    prefixes = owned_prefixes(layout)
    assert b"shop:api[cache]:" in prefixes and b"t*g:" in prefixes
    assert b"cache_entries" in prefixes and b"cache_access" in prefixes
    assert all(layout.kind(p + b"x") is not None or layout.kind(p) is not None for p in prefixes)


def test_a_prefix_nested_in_the_entry_prefix_is_noticed():
    assert not entry_prefix_is_shared(Layout())
    assert entry_prefix_is_shared(Layout(LayoutConfig(metrics_prefix="api_cache:metrics")))


@pytest.mark.parametrize(
    "row",
    [
        KeyRow(
            b"api_cache:ep:id:1",
            "api_cache:ep:id:1",
            "string",
            1500,
            72,
            "ep",
            {"id": 1},
            '{"id":1}',
        ),
        KeyRow(b"api_cache:ep:\xff", "api_cache:ep:\\xff", "hash", -1, None, "ep", None),
        KeyRow(b'api_cache:q:q:"\xc3\xa9"', 'api_cache:q:q:"é"', "string", 0, 10, "q", {"q": "é"}),
    ],
)
def test_a_json_line_says_what_to_dict_says(row):
    assert json.loads(key_row_json(row)) == json.loads(json.dumps(row.to_dict()))


@pytest.mark.parametrize(
    "fields",
    [
        (),
        ("type",),
        ("ttl",),
        ("size",),
        ("endpoint", "params"),
        ("type", "ttl", "size"),
        ("ttl", "endpoint", "params"),
        ("type", "ttl", "size", "endpoint", "params"),
    ],
)
@pytest.mark.parametrize(
    "row",
    [
        KeyRow(
            b"api_cache:ep:id:1",
            "api_cache:ep:id:1",
            "string",
            1500,
            72,
            "ep",
            {"id": 1},
            '{"id":1}',
        ),
        KeyRow(b"api_cache:ep:\xff", "api_cache:ep:\\xff", None, None, None, "ep", None),
        KeyRow(b'api_cache:q:q:"\xc3\xa9"', 'api_cache:q:q:"é"', "hash", -1, 10, "q", {"q": "é"}),
    ],
)
def test_a_json_line_of_some_fields_says_what_to_dict_says(row, fields):
    line = key_row_serializer(fields)(row)
    assert list(json.loads(line)) == list(row.to_dict(fields))
    assert json.loads(line) == json.loads(json.dumps(row.to_dict(fields)))


def test_fields_are_read_in_their_order_and_checked():
    assert parse_fields(None) == FIELDS
    assert parse_fields("params, TTL,key") == ("ttl", "params")
    assert parse_fields("key") == ()
    assert parse_fields("size_bytes,ttl_seconds") == ("ttl", "size")
    with pytest.raises(UsageError, match="colour"):
        parse_fields("ttl,colour")
