"""The text warm stores for an answer: JSON.stringify(JSON.parse(body)) (docs/keyspace.md), whether
it is written by the quick path (Python's C encoder) or by js_stringify."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl.layout import js_stringify
from cachectl.ops import warm_http
from cachectl.ops.warm_http import parse_json_body, stored_json

PROPERTY = settings(deadline=None, max_examples=400)


def reference(body: bytes) -> bytes:
    ok, value = parse_json_body(body)
    assert ok
    return js_stringify(value).encode()


@pytest.mark.parametrize(
    ("body", "stored"),
    [
        # Already as JSON.stringify writes it: stored as it came.
        (b'{"path":"/items/1","price":19.5,"tags":["a","b"],"n":null,"ok":true}', None),
        # Whitespace and escapes JavaScript would not write.
        (b'{ "a" : [1, 2.25 ,"\\u00e9\\/"] }\n', '{"a":[1,2.25,"é/"]}'.encode()),
        (b'\xef\xbb\xbf{"ok":true}', b'{"ok":true}'),  # a BOM, ignored as fetch's .json() does
        # Numbers JavaScript writes otherwise than Python's repr.
        (
            b"[2.0, -0.0, 1e21, 1E-7, 0.00001, 1e16, 123456789012345678901]",
            b"[2,0,1e+21,1e-7,0.00001,10000000000000000,123456789012345680000]",
        ),
        (
            b"[9007199254740992, -9007199254740992, 9007199254740993]",
            b"[9007199254740992,-9007199254740992,9007199254740992]",
        ),
        (b"[0.0001, 9999999999999998.5, -1.5]", b"[0.0001,9999999999999998,-1.5]"),
        # Array-index keys come first in JavaScript, ascending.
        (
            b'{"z":1,"10":"ten","2":"two","02":"not an index"}',
            b'{"2":"two","10":"ten","z":1,"02":"not an index"}',
        ),
        (b'{"a":{"b":{"7":0,"c":1}}}', b'{"a":{"b":{"7":0,"c":1}}}'),
        # A key ending in digits after an escaped quote: not an index, whichever path writes it.
        (b'{"x\\"1":2,"y":3}', b'{"x\\"1":2,"y":3}'),
        # Control characters, quotes, backslashes, U+2028 and a lone surrogate.
        (
            b'["\\u0001\\b\\f\\n\\r\\t\\"\\\\\\u007f\\u2028", "\\ud800", "\\ud83d\\ude00"]',
            '["\\u0001\\b\\f\\n\\r\\t\\"\\\\\x7f\u2028","\\ud800","😀"]'.encode(),
        ),
        (b'"just a string"', None),
        (b"42", None),
        (b"null", None),
        (b'{"a":1,"a":2,"b":3}', b'{"a":2,"b":3}'),  # the last duplicate wins, in the first place
    ],
)
def test_stored_text_is_what_json_stringify_writes(body, stored):
    ok, value, text = stored_json(body)
    assert ok
    assert text == (body if stored is None else stored)
    assert text == reference(body)
    assert value == parse_json_body(body)[1]


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"{", b"[1,]", b'{"a":NaN}', b"Infinity", b"\xff\xfe", b"[1] [2]"]
)
def test_a_body_that_is_not_json_is_refused_like_parse_json_body(body):
    assert stored_json(body) == (False, None, b"")
    assert parse_json_body(body) == (False, None)


@pytest.mark.parametrize("depth", [600, 5000])
def test_an_answer_nested_too_deeply_is_refused_not_raised(depth):
    # 600 levels parse, but js_stringify (for the float) cannot write them; 5000 do not parse.
    assert stored_json(b"[" * depth + b"1.0" + b"]" * depth) == (False, None, b"")


def test_the_quick_path_really_is_taken(monkeypatch):
    calls = []
    monkeypatch.setattr(warm_http, "js_stringify", lambda v: calls.append(v) or json.dumps(v))
    assert stored_json(b'{"a": [1, 2.5, "x"]}')[2] == b'{"a":[1,2.5,"x"]}'
    assert calls == []
    stored_json(b'{"a": 2.0}')  # a number that needs JavaScript's form
    stored_json(b'{"1": 0}')  # an array-index key
    stored_json(b'["\\udc00"]')  # a lone surrogate
    assert len(calls) == 3


scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(
        [0.1, 1e-4, 9.99e-5, 1e15 + 0.5, 1e16, 123.0, -0.0, 5e-324, 1.7976931348623157e308]
    )
    | st.text()
)
keys = st.text(max_size=4) | st.integers(min_value=0, max_value=2**33).map(str) | st.just("1")
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=16,
)


@PROPERTY
@given(values, st.booleans(), st.sampled_from([None, 1]))
def test_generated_answers_are_stored_as_json_stringify_writes_them(value, ascii_only, indent):
    # Compact or indented, non-ASCII raw or escaped: what origins send.
    body = json.dumps(value, ensure_ascii=ascii_only, indent=indent).encode()
    ok, _, text = stored_json(body)
    assert ok
    assert text == reference(body)
