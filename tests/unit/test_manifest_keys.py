"""No two requests of a plan write one key: a plan where they would is refused (exit 3), naming
both places, whatever the plan's size, without refusing a plan for two keys sharing a hash."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl import manifest as manifest_module
from cachectl.errors import ExitCode, ManifestError
from cachectl.layout import Layout, LayoutConfig
from cachectl.manifest import Plan, load_manifests
from cachectl.manifest import keys as manifest_keys
from cachectl.manifest.keys import check_unique_keys, find_duplicate_keys

HEAD = "version: 1\ndefaults: {base_url: 'https://api.example.com', ttl: 1m}\nendpoints:\n"


def plan_of(tmp_path: Path, *endpoint_lists: str, layout: Layout | None = None) -> Plan:
    paths = []
    for i, endpoints in enumerate(endpoint_lists):
        path = tmp_path / f"m{i}.yaml"
        path.write_text(HEAD + textwrap.indent(textwrap.dedent(endpoints), "  "))
        paths.append(path)
    return Plan(load_manifests(paths, env={}), layout or Layout())


def refusal(plan: Plan) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        check_unique_keys(plan)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    return caught.value


def test_two_endpoints_of_one_name_are_refused_naming_both_lines(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        - {name: users, url: /users/a, matrix: {id: [1, 2]}}
        - {name: other, url: /other}
        - {name: users, url: /users/b, matrix: {id: [2, 3]}}
        """,
    )
    error = refusal(plan)
    m0 = tmp_path / "m0.yaml"
    assert error.message.startswith(
        f"{m0}:4: endpoints[0] (users, id=2) and {m0}:6: endpoints[2] (users, id=2) "
        "write the same key api_cache:users:id:2"
    )
    assert len(error.problems) == 1


def test_a_repeated_matrix_value_is_refused(tmp_path):
    error = refusal(plan_of(tmp_path, "- {name: e, url: /e, matrix: {id: [1, 2, 3, 2]}}\n"))
    assert "(e, id=2) and" in error.message and "api_cache:e:id:2" in error.message


def test_values_that_give_one_key_are_refused(tmp_path):
    # 1 and 1.0 are one JSON.stringify text; a range and a list overlap.
    assert refusal(plan_of(tmp_path, "- {name: e, url: /e, matrix: {id: [1, 1.0]}}\n"))
    error = refusal(
        plan_of(
            tmp_path,
            """\
            - {name: e, url: /e, matrix: {id: {range: [1, 5]}}}
            - {name: e, url: '/e/{id}', matrix: {id: [5, 6, 7]}}
            """,
        )
    )
    assert "endpoints[0] (e, id=5) and" in error.message


def test_a_repeated_line_of_a_values_file_is_refused(tmp_path):
    (tmp_path / "ids.txt").write_text("1\n2\n# comment\n3\n2\n")
    error = refusal(plan_of(tmp_path, "- {name: e, url: /e, matrix: {id: {file: ids.txt}}}\n"))
    assert "api_cache:e:id:2" in error.message


def test_two_manifests_writing_one_key_name_both_files(tmp_path):
    plan = plan_of(tmp_path, "- {name: e, url: /a}\n", "- {name: e, url: /b}\n")
    error = refusal(plan)
    assert f"{tmp_path / 'm0.yaml'}:4" in error.message
    assert f"{tmp_path / 'm1.yaml'}:4" in error.message
    assert "api_cache:e:no_params" in error.message


def test_distinct_keys_pass(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        - {name: users, url: /users/a, matrix: {id: {range: [1, 50]}}}
        - {name: users, url: /users/b, matrix: {id: {range: [51, 99]}}}
        - {name: orders, url: /orders, matrix: {id: {range: [1, 99]}}}
        - {name: e, url: /e, matrix: {id: [1, "1", true, null, [1], {a: 1}]}}
        """,
    )
    check_unique_keys(plan)
    assert find_duplicate_keys(plan) == ([], 0)


def test_the_key_decides_not_the_name_a_header_in_a_versioned_key_tells_apart(tmp_path):
    text = """\
        - {name: e, url: /e, headers: {Accept-Language: en}}
        - {name: e, url: /e, headers: {Accept-Language: fr}}
        """
    versioned = Layout(LayoutConfig(scheme="versioned", header_allowlist=("Accept-Language",)))
    check_unique_keys(plan_of(tmp_path, text, layout=versioned))
    assert refusal(plan_of(tmp_path, text))  # the standard scheme has no header in a key


def test_only_the_selected_endpoints_are_checked(tmp_path):
    text = "- {name: a, url: /a}\n- {name: a, url: /a2}\n- {name: b, url: /b}\n"
    path = tmp_path / "m.yaml"
    path.write_text(HEAD + textwrap.indent(text, "  "))
    check_unique_keys(Plan(load_manifests([path], env={}), Layout(), only=["b"]))


# Two endpoints of one name are checked request by request; one endpoint alone by its matrix
# values (a list here: a range of safe integers needs no reading at all).
BY_REQUEST = """\
    - {name: e, url: /a, matrix: {id: {range: [1, 250]}}}
    - {name: e, url: /b, matrix: {id: {range: [251, 500]}}}
    """
BY_VALUES = "- {name: e, url: /e, matrix: {id: {file: ids.txt}, n: [1, 2]}}\n"


@pytest.fixture
def ids(tmp_path):
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in range(1, 501)))
    return tmp_path / "ids.txt"


@pytest.mark.parametrize("text", [BY_REQUEST, BY_VALUES], ids=["by request", "by values"])
def test_hashes_shared_by_different_keys_never_refuse(tmp_path, monkeypatch, ids, text):
    monkeypatch.setattr(manifest_keys, "_text_hash", lambda text: 7)  # every text collides
    check_unique_keys(plan_of(tmp_path, text))
    with ids.open("a") as fh:
        fh.write("3\n")
    repeated = text.replace("[251, 500]", "[250, 500]")
    error = refusal(plan_of(tmp_path, repeated))
    assert ("api_cache:e:id:250" if text is BY_REQUEST else "api_cache:e:id:3|n:1") in error.message


@pytest.mark.parametrize("text", [BY_REQUEST, BY_VALUES], ids=["by request", "by values"])
def test_hashes_spilled_to_disk_are_checked_and_removed(tmp_path, monkeypatch, ids, text):
    monkeypatch.setattr(manifest_keys, "KEY_CHECK_HASHES_IN_MEMORY", 10)
    monkeypatch.setattr(manifest_keys, "_TEXT_CHUNK", 7)
    spills = tmp_path / "tmp"
    spills.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spills))
    check_unique_keys(plan_of(tmp_path, text))
    with ids.open("a") as fh:
        fh.write("3\n499\n")
    error = refusal(plan_of(tmp_path, text.replace("[251, 500]", "[249, 500]")))
    count = 2 if text is BY_REQUEST else 4  # ids 249 and 250; ids 3 and 499, each with n 1 and 2
    assert f"{count} requests write a key another one writes" in error.message
    assert list(spills.iterdir()) == []


def test_a_range_of_a_billion_is_checked_without_expanding_it(tmp_path, monkeypatch):
    def no_keys(self, layout):
        raise AssertionError("expanded")

    monkeypatch.setattr(manifest_module.Endpoint, "keys", no_keys)
    plan = plan_of(
        tmp_path, "- {name: e, url: /e, matrix: {id: {range: [1, 1000000000]}, n: [1, 2]}}\n"
    )
    check_unique_keys(plan)
    error = refusal(
        plan_of(
            tmp_path, "- {name: e, url: /e, matrix: {id: {range: [1, 1000000000]}, n: [1, 1.0]}}\n"
        )
    )
    assert "1,000,000,000 requests write a key another one writes" in error.message
    assert "(e, id=1, n=1) and" in error.message


def test_many_repeats_are_counted_and_a_few_listed(tmp_path):
    plan = plan_of(
        tmp_path,
        """\
        - {name: e, url: /a, matrix: {id: {range: [1, 100]}}}
        - {name: e, url: /b, matrix: {id: {range: [1, 100]}}}
        """,
    )
    error = refusal(plan)
    assert "100 requests write a key another one writes" in error.message
    assert len(error.problems) == manifest_keys.KEY_CHECK_LISTED + 1
    assert error.problems[-1] == "... and 80 more requests write a key written before"


def test_plan_checks_once(tmp_path, monkeypatch):
    plan = plan_of(tmp_path, "- {name: e, url: /e, matrix: {id: [1, 2]}}\n")
    calls = []
    monkeypatch.setattr(manifest_keys, "check_unique_keys", lambda p: calls.append(p))
    plan.check_unique_keys()
    plan.check_unique_keys()
    assert calls == [plan]


# ---- the check against brute force ---------------------------------------------------------


VALUES = [
    1,
    1.0,
    "1",
    "a|b",
    "x&y",
    "h#",
    "x",
    True,
    None,
    "é",
    2**53,
    2**53 + 1,
    "\ud800",
    "\ufffd",
]
LAYOUTS = [
    Layout(),
    Layout(LayoutConfig(param_encoding="plain")),
    Layout(LayoutConfig(scheme="versioned", header_allowlist=("X-T",))),
]


@st.composite
def endpoint_lists(draw):
    endpoints = []
    for _ in range(draw(st.integers(1, 3))):
        matrix = {}
        for name in draw(st.lists(st.sampled_from(["id", "n", "q"]), max_size=2, unique=True)):
            if draw(st.booleans()):
                first = draw(st.sampled_from([0, 2**53 - 2, -(2**53) - 1]))
                matrix[name] = {"range": [first, first + draw(st.integers(0, 3))]}
            else:
                matrix[name] = draw(st.lists(st.sampled_from(VALUES), min_size=1, max_size=4))
        endpoint = {"name": draw(st.sampled_from(["a", "a:b", "a?x", "ab"])), "url": "/p"}
        if matrix:
            endpoint["matrix"] = matrix
        if draw(st.booleans()):
            endpoint["params"] = {"s": draw(st.sampled_from(VALUES))}
        if draw(st.booleans()):
            endpoint["headers"] = {"X-T": draw(st.sampled_from(["1", "2"]))}
        endpoints.append(endpoint)
    return endpoints


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(endpoints=endpoint_lists(), layout=st.sampled_from(LAYOUTS))
def test_the_check_counts_what_brute_force_counts(tmp_path, endpoints, layout):
    path = tmp_path / "m.yaml"
    doc = {"version": 1, "defaults": {"base_url": "https://x.example.com", "ttl": "1m"}}
    path.write_text(json.dumps({**doc, "endpoints": endpoints}))
    try:
        plan = Plan(load_manifests([path], env={}), layout)
    except ManifestError:
        return
    keys = [
        endpoint.request_for(
            {**endpoint.params, **dict(zip([n for n, _ in endpoint.matrix], combo))}, layout
        ).key
        for endpoint in plan.endpoints
        for combo in manifest_module._product([source for _, source in endpoint.matrix])
    ]
    found, total = find_duplicate_keys(plan)
    assert total == len(keys) - len(set(keys))
    assert bool(found) == bool(total)
    for key, first, later in found:
        assert first is not later
        for place in (first, later):
            params = {
                **place.endpoint.params,
                **dict(zip([n for n, _ in place.endpoint.matrix], place.combo)),
            }
            assert place.endpoint.request_for(params, layout).key == key


def test_a_plan_whose_check_would_work_out_too_many_keys_is_refused_up_front(tmp_path, monkeypatch):
    def no_keys(self, layout):
        raise AssertionError("expanded")

    monkeypatch.setattr(manifest_module.Endpoint, "keys", no_keys)
    plan = plan_of(
        tmp_path,
        """\
        - {name: items, url: /a, matrix: {id: {range: [1, 9007199254740991]}}}
        - {name: 'items:v2', url: /b, matrix: {id: {range: [1, 9007199254740991]}}}
        """,
    )
    error = refusal(plan)
    assert "items, items:v2" in error.message
    assert "18,014,398,509,481,982 keys" in error.message
    assert "CACHECTL_MAX_KEY_CHECK" in error.message
    assert "\n" not in error.message


def test_the_key_check_limit_is_set_in_the_environment(tmp_path, monkeypatch):
    plan = plan_of(
        tmp_path,
        """\
        - {name: items, url: /a, matrix: {id: {range: [1, 30]}}}
        - {name: 'items:v2', url: /b, matrix: {id: {range: [1, 30]}}}
        """,
    )
    check_unique_keys(plan)
    monkeypatch.setenv("CACHECTL_MAX_KEY_CHECK", "59")
    assert "60 keys" in refusal(plan).message
    monkeypatch.setenv("CACHECTL_MAX_KEY_CHECK", "60")
    check_unique_keys(plan)
