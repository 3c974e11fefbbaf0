"""Key names, patterns, classification and parsing of the cache's keyspace (docs/keyspace.md)."""

from __future__ import annotations

import math
from fnmatch import fnmatchcase

import pytest

from cachectl.errors import ConfigError, ExitCode, UsageError
from cachectl.layout import (
    Layout,
    LayoutConfig,
    encode_params,
    escape_glob,
    js_string,
    js_stringify,
    parse_cli_param,
)

STANDARD = Layout(LayoutConfig())
VERSIONED = Layout(
    LayoutConfig(
        scheme="versioned", version="v1", header_allowlist=("Accept-Language", "Authorization")
    )
)
SHOP = Layout(LayoutConfig(prefix="shop:api_cache"))


# --- JSON.stringify and String() -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2.0, "2"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (1.5e-10, "1.5e-10"),
        (1e16, "10000000000000000"),
        (123456789012345678901, "123456789012345680000"),
        (2**53 + 1, "9007199254740992"),
        (-1.7976931348623157e308, "-1.7976931348623157e+308"),
        (5e-324, "5e-324"),
        (math.nan, "null"),
        (math.inf, "null"),
        (2**1024, "null"),  # beyond the largest double: Infinity in JavaScript
    ],
)
def test_numbers_are_written_as_javascript_writes_them(value, expected):
    assert js_stringify(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("\x00\x08\x0c\x1f\x7f", '"\\u0000\\b\\f\\u001f\x7f"'),
        ("\u2028\u2029é🚀", '"\u2028\u2029é🚀"'),
        ("\ud800", '"\\ud800"'),
        ("a\udc00", '"a\\udc00"'),
        ("\ud83d\ude80", '"🚀"'),  # a pair held as two code points is one character in JavaScript
        ('say "hi" \\ bye', '"say \\"hi\\" \\\\ bye"'),
    ],
)
def test_strings_are_escaped_as_javascript_escapes_them(value, expected):
    assert js_stringify(value) == expected


def test_objects_put_array_index_keys_first_then_insertion_order():
    value = {"b": 1, "4294967295": 2, "10": 3, "a": 4, "2": 5, "02": 6, "4294967294": 7}
    expected = '{"2":5,"10":3,"4294967294":7,"b":1,"4294967295":2,"a":4,"02":6}'
    assert js_stringify(value) == expected


def test_non_string_object_keys_become_javascript_property_names():
    assert (
        js_stringify({1: "a", 1.5: "b", None: "c", False: "d"})
        == '{"1":"a","1.5":"b","null":"c","false":"d"}'
    )


def test_tuples_are_arrays():
    assert js_stringify(("a", (1, None))) == '["a",[1,null]]'


def test_values_json_cannot_hold_are_refused():
    with pytest.raises(TypeError, match="set"):
        js_stringify({"ids": {1, 2}})


def test_circular_structures_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="circular"):
        js_stringify(loop)


def test_shared_but_not_circular_values_are_written_twice():
    shared = [1]
    assert js_stringify({"a": shared, "b": shared}) == '{"a":[1],"b":[1]}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (math.nan, "NaN"),
        (-math.inf, "-Infinity"),
        (-(2**1024), "-Infinity"),
        (-0.0, "0"),
        (1e21, "1e+21"),
        ([1, None, [2, [None, "x"]], True], "1,,2,,x,true"),
        ([], ""),
        ({"a": 1}, "[object Object]"),
        ([{"a": 1}], "[object Object]"),
    ],
)
def test_string_conversion_is_javascripts(value, expected):
    assert js_string(value) == expected


# --- params ----------------------------------------------------------------------------------


@pytest.mark.parametrize("params", [None, {}])
def test_no_params_is_the_literal_no_params(params):
    assert STANDARD.entry("status", params) == "api_cache:status:no_params"
    assert encode_params(params, "plain") == "no_params"


def test_param_names_sort_by_utf16_code_units_not_code_points():
    # U+1F680 is the surrogate pair D83D DE80, which sorts before U+E000.
    assert encode_params({"\ue000": 1, "🚀": 2, "a": 3}) == "a:3|🚀:2|\ue000:1"


def test_unknown_param_encoding_is_refused():
    with pytest.raises(ValueError, match="csv"):
        encode_params({"a": 1}, "csv")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id=123", ("id", 123)),
        ('id="123"', ("id", "123")),
        ("q=hello", ("q", "hello")),
        ("x=", ("x", "")),
        ("tags=[1,2]", ("tags", [1, 2])),
        ("flag=true", ("flag", True)),
        ("n=null", ("n", None)),
        ("expr=a=b", ("expr", "a=b")),
        ("v=NaN", ("v", "NaN")),  # JSON.parse refuses NaN, so it is a string
        ("v=Infinity", ("v", "Infinity")),
    ],
)
def test_cli_param_value_is_json_when_it_parses_as_json(text, expected):
    assert parse_cli_param(text) == expected


@pytest.mark.parametrize("text", ["id", "=5", ""])
def test_cli_param_without_name_and_equals_is_a_usage_error(text):
    with pytest.raises(UsageError) as caught:
        parse_cli_param(text)
    assert caught.value.exit_code == ExitCode.USAGE
    assert caught.value.hint and "name=value" in caught.value.hint


def test_cli_number_and_cli_string_are_different_keys():
    number = STANDARD.entry("user", dict([parse_cli_param("id=123")]))
    string = STANDARD.entry("user", dict([parse_cli_param('id="123"')]))
    assert (number, string) == ("api_cache:user:id:123", 'api_cache:user:id:"123"')


# --- other keys ------------------------------------------------------------------------------


def test_index_metric_and_log_keys_follow_the_layout():
    assert STANDARD.tag("users") == "tag:users"
    assert STANDARD.dependency(42) == "depends_on:42"
    assert STANDARD.hits_total() == ("cache_metrics:hits", "total")
    assert STANDARD.misses_total() == ("cache_metrics:misses", "total")
    assert STANDARD.hits_endpoint("users") == ("cache_metrics:hits:users", "count")
    assert STANDARD.misses_endpoint("users") == ("cache_metrics:misses:users", "count")
    assert STANDARD.response_times() == "cache_metrics:response_times"
    assert STANDARD.entries_log() == "cache_entries"
    assert STANDARD.access_log() == "cache_access"
    assert STANDARD.metric("latency") == "metric:latency"
    assert STANDARD.meta("latency") == "meta:latency"
    assert STANDARD.agg("latency", "5m", 1700000000000) == "agg:latency:5m:1700000000000"


def test_custom_prefixes_are_used_everywhere():
    layout = Layout(
        LayoutConfig(
            prefix="shop:api_cache",
            tag_prefix="shop:tag",
            dependency_prefix="shop:dep",
            metrics_prefix="shop:metrics",
            entries_log="shop:entries",
            access_log="shop:access",
        )
    )
    assert layout.entry("cart", {"id": 1}) == "shop:api_cache:cart:id:1"
    assert layout.tag("t") == "shop:tag:t"
    assert layout.dependency("r") == "shop:dep:r"
    assert layout.hits_total() == ("shop:metrics:hits", "total")
    assert (layout.entries_log(), layout.access_log()) == ("shop:entries", "shop:access")


def test_unknown_aggregate_resolution_is_a_usage_error():
    with pytest.raises(UsageError, match="2m"):
        STANDARD.agg("latency", "2m", 0)


def test_lone_surrogates_reach_redis_as_replacement_characters():
    key = STANDARD.entry("e\ud800", {"n\udc00": "v"}, headers={"Accept": "x"})
    assert key == 'api_cache:e\ufffd:n\ufffd:"v"'
    key.encode("utf-8")


def test_standard_keys_hold_no_user_id():
    with pytest.raises(UsageError, match="versioned"):
        STANDARD.entry("users", {"id": 1}, user_id="u1")


# --- the versioned scheme --------------------------------------------------------------------


def test_versioned_key_has_user_params_and_allowed_headers():
    key = VERSIONED.entry(
        "search", {"q": "café", "n": 2}, user_id=7, headers={"accept-language": "fr"}
    )
    assert key == 'api:v1:search:user_7?n=2&q="café"#Accept-Language=fr'


def test_versioned_key_keeps_a_falsy_user_id_and_replaces_lone_surrogates():
    assert VERSIONED.entry("e\ud800", user_id=0) == "api:v1:e\ufffd:user_0"
    assert VERSIONED.entry("e", user_id="") == "api:v1:e"


def test_versioned_params_are_json_whatever_the_param_encoding():
    layout = Layout(LayoutConfig(scheme="versioned", param_encoding="plain"))
    assert layout.entry("p", {"c": "x"}) == 'api:v1:p?c="x"'


def test_header_outside_the_allow_list_never_enters_a_key():
    key = VERSIONED.entry("search", {"q": 1}, headers={"Accept": "text/html", "X-Trace": "abc"})
    assert key == "api:v1:search?q=1"


def test_credential_header_never_enters_a_key_even_when_allow_listed():
    key = VERSIONED.entry("me", headers={"Authorization": "Bearer s3cret", "Accept-Language": "de"})
    assert "s3cret" not in key
    assert key == "api:v1:me#Accept-Language=de"
    assert VERSIONED.key_headers({"authorization": "x", "ACCEPT-LANGUAGE": "de"}) == {
        "Accept-Language": "de"
    }


def test_no_header_enters_a_key_without_an_allow_list():
    layout = Layout(LayoutConfig(scheme="versioned"))
    assert layout.entry("e", headers={"Accept-Language": "fr"}) == "api:v1:e"


def test_for_version_gives_another_generation():
    v2 = VERSIONED.for_version("v2")
    assert v2.entry("e") == "api:v2:e"
    assert v2.entry_pattern() == "api:v2:*"
    assert not v2.is_entry("api:v1:e")


# --- patterns --------------------------------------------------------------------------------


def test_entry_patterns_cover_the_configured_entries():
    assert STANDARD.entry_pattern() == "api_cache:*"
    assert SHOP.entry_pattern() == "shop:api_cache:*"
    assert VERSIONED.entry_pattern() == "api:v1:*"


def test_endpoint_pattern_escapes_glob_characters():
    assert STANDARD.endpoint_pattern("glob*[end]?") == "api_cache:glob\\*\\[end\\]\\?:*"
    assert VERSIONED.endpoint_pattern("users") == "api:v1:users*"


def test_index_and_series_patterns():
    assert STANDARD.tag_pattern() == "tag:*"
    assert STANDARD.tag_pattern("user*") == "tag:user*"
    assert STANDARD.dependency_pattern() == "depends_on:*"
    assert STANDARD.metrics_pattern() == "cache_metrics:*"
    assert STANDARD.metric_pattern() == "metric:*"
    assert STANDARD.meta_pattern() == "meta:*"
    assert STANDARD.agg_pattern() == "agg:*"
    assert STANDARD.agg_pattern("cpu[0]") == "agg:cpu\\[0\\]:*"
    assert Layout(LayoutConfig(tag_prefix="t[1]")).tag_pattern() == "t\\[1\\]:*"


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ("a*b?c", "a\\*b\\?c"),
        ("[x]", "\\[x\\]"),
        ("a\\b", "a\\\\b"),
        (b"\xff*", b"\xff\\*"),
    ],
)
def test_escape_glob_backslashes_redis_glob_characters(raw, escaped):
    assert escape_glob(raw) == escaped


def test_owned_patterns_match_a_key_of_every_kind():
    keys = [
        "api_cache:e:no_params",
        "tag:t",
        "depends_on:r",
        "cache_metrics:hits",
        "cache_metrics:response_times",
        "metric:m",
        "meta:m",
        "agg:m:1m:0",
        "cache_entries",
        "cache_access",
    ]
    for key in keys:
        assert any(fnmatchcase(key, p) for p in STANDARD.owned_patterns()), key


# --- classification --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("api_cache:users:id:1", "entry"),
        (b"api_cache:users:id:1", "entry"),
        ("tag:users", "tag"),
        ("depends_on:user:1", "dependency"),
        ("cache_metrics:hits", "metrics"),
        ("cache_metrics:misses:users", "metrics"),
        ("cache_metrics:response_times", "metrics"),
        ("cache_entries", "entries_log"),
        ("cache_access", "access_log"),
        ("metric:cpu", "timeseries"),
        ("meta:cpu", "timeseries"),
        ("agg:cpu:1m:0", "timeseries"),
        (b"api_cache:\xff\xfe:no_params", "entry"),
        ("api_cache:\udcff:no_params", "entry"),  # bytes decoded with surrogateescape
    ],
)
def test_kind_of_owned_keys(key, kind):
    assert STANDARD.kind(key) == kind
    assert STANDARD.owns(key)


@pytest.mark.parametrize(
    "key",
    [
        "api_cache_backup:x",
        "API_CACHE:x",
        "app:api_cache:x",
        "tags:x",
        "tag",
        "api_cache",
        "cache_entries_old",
        "xcache_access",
        "metrics:x",
        "session:abc",
        b"\xff\xfe",
        b"",
    ],
)
def test_look_alike_keys_are_not_owned(key):
    assert STANDARD.kind(key) is None
    assert not STANDARD.owns(key)
    assert not STANDARD.is_entry(key)


def test_custom_prefix_owns_only_its_own_entries():
    assert SHOP.is_entry("shop:api_cache:cart:no_params")
    assert not SHOP.is_entry("api_cache:cart:no_params")
    assert not SHOP.owns("shop:api_cache_old:x")
    assert not SHOP.owns("shop:x")


def test_the_longest_matching_prefix_decides_the_kind():
    layout = Layout(LayoutConfig(prefix="shop:api_cache", tag_prefix="shop"))
    assert layout.kind("shop:api_cache:cart:no_params") == "entry"
    assert layout.kind("shop:sale") == "tag"


def test_versioned_entries_are_those_of_the_configured_version():
    assert VERSIONED.is_entry("api:v1:users?id=1")
    assert not VERSIONED.is_entry("api:v2:users?id=1")
    assert not VERSIONED.is_entry("api_cache:users:id:1")


def test_is_entry_of_tells_endpoints_apart():
    assert STANDARD.is_entry_of("api_cache:users:id:1", "users")
    assert not STANDARD.is_entry_of("api_cache:users_old:id:1", "users")
    assert not STANDARD.is_entry_of("tag:users:x", "users")
    assert VERSIONED.is_entry_of("api:v1:products", "products")
    assert VERSIONED.is_entry_of("api:v1:products:user_1", "products")
    assert VERSIONED.is_entry_of("api:v1:products?id=1", "products")
    assert not VERSIONED.is_entry_of("api:v1:productsArchive?id=1", "products")


@pytest.mark.parametrize(
    ("glob", "within"),
    [
        ("api_cache:*", True),
        ("api_cache:user*", True),
        ("api_cache:users:id:1", True),
        ("api_cache\\:*", True),
        ("api_cache*", False),
        ("api_cache", False),
        ("*", False),
        ("", False),
        ("api_cache?*", False),
        ("[a]pi_cache:x", False),
        ("api_cach[e]:*", False),
        ("tag:*", False),
        ("API_CACHE:*", False),
        (b"api_cache:\xff*", True),
    ],
)
def test_pattern_within_entries(glob, within):
    assert STANDARD.pattern_within_entries(glob) is within


def test_pattern_within_entries_reads_glob_characters_in_the_prefix():
    layout = Layout(LayoutConfig(prefix="c[1]"))
    assert layout.pattern_within_entries("c\\[1\\]:*")
    assert not layout.pattern_within_entries("c[1]:*")  # matches c1:..., outside the cache


def test_versioned_pattern_must_stay_within_the_version():
    assert VERSIONED.pattern_within_entries("api:v1:*")
    assert not VERSIONED.pattern_within_entries("api:*")
    assert not VERSIONED.pattern_within_entries("api:v1*")


# --- parsing ---------------------------------------------------------------------------------


def test_parse_entry_returns_none_for_keys_that_are_not_entries():
    assert STANDARD.parse_entry("tag:users") is None
    assert STANDARD.parse_entry("api_cache_backup:x:no_params") is None


def test_parse_entry_reads_endpoint_and_params():
    parsed = STANDARD.parse_entry('api_cache:products:category:"electronics"|limit:10')
    assert parsed.to_dict() == {
        "endpoint": "products",
        "params": {"category": "electronics", "limit": 10},
        "raw_params": 'category:"electronics"|limit:10',
        "encoding": "json",
        "user_id": None,
        "headers": {},
        "version": None,
    }


def test_parse_entry_guesses_plain_when_values_are_not_json():
    parsed = STANDARD.parse_entry("api_cache:products:category:electronics|limit:10")
    assert (parsed.params, parsed.encoding) == ({"category": "electronics", "limit": "10"}, "plain")


def test_parse_entry_reads_no_params():
    parsed = STANDARD.parse_entry("api_cache:status:no_params")
    assert (parsed.endpoint, parsed.params, parsed.raw_params) == ("status", {}, "no_params")


def test_parse_entry_finds_an_endpoint_holding_a_colon():
    parsed = STANDARD.parse_entry("api_cache:v2:users:id:1")
    assert (parsed.endpoint, parsed.params) == ("v2:users", {"id": 1})


def test_parse_entry_prefers_the_longest_known_endpoint():
    plain = Layout(LayoutConfig(param_encoding="plain"))
    key = plain.entry("a:b", {"c": 1})
    assert plain.parse_entry(key).params == {"b": "c:1"}  # a fair guess without help
    parsed = plain.parse_entry(key, known_endpoints=["a", "a:b", "x"])
    assert (parsed.endpoint, parsed.params) == ("a:b", {"c": "1"})


def test_parse_entry_keeps_unreadable_params_raw():
    parsed = STANDARD.parse_entry("api_cache:odd")
    assert (parsed.endpoint, parsed.params, parsed.encoding) == ("odd", None, None)
    parsed = STANDARD.parse_entry("api_cache:e:zz:1|aa:2")  # names out of order: not written by us
    assert parsed.params is None
    assert parsed.raw_params == "zz:1|aa:2"


def test_parse_entry_does_not_crash_on_non_utf8_bytes():
    parsed = STANDARD.parse_entry(b"api_cache:e\xff:id:1")
    assert (parsed.endpoint, parsed.params) == ("e\ufffd", {"id": 1})


def test_parse_versioned_entry_reads_user_params_and_headers():
    parsed = VERSIONED.parse_entry('api:v1:search:user_u1?q="a#b&c"#Accept-Language=fr')
    assert (parsed.endpoint, parsed.user_id, parsed.params, parsed.headers, parsed.version) == (
        "search",
        "u1",
        {"q": "a#b&c"},
        {"Accept-Language": "fr"},
        "v1",
    )


def test_parse_versioned_entry_with_a_known_endpoint_holding_separators():
    parsed = VERSIONED.parse_entry("api:v1:a:user_b?id=1", known_endpoints=["a:user_b"])
    assert (parsed.endpoint, parsed.user_id, parsed.params) == ("a:user_b", None, {"id": 1})


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        LayoutConfig(param_encoding="yaml"),
        LayoutConfig(scheme="flat"),
        LayoutConfig(prefix=""),
        LayoutConfig(tag_prefix="api_cache"),
        LayoutConfig(entries_log="cache_access"),
    ],
)
def test_inconsistent_layout_is_a_config_error(config):
    with pytest.raises(ConfigError):
        Layout(config)


def test_default_layout_is_the_documented_one():
    assert Layout().entry("user_profile", {"id": 123}) == "api_cache:user_profile:id:123"
