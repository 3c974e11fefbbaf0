"""Entry keys byte for byte as the JavaScript applications write them: every line of
tests/data/keys.jsonl and every example in docs/keyspace.md."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from cachectl.layout import Layout, LayoutConfig, js_string

REPO = Path(__file__).resolve().parents[2]
VECTORS_PATH = REPO / "tests" / "data" / "keys.jsonl"
KEYSPACE_DOC = REPO / "docs" / "keyspace.md"
MAKE_KEYS = REPO / "tests" / "js" / "make_keys.js"


def _read_vectors(path: Path) -> list[dict]:
    # Split on "\n" only: str.splitlines() would also cut at the raw U+2028 inside a case.
    text = path.read_text("utf-8")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


VECTORS = _read_vectors(VECTORS_PATH)
LAYOUT_MD = KEYSPACE_DOC.read_text("utf-8")


def _ids(cases: list[dict]) -> list[str]:
    return [f"{n}-{c['endpoint']}" for n, c in enumerate(cases, 1)]


STANDARD = [c for c in VECTORS if "json" in c]
VERSIONED = [c for c in VECTORS if "versioned" in c]


def test_the_vectors_hold_both_schemes_and_every_line_has_a_key():
    assert len(STANDARD) >= 20 and len(VERSIONED) >= 4
    unread = [c for c in VECTORS if "json" not in c and "versioned" not in c]
    assert not unread, f"vector lines with no key to check: {unread}"


def test_the_vectors_are_what_node_writes(node):
    """tests/js/make_keys.js builds every key of the file with the applications' own key code on
    node's JSON.stringify and String(): the file is what it prints, line for line."""
    run = subprocess.run(
        [node, str(MAKE_KEYS), str(VECTORS_PATH), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


@pytest.mark.parametrize("case", STANDARD, ids=_ids(STANDARD))
def test_json_entry_key_matches_javascript(case):
    layout = Layout(LayoutConfig(param_encoding="json"))
    assert layout.entry(case["endpoint"], json.loads(case["params_json"])) == case["json"]


@pytest.mark.parametrize("case", STANDARD, ids=_ids(STANDARD))
def test_plain_entry_key_matches_javascript(case):
    layout = Layout(LayoutConfig(param_encoding="plain"))
    assert layout.entry(case["endpoint"], json.loads(case["params_json"])) == case["plain"]


@pytest.mark.parametrize("case", VERSIONED, ids=_ids(VERSIONED))
def test_versioned_entry_key_matches_javascript(case):
    options = case["versioned_options"]
    headers = options.get("headers") if options.get("includeHeaders") else None
    # The JavaScript caller chose which headers to include; here the allow-list says so.
    layout = Layout(
        LayoutConfig(
            scheme="versioned",
            version=options.get("version", "v1"),
            header_allowlist=tuple(headers or ()),
        )
    )
    key = layout.entry(
        case["endpoint"],
        json.loads(case["params_json"]),
        user_id=options.get("userId"),
        headers=headers,
    )
    assert key == case["versioned"]


@pytest.mark.parametrize("case", STANDARD, ids=_ids(STANDARD))
def test_json_entry_key_reads_back_to_its_call(case):
    parsed = Layout(LayoutConfig()).parse_entry(case["json"])
    assert (parsed.endpoint, parsed.params, parsed.encoding) == (
        case["endpoint"],
        json.loads(case["params_json"]),
        "json",
    )


@pytest.mark.parametrize("case", STANDARD, ids=_ids(STANDARD))
def test_plain_entry_key_reads_back_to_its_call_as_strings(case):
    parsed = Layout(LayoutConfig(param_encoding="plain")).parse_entry(case["plain"])
    params = {name: js_string(value) for name, value in json.loads(case["params_json"]).items()}
    assert (parsed.endpoint, parsed.params) == (case["endpoint"], params)


@pytest.mark.parametrize("case", VERSIONED, ids=_ids(VERSIONED))
def test_versioned_entry_key_reads_back_to_its_call(case):
    options = case["versioned_options"]
    layout = Layout(LayoutConfig(scheme="versioned", version=options.get("version", "v1")))
    parsed = layout.parse_entry(case["versioned"])
    assert (parsed.endpoint, parsed.params, parsed.user_id, parsed.headers) == (
        case["endpoint"],
        json.loads(case["params_json"]),
        options.get("userId"),
        options.get("headers", {}),
    )


def _js_object_literal(text: str):
    """The doc's `{id: 123}` as JSON: quote the bare property names."""
    return json.loads(re.sub(r"([{,]\s*)([A-Za-z_]\w*)\s*:", r'\1"\2":', text))


def _doc_table_rows() -> list[tuple[str, dict, str, str]]:
    rows = []
    for line in LAYOUT_MD.split("\n"):
        call = re.match(r"\| `([^`]+)`, `(\{[^`]*\})` \|", line)
        if not call:
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        json_key, plain_key = (c.strip("`").replace("\\|", "|") for c in cells[1:3])
        plain_key = json_key if plain_key == "same" else plain_key
        rows.append((call[1], _js_object_literal(call[2]), json_key, plain_key))
    return rows


DOC_ROWS = _doc_table_rows()


def test_layout_md_examples_are_found():
    assert len(DOC_ROWS) >= 4, "the example table of docs/keyspace.md was not read"


@pytest.mark.parametrize(
    ("endpoint", "params", "json_key", "plain_key"), DOC_ROWS, ids=[r[0] for r in DOC_ROWS]
)
def test_layout_md_example_keys(endpoint, params, json_key, plain_key):
    assert Layout(LayoutConfig(param_encoding="json")).entry(endpoint, params) == json_key
    assert Layout(LayoutConfig(param_encoding="plain")).entry(endpoint, params) == plain_key


def test_layout_md_versioned_example():
    expected = 'api:v2:products:user_user456?category="electronics"&limit=10'
    assert f"`{expected}`" in LAYOUT_MD
    layout = Layout(LayoutConfig(scheme="versioned", version="v2"))
    key = layout.entry("products", {"category": "electronics", "limit": 10}, user_id="user456")
    assert key == expected
