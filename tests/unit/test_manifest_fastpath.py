"""The keys' fast path (`Endpoint.keys`, the key compiled once per endpoint, read by the check
that no two requests write one key) gives exactly the keys of the reference path
(`Endpoint.request_for` on each combination); and `Endpoint.requests` gives the reference's
requests: same URL, key, params (values and order), tags, dependencies, fallback URL, headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cachectl.errors import ManifestError
from cachectl.layout import Layout, LayoutConfig
from cachectl.manifest import Plan, _product, load_manifest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_configs"

LAYOUTS = {
    "standard json": Layout(),
    "standard plain": Layout(LayoutConfig(param_encoding="plain")),
    "versioned": Layout(
        LayoutConfig(scheme="versioned", header_allowlist=("Accept-Language", "X-Tenant"))
    ),
}


def reference(plan: Plan) -> Iterator:
    for endpoint in plan.endpoints:
        names = [name for name, _ in endpoint.matrix]
        for combo in _product([source for _, source in endpoint.matrix]):
            params = dict(endpoint.params)
            params.update(zip(names, combo))
            yield endpoint.request_for(params, plan.layout)


def shape(request) -> tuple:
    return (
        request.endpoint.name,
        request.url,
        request.key,
        list(request.params.items()),
        repr(list(request.params.values())),  # True vs 1, 1.0 vs 1
        request.tags,
        request.depends_on,
        request.fallback_url,
        dict(request.endpoint.headers),
        request.shown_url,
        request.to_dict(),
    )


def outcome(requests) -> list | str:
    try:
        return [shape(r) for r in requests]
    except (
        UnicodeError,
        ValueError,
        TypeError,
        RecursionError,
    ) as exc:  # both fail alike (a lone surrogate cannot be quoted)
        return type(exc).__name__


def keys_alone(plan: Plan) -> list | str:
    try:
        return [key for endpoint in plan.endpoints for key in endpoint.keys(plan.layout)]
    except (UnicodeError, ValueError, TypeError, RecursionError) as exc:
        return type(exc).__name__


def assert_same(plan: Plan) -> int:
    fast = outcome(plan.requests())
    slow = outcome(reference(plan))
    assert fast == slow
    # The keys alone (Endpoint.keys, read by the duplicate-key check) are the requests' keys.
    alone = keys_alone(plan)
    assert alone == (slow if isinstance(slow, str) else [shape[2] for shape in slow])
    return len(fast)


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_the_sample_manifest_expands_the_same_on_both_paths(layout):
    manifest = load_manifest(SAMPLES / "manifest.yaml", env={"API_TOKEN": "t0ken-abc"})
    assert assert_same(Plan([manifest], layout)) == 27


@pytest.mark.parametrize("layout", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_awkward_values_expand_the_same_on_both_paths(tmp_path, layout):
    ids = tmp_path / "ids.txt"
    ids.write_text(
        '1\n"1"\n-0\n1e21\n9007199254740993\n{"b": 1, "a": [1, null]}\n[1, "x"]\nhello world\n'
        "caf\u00e9\n%2F?&=#\na/b c\ntrue\nnull\n{bad\n"
    )
    (tmp_path / "m.yaml").write_text(
        "version: 1\n"
        "defaults: {base_url: 'https://api.example.com/v2?k=1', ttl: 1m, headers: {Accept-Language: en, X-Tenant: 7}}\n"
        "endpoints:\n"
        "  - name: 'a:b|c'\n"
        "    url: '/x/{{lit}}/{id}/{p}?q={p}'\n"
        "    params: {p: 'a b/c', z: {k: [1, 2.5]}, ' sp': true}\n"
        "    matrix: {id: {file: ids.txt}, n: [1, 1.0, true, null, 'é', [1, 2], {x: 1}], r: {range: [-2, 1]}}\n"
        "    tags: ['t_{id}_{n}', fixed, '{p}']\n"
        "    depends_on: ['{r}']\n"
        "    fallback_url: 'https://fb.example.com/{n}/{id}'\n"
        "  - name: noparams\n"
        "    url: https://status.example.com/s\n"
        "  - name: statics\n"
        "    url: '/s/{p}'\n"
        "    params: {p: 3, q: 'x&y'}\n"
        "    headers: {X-Tenant: t2}\n"
        "  - name: strings\n"
        "    url: /str\n"
        "    matrix: {id: {file: ids.txt, as: string}}\n"
    )
    plan = Plan([load_manifest(tmp_path / "m.yaml", env={})], layout)
    assert assert_same(plan) == 14 * 7 * 4 + 1 + 1 + 14


# ---- varied manifests -------------------------------------------------------------------------

# No "$" (env substitution), no braces (template syntax) in names.
NAME = st.text(
    st.characters(blacklist_characters="{}$", blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=6,
).filter(lambda s: s.strip() == s and s != "<<")
TEXT = st.text(st.characters(blacklist_characters="$", blacklist_categories=("Cs",)), max_size=8)
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.sampled_from([0, -1, 2**53, 2**53 + 1, -(2**53)]),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
)  # fmt: skip
VALUE = st.recursive(
    SCALAR, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
    max_leaves=6,
)  # fmt: skip
LITERAL = st.text(st.sampled_from("ab/?&=#%é .-_~:"), max_size=5)
# A URL's own text is sent as written: what validation lets through (no space, no raw é or stray %).
URL_LITERAL = st.lists(
    st.sampled_from(list("ab/?&=#.-_~:") + ["%2F", "%C3%A9", "%25"]), max_size=5
).map("".join)


@st.composite
def manifests(draw):
    names = draw(st.lists(NAME, min_size=0, max_size=4, unique=True))
    split = draw(st.integers(0, len(names)))
    static = {n: draw(VALUE) for n in names[:split]}
    matrix = {}
    for n in names[split:]:
        if draw(st.booleans()):
            first = draw(st.integers(-3, 3))
            matrix[n] = {"range": [first, first + draw(st.integers(0, 2))]}
        else:
            matrix[n] = draw(st.lists(VALUE, min_size=1, max_size=3))

    def template(with_literals: bool = True, literal=LITERAL) -> str:
        used = draw(st.lists(st.sampled_from(names), max_size=3)) if names else []
        parts = [draw(literal).replace("{", "{{").replace("}", "}}") if with_literals else ""]
        for n in used:
            parts.append("{" + n + "}" + (draw(literal) if with_literals else "-"))
        return "".join(parts)

    endpoint = {
        "name": draw(NAME),
        "url": "/p/" + template(literal=URL_LITERAL),
        "ttl": "1m",
        "tags": [t for t in (template(), template()) if t.strip()],
        "depends_on": [t for t in (template(),) if t.strip()],
        "headers": draw(
            st.dictionaries(
                st.sampled_from(["Accept-Language", "X-Tenant", "x-tenant", "X-Other"]),
                TEXT.filter(lambda s: "\n" not in s and "\r" not in s),
                max_size=2,
            )
        ),
    }
    if draw(st.booleans()):
        endpoint["fallback_url"] = "https://fb.example.com/" + template(literal=URL_LITERAL)
    if static:
        endpoint["params"] = static
    if matrix:
        endpoint["matrix"] = matrix
    base = "https://api.example.com" + draw(st.sampled_from(["", "/v2", "/v2?k=1", "/a?"]))
    return {"version": 1, "defaults": {"base_url": base}, "endpoints": [endpoint]}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(doc=manifests(), layout=st.sampled_from(list(LAYOUTS.values())))
def test_varied_manifests_expand_the_same_on_both_paths(tmp_path, doc, layout):
    path = tmp_path / "m.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    try:
        manifest = load_manifest(path, env={})
    except ManifestError:
        # A generated value YAML reads otherwise (a date, a key twice after case folding...):
        # nothing to expand. Most examples load, the test below checks that they do.
        return
    assert_same(Plan([manifest], layout))


def test_most_varied_manifests_load(tmp_path):
    loaded = []

    @settings(max_examples=100, deadline=None, database=None)
    @given(doc=manifests())
    def check(doc):
        path = tmp_path / "m.yaml"
        path.write_text(json.dumps(doc))
        try:
            load_manifest(path, env={})
        except ManifestError:
            loaded.append(False)
        else:
            loaded.append(True)

    check()
    assert sum(loaded) >= 0.8 * len(loaded)


def test_a_layout_with_its_own_entry_keys_takes_the_reference_path(tmp_path):
    class Custom(Layout):
        def entry(self, endpoint, params=None, *, user_id=None, headers=None):
            return "custom:" + super().entry(endpoint, params, user_id=user_id, headers=headers)

    (tmp_path / "m.yaml").write_text(
        "version: 1\nendpoints:\n  - {name: e, url: 'https://x.example.com/{id}', ttl: 1m, matrix: {id: [1, 2]}}\n"
    )
    plan = Plan([load_manifest(tmp_path / "m.yaml", env={})], Custom())
    assert [r.key for r in plan.requests()] == [
        "custom:api_cache:e:id:1",
        "custom:api_cache:e:id:2",
    ]
    assert assert_same(plan) == 2
