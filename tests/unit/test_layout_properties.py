"""Properties of the JavaScript-compatible encoder, glob escaping and key parsing, over
generated values (and, where node is installed, against node itself)."""

from __future__ import annotations

import json
import math
import random
import re
import struct
import subprocess

from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl.layout import (
    Layout,
    LayoutConfig,
    encode_params,
    escape_glob,
    js_sort_key,
    js_string,
    js_stringify,
)

# Generated cases must never fail on how long they took.
PROPERTY = settings(deadline=None, max_examples=300)

# ECMA-262 Number::toString: fixed notation, or one digit, optional fraction, signed exponent.
JS_NUMBER = re.compile(r"-?(?:(?:0|[1-9]\d*)(?:\.\d*[1-9])?|[1-9](?:\.\d*[1-9])?e[+-][1-9]\d*)")

finite_floats = st.floats(allow_nan=False, allow_infinity=False)
safe_ints = st.integers(min_value=-(2**53), max_value=2**53)


def json_like(scalars, keys=None):
    keys = st.text(max_size=5) if keys is None else keys
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
        max_leaves=12,
    )


json_values = json_like(st.none() | st.booleans() | safe_ints | finite_floats | st.text())


def utf16_normalized(s: str) -> str:
    """`s` as a JavaScript string reads: surrogate pairs joined, lone surrogates kept."""
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


def as_javascript_holds_it(value):
    """`value` as JavaScript holds it after JSON.parse: every number a double, strings UTF-16."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        return utf16_normalized(value)
    if isinstance(value, dict):
        return {as_javascript_holds_it(k): as_javascript_holds_it(v) for k, v in value.items()}
    return [as_javascript_holds_it(v) for v in value]


def redis_glob_match(pattern: bytes, string: bytes) -> bool:
    """A reference port of Redis's stringmatchlen (util.c), case-sensitive."""
    p = s = 0
    while p < len(pattern) and s < len(string):
        c = pattern[p]
        if c == ord("*"):
            while p + 1 < len(pattern) and pattern[p + 1] == ord("*"):
                p += 1
            if p + 1 == len(pattern):
                return True
            return any(
                redis_glob_match(pattern[p + 1 :], string[i:]) for i in range(s, len(string))
            )
        if c == ord("?"):
            s += 1
        elif c == ord("["):
            p += 1
            negate = p < len(pattern) and pattern[p] == ord("^")
            p += negate
            matched = False
            while True:
                if p < len(pattern) - 1 and pattern[p] == ord("\\"):
                    p += 1
                    matched |= pattern[p] == string[s]
                elif p < len(pattern) and pattern[p] == ord("]"):
                    break
                elif p >= len(pattern):
                    p -= 1
                    break
                elif p + 2 < len(pattern) and pattern[p + 1] == ord("-"):
                    low, high = sorted((pattern[p], pattern[p + 2]))
                    matched |= low <= string[s] <= high
                    p += 2
                else:
                    matched |= pattern[p] == string[s]
                p += 1
            if matched == negate:
                return False
            s += 1
        else:
            if c == ord("\\") and p + 1 < len(pattern):
                p += 1
            if pattern[p] != string[s]:
                return False
            s += 1
        p += 1
        if s == len(string):
            while p < len(pattern) and pattern[p] == ord("*"):
                p += 1
    return p == len(pattern) and s == len(string)


def test_reference_glob_matcher_follows_redis():
    assert redis_glob_match(b"api_cache:*", b"api_cache:x")
    assert not redis_glob_match(b"api_cache:*", b"api_cache")
    assert redis_glob_match(b"a?c", b"abc")
    assert redis_glob_match(b"[a-c]x", b"bx") and not redis_glob_match(b"[^a-c]x", b"bx")
    assert redis_glob_match(b"\\*", b"*") and not redis_glob_match(b"\\*", b"x")
    assert redis_glob_match(b"a\\", b"a\\")


# --- numbers ---------------------------------------------------------------------------------


@PROPERTY
@given(finite_floats)
def test_float_reads_back_to_the_same_double(x):
    # float(): 1e16-scale doubles are written as integers, which Python would read as ints.
    assert float(json.loads(js_stringify(x))) == x


@PROPERTY
@given(finite_floats)
def test_float_follows_the_javascript_number_grammar(x):
    text = js_stringify(x)
    assert JS_NUMBER.fullmatch(text), text
    # Fixed notation exactly in JavaScript's range, exponent notation outside it.
    assert ("e" in text) == (x != 0 and not 1e-6 <= abs(x) < 1e21)


@PROPERTY
@given(finite_floats.filter(lambda x: abs(x) < 1e21 and x == int(x)))
def test_integral_float_has_no_point_or_exponent(x):
    assert re.fullmatch(r"-?\d+", js_stringify(x))


@PROPERTY
@given(finite_floats.filter(lambda x: x != 0))
def test_float_uses_the_fewest_digits_that_read_back(x):
    digits = re.sub(r"e.*|[-.]", "", js_stringify(x)).strip("0")
    shortest = re.sub(r"e.*|[-.]", "", repr(abs(x))).strip("0")
    assert digits == shortest


@PROPERTY
@given(st.integers())
def test_int_is_written_as_the_double_javascript_holds(n):
    as_double = float(n) if abs(n) < 2**1024 else math.copysign(math.inf, n)
    assert js_stringify(n) == (js_stringify(as_double) if math.isfinite(as_double) else "null")


# --- strings ---------------------------------------------------------------------------------


@PROPERTY
@given(st.text())
def test_string_reads_back_unchanged(s):
    assert json.loads(js_stringify(s)) == s


# Surrogates are rare in st.characters(); mixing some in makes pairs and lone halves common.
with_surrogates = st.characters(exclude_categories=()) | st.sampled_from(
    "\ud83d\ude80\ud800\udfffa"
)


@PROPERTY
@given(st.text(alphabet=with_surrogates))
def test_string_with_surrogates_reads_back_as_javascript_holds_it(s):
    out = js_stringify(s)
    assert json.loads(out) == utf16_normalized(s)
    out.encode("utf-8")  # lone surrogates are escaped, so the text is always valid UTF-8


@PROPERTY
@given(st.text(alphabet=st.characters(exclude_characters='"\\', exclude_categories=("Cc", "Cs"))))
def test_string_without_control_characters_is_written_raw(s):
    assert js_stringify(s) == f'"{s}"'


# --- structures ------------------------------------------------------------------------------


@PROPERTY
@given(json_values)
def test_nested_value_reads_back_equal(value):
    assert as_javascript_holds_it(json.loads(js_stringify(value))) == as_javascript_holds_it(value)


@PROPERTY
@given(
    json_like(
        st.none() | st.booleans() | safe_ints | st.text(),
        keys=st.text(max_size=5).filter(lambda k: not k.isdigit()),
    )
)
def test_value_without_floats_or_index_keys_is_compact_json(value):
    # Python's compact json agrees with JavaScript wherever numbers and key order cannot differ.
    assert js_stringify(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- params ----------------------------------------------------------------------------------


@PROPERTY
@given(
    st.lists(
        st.text(alphabet=st.characters(exclude_characters="|", exclude_categories=("Cs",))),
        unique=True,
        max_size=8,
    )
)
def test_param_names_sort_by_utf16_code_units(names):
    encoded = encode_params({name: i for i, name in enumerate(names)})
    written = [] if encoded == "no_params" else [p.rpartition(":")[0] for p in encoded.split("|")]
    assert written == sorted(names, key=lambda s: s.encode("utf-16-be"))


simple_endpoints = st.from_regex(r"[a-z_]{1,12}(/[a-z_]{1,6})?", fullmatch=True)
simple_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)


@PROPERTY
@given(simple_endpoints, st.dictionaries(simple_names, json_values, max_size=5))
def test_json_entry_key_parses_back_to_its_params(endpoint, params):
    layout = Layout(LayoutConfig())
    parsed = layout.parse_entry(layout.entry(endpoint, params))
    assert parsed.endpoint == endpoint
    assert as_javascript_holds_it(parsed.params) == as_javascript_holds_it(params)


@PROPERTY
@given(
    simple_endpoints,
    st.dictionaries(
        simple_names,
        st.text(alphabet=st.characters(exclude_characters="|", exclude_categories=("Cs",))),
        max_size=5,
    ),
)
def test_plain_entry_key_parses_back_to_its_params(endpoint, params):
    layout = Layout(LayoutConfig(param_encoding="plain"))
    parsed = layout.parse_entry(layout.entry(endpoint, params))
    assert (parsed.endpoint, parsed.params) == (endpoint, params)


@PROPERTY
@given(
    simple_endpoints,
    st.dictionaries(simple_names, json_values, max_size=4),
    st.none() | st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
)
def test_versioned_entry_key_parses_back_to_its_call(endpoint, params, user_id):
    layout = Layout(LayoutConfig(scheme="versioned", header_allowlist=("Accept-Language",)))
    key = layout.entry(endpoint, params, user_id=user_id, headers={"Accept-Language": "fr"})
    parsed = layout.parse_entry(key)
    assert (parsed.endpoint, parsed.user_id, parsed.headers) == (
        endpoint,
        user_id,
        {"Accept-Language": "fr"},
    )
    assert as_javascript_holds_it(parsed.params) == as_javascript_holds_it(params)


# --- globs -----------------------------------------------------------------------------------

glob_text = st.text(alphabet="ab*?[]\\^-:é", max_size=8)


@PROPERTY
@given(glob_text, glob_text)
def test_escaped_glob_matches_only_itself(s, other):
    pattern = escape_glob(s).encode()
    assert redis_glob_match(pattern, s.encode())
    assert redis_glob_match(pattern, other.encode()) == (s == other)


@PROPERTY
@given(st.binary(max_size=8), st.binary(max_size=8))
def test_escaped_bytes_glob_matches_only_itself(s, other):
    assert redis_glob_match(escape_glob(s), s)
    assert redis_glob_match(escape_glob(s), other) == (s == other)


glob_starts = st.sampled_from(
    ["api_cache:", "api_cache", "api_", "", "[a]pi_cache:", "api\\_cache:", "api_cache\\:", "a*"]
)
key_starts = st.sampled_from(
    ["api_cache:", "api_cache", "api_cache_backup:", "api_cachex", "tag:", ""]
)


@PROPERTY
@given(glob_starts, glob_text, key_starts, glob_text)
def test_pattern_within_entries_never_admits_a_key_outside_them(
    glob_start, glob_rest, key_start, key_rest
):
    glob, key = glob_start + glob_rest, key_start + key_rest
    if Layout(LayoutConfig()).pattern_within_entries(glob) and redis_glob_match(
        glob.encode(), key.encode()
    ):
        assert key.startswith("api_cache:")


# --- against node itself ---------------------------------------------------------------------

_NODE_SCRIPT = r"""
let input = "";
process.stdin.on("data", (d) => (input += d));
process.stdin.on("end", () => {
  const { values, names } = JSON.parse(input);
  const out = values.map((v) => [JSON.stringify(v), String(v)]);
  process.stdout.write(JSON.stringify({ out, sorted: names.slice().sort() }));
});
"""


def _node_cases(rng: random.Random) -> tuple[list, list[str]]:
    specials = [
        0.1,
        1e21,
        1e-7,
        123e-20,
        5e-324,
        1.7976931348623157e308,
        2**53 + 1,
        10**21,
        -1e-7,
        1e16,
    ]
    doubles = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(400)]
    scaled = [rng.uniform(-1, 1) * 10 ** rng.randint(-12, 25) for _ in range(400)]
    ints = [rng.randint(-(2**70), 2**70) for _ in range(100)]
    alphabet = 'ab"\\\x00\x07\x1f\x7f\u2028\u2029\ud800\udc00\ud83d\ude80é日\ue000\uffff:|[*]'
    strings = ["".join(rng.choices(alphabet, k=rng.randint(0, 8))) for _ in range(300)]
    numbers = [
        x
        for x in specials + doubles + scaled + ints
        if not isinstance(x, float) or math.isfinite(x)
    ]
    objects = [
        {
            "b": 1,
            "a": [2, None, "x"],
            "10": {},
            "2": [[]],
            "01": True,
            "4294967294": 0,
            "4294967295": 0,
        }
    ]
    return numbers + strings + objects + [[1, [2, [None]], {"k": "v"}]], strings


def test_encoder_agrees_with_node(node):
    values, names = _node_cases(random.Random(20240611))
    # ensure_ascii carries lone surrogates to node as \\udXXX escapes, which JSON.parse keeps.
    payload = json.dumps({"values": values, "names": names})
    run = subprocess.run(
        [node, "-e", _NODE_SCRIPT],
        input=payload,
        capture_output=True,
        encoding="utf-8",
        timeout=120,
        check=True,
    )
    result = json.loads(run.stdout)
    # String() keeps surrogates; JSON carries a pair back as one astral character.
    mismatches = [
        (value, expected, ours)
        for value, expected in zip(values, result["out"])
        if expected != (ours := [js_stringify(value), utf16_normalized(js_string(value))])
    ]
    assert not mismatches, mismatches[:5]
    assert [utf16_normalized(n) for n in sorted(names, key=js_sort_key)] == result["sorted"]
