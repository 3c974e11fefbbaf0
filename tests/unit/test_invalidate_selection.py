"""What `invalidate` accepts and refuses before it touches Redis, and the dependency graph.
(The pending-set names are the layout's: tests/unit/test_layout_bookkeeping.py.)"""

from __future__ import annotations

import pytest

from cachectl.errors import BadInputError, UsageError
from cachectl.graph import DependencyGraph, load_graph
from cachectl.layout import Layout, LayoutConfig
from cachectl.ops.selection import (
    KeySource,
    ScanSource,
    SelectionSpec,
    SetSource,
    make_filters,
    matches_every_entry,
    parse_bytes,
    resolve_selection,
)
from cachectl.render.invalidate import show_key

LAYOUT = Layout()


def resolve(**spec):
    return resolve_selection(LAYOUT, SelectionSpec(**spec))


# --- patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    ["*", "api_*", "[a]pi_cache:*", "api_cache*", "tag:*", "api_cache_backup:*", "API_CACHE:*"],
)
def test_pattern_outside_the_entry_prefix_is_refused(pattern):
    with pytest.raises(UsageError, match="reaches outside"):
        resolve(patterns=[pattern])


@pytest.mark.parametrize(
    "pattern",
    [
        "api_cache:*",
        "api_cache:**",
        "api_cache:?*",
        "api\\_cache:*",
        # nothing after the prefix narrows these either: every entry has a ':' after its endpoint
        "api_cache:*:*",
        "api_cache:**:**",
        "api_cache:*\\:*",
        "api_cache:*[^]",
        "api_cache:[^]*:?*",
    ],
)
def test_pattern_matching_every_entry_is_refused(pattern):
    with pytest.raises(UsageError, match="every entry"):
        resolve(patterns=[pattern])


@pytest.mark.parametrize("pattern", ["*", "api_cache:*"])
def test_force_lets_a_wide_pattern_through_with_a_note(pattern):
    selection = resolve(patterns=[pattern], force=True)
    assert selection.sources == [ScanSource(f"pattern {pattern}", pattern.encode())]
    assert "--force" in selection.notes[0]


@pytest.mark.parametrize(
    "pattern",
    [
        "api_cache:products:*",
        "api_cache:p*",
        "api_cache:?roducts:*",
        "api_cache:[pu]*",
        "api_cache:*:id*",
        "api_cache:*|*",
        "api_cache:*\\**",
        "api_cache:?:*",
        "api_cache:*:*:*",
        "api_cache:[^a]*",
    ],
)
def test_narrow_pattern_is_accepted(pattern):
    assert not matches_every_entry(LAYOUT, pattern)
    assert resolve(patterns=[pattern]).sources[0].pattern == pattern.encode()


def test_every_entry_check_follows_a_configured_prefix():
    shop = Layout(LayoutConfig(prefix="shop:api_cache"))
    assert matches_every_entry(shop, "shop:api_cache:*")
    assert not matches_every_entry(shop, "shop:api_cache:x*")
    with pytest.raises(UsageError, match="reaches outside"):
        resolve_selection(shop, SelectionSpec(patterns=["api_cache:x*"]))


# --- keys, endpoints, params -------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["session:1", "api_cache_backup:x:no_params", "tag:user_1", "cache_entries", "API_CACHE:a:b"],
)
def test_key_that_is_not_an_entry_is_refused(key):
    with pytest.raises(UsageError, match="not a cache entry"):
        resolve(keys=[key])


def test_exact_keys_are_kept_as_typed_and_deduplicated():
    selection = resolve(
        keys=["api_cache:a:no_params", "api_cache:we[ir]d*:id:1", "api_cache:a:no_params"]
    )
    assert selection.sources == [
        KeySource("2 keys", (b"api_cache:a:no_params", b"api_cache:we[ir]d*:id:1"))
    ]


def test_endpoint_with_params_selects_both_encodings():
    (source,) = resolve(endpoints=["products"], params=["category=electronics", "limit=10"]).sources
    assert set(source.keys) == {
        b'api_cache:products:category:"electronics"|limit:10',
        b"api_cache:products:category:electronics|limit:10",
    }


def test_endpoint_param_that_reads_the_same_in_both_encodings_is_one_key():
    (source,) = resolve(endpoints=["user_profile"], params=["id=123"]).sources
    assert source.keys == (b"api_cache:user_profile:id:123",)


def test_quoted_param_is_a_string_and_differs_from_the_number():
    (number,) = resolve(endpoints=["u"], params=["id=123"]).sources
    (text,) = resolve(endpoints=["u"], params=['id="123"']).sources
    assert b'api_cache:u:id:"123"' in text.keys
    assert b'api_cache:u:id:"123"' not in number.keys


def test_param_needs_exactly_one_endpoint():
    with pytest.raises(UsageError, match="exactly one --endpoint"):
        resolve(endpoints=["a", "b"], params=["id=1"])
    with pytest.raises(UsageError, match="exactly one --endpoint"):
        resolve(tags=["t"], params=["id=1"])


def test_a_param_given_twice_is_refused_not_reduced_to_its_last_value():
    with pytest.raises(UsageError, match="--param id is given twice"):
        resolve(endpoints=["users"], params=["id=1", "id=2"])


def test_endpoint_without_params_scans_its_escaped_pattern():
    (source,) = resolve(endpoints=["we[ir]d*"]).sources
    assert source == ScanSource("endpoint we[ir]d*", b"api_cache:we\\[ir\\]d\\*:*", "we[ir]d*")


def test_versioned_scheme_endpoint_key_has_one_encoding():
    versioned = Layout(LayoutConfig(scheme="versioned", version="v2"))
    selection = resolve_selection(
        versioned, SelectionSpec(endpoints=["products"], params=["category=electronics"])
    )
    assert selection.sources[0].keys == (b'api:v2:products?category="electronics"',)


def test_nothing_selected_is_a_usage_error():
    with pytest.raises(UsageError, match="nothing selected"):
        resolve()


def test_sources_run_keys_first_then_sets_then_scans():
    selection = resolve(
        patterns=["api_cache:p*"], tags=["t"], keys=["api_cache:a:no_params"], depends_on=["r"]
    )
    kinds = [type(s) for s in selection.sources]
    assert kinds == [KeySource, SetSource, SetSource, ScanSource]
    assert selection.sources[1].set_key == b"tag:t"
    assert selection.sources[2].set_key == b"depends_on:r"


# --- dependency graph --------------------------------------------------------------------


def test_graph_reach_follows_edges_once_even_through_cycles():
    graph = DependencyGraph({"u": ("p", "prefs"), "p": ("dash", "u"), "dash": ("u",)})
    assert graph.reach(["u"]) == ["u", "p", "prefs", "dash"]
    assert graph.reach(["unknown"]) == ["unknown"]


def test_depends_on_with_graph_selects_every_reached_resource(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text(
        "user_123: [profile_data, preferences]\nprofile_data: [dashboard, user_123]\n42: 7\n"
    )
    selection = resolve(depends_on=["user_123", "42"], graph_file=str(path))
    assert [s.set_key for s in selection.sources] == [
        b"depends_on:user_123",
        b"depends_on:42",
        b"depends_on:profile_data",
        b"depends_on:preferences",
        b"depends_on:7",
        b"depends_on:dashboard",
    ]


def test_bad_graph_reports_every_problem_with_its_line(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text("ok: [a]\nyes: [b]\nx: {a: 1}\ny: [[nested]]\n")
    with pytest.raises(BadInputError) as caught:
        load_graph(path)
    problems = caught.value.details["problems"]
    assert problems == [
        f"{path}:2:1: a resource id must be text or a number, not true (put it in quotes)",
        f"{path}:3:4: x: expected a list of resource ids, got a mapping",
        f"{path}:4:5: y[0]: a resource id must be text or a number, not a list",
    ]


def test_missing_graph_file_is_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="cannot read"):
        resolve(depends_on=["a"], graph_file=str(tmp_path / "nope.yaml"))


def test_graph_without_depends_on_is_a_usage_error():
    with pytest.raises(UsageError, match="--graph"):
        resolve(tags=["t"], graph_file="g.yaml")


# --- filters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2048", 2048), ("10kb", 10_000), ("10k", 10_000), ("1.5MiB", 1_572_864), ("1 GB", 10**9)],
)
def test_sizes_read_with_their_units(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "-5", "10xb"])
def test_bad_size_is_a_usage_error(text):
    with pytest.raises(UsageError, match="--larger-than"):
        parse_bytes(text)


def test_filters_read_durations_and_name_the_bad_option():
    filters = make_filters(ttl_below="10m", older_than="1h30m", larger_than="1kib")
    assert filters.ttl_below_seconds == 600
    assert filters.older_than_seconds == 5400
    assert filters.larger_than_bytes == 1024
    assert filters.active
    assert not make_filters().active
    with pytest.raises(UsageError, match="--idle-above"):
        make_filters(idle_above="soon")
    with pytest.raises(UsageError, match="--ttl-above must be 0 or more"):
        make_filters(ttl_above="-5")


def test_ttl_window_that_selects_nothing_is_refused():
    with pytest.raises(UsageError, match="select nothing"):
        make_filters(ttl_below="60", ttl_above="120")


# --- display ------------------------------------------------------------------------------


def test_shown_keys_cannot_garble_a_terminal():
    assert show_key(b"api_cache:x:\xff\x1b[31m\nq") == "api_cache:x:\\xff\\x1b[31m\\nq"
    assert show_key(b"api_cache:caf\xc3\xa9:no_params") == "api_cache:café:no_params"


def test_sample_dependency_graph_loads_and_reaches_through_its_cycle():
    from pathlib import Path

    graph = load_graph(Path(__file__).parents[2] / "sample_configs" / "dependency_graph.yaml")
    assert graph.reach(["user_123"]) == [
        "user_123",
        "profile_data",
        "preferences",
        "dashboard",
        "team_overview",
    ]
