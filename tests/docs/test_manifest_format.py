"""docs/reference/manifest-format.md's field tables say what the manifest reader does: each row's
type (values it takes and values it refuses at the bounds it names), its default (what an
endpoint gets when the field is left out) and its example (a value the reader takes) are checked
against the reader itself, so the table cannot drift from cachectl/manifest/fields.py.

A type or default written in a way these rules do not know fails the test: teach it the new
wording here (a rule is a few values taken and refused), so every row stays checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cachectl.durations import parse_duration, parse_size
from cachectl.errors import ManifestError
from cachectl.manifest.fields import DEFAULT_FIELDS, ENDPOINT_FIELDS
from cachectl.manifest.model import DEFAULT_CONCURRENCY, DEFAULT_MAX_RESPONSE_BYTES
from cachectl.manifest.reader import load_manifest

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "reference" / "manifest-format.md").read_text()
ENV = {"API_TOKEN": "docs-table-token"}
BASE_URL = "http://api.test/v2"
# Every endpoint of a check starts from this one: the params the table's examples name (id in
# `/products/{id}`, category in `category_{category}`), and a TTL.
ENDPOINT = {"name": "items", "url": "/items", "ttl": "1m", "matrix": {"id": [1], "category": ["a"]}}
# The Endpoint attribute each field is read into, where it is not the field's own name.
ATTRIBUTE = {"timeout": "timeout_seconds", "ttl": "ttl_ms"}
# What None means for a setting the run resolves (cachectl/manifest/model.py says so).
RUN_DEFAULT = {
    ("defaults", "concurrency"): DEFAULT_CONCURRENCY,
    ("defaults", "max_response_bytes"): DEFAULT_MAX_RESPONSE_BYTES,
    ("endpoint", "max_response_bytes"): DEFAULT_MAX_RESPONSE_BYTES,
}
NO_VALUE = {"none", "no cap", "no per-host limit", "no own limit", "no own cap"}


def _rows(heading: str) -> dict[str, tuple[str, str, str]]:
    """field -> (type, default, example) of the table under `## heading`."""
    section = PAGE.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"^\| `([a-z_]+)` \| (.*)$", line)
        if match:
            type_, default, example = (cell.strip() for cell in match[2].split(" | ")[:3])
            rows[match[1]] = (type_, default, example)
    return rows


DEFAULTS_ROWS = _rows("`defaults`")
ENDPOINT_ROWS = _rows("An endpoint")
CASES = [("defaults", f) for f in DEFAULTS_ROWS] + [("endpoint", f) for f in ENDPOINT_ROWS]
IDS = [f"{scope}.{field}" for scope, field in CASES]


def _load(tmp_path, defaults: dict, endpoint: dict):
    path = tmp_path / "m.yaml"
    doc = {"version": 1, "defaults": defaults, "endpoints": [endpoint]}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_manifest(path, env=ENV)


def _with(scope: str, field: str, value) -> tuple[dict, dict]:
    """A manifest's defaults and endpoint with `field` set to `value` (ELSEWHERE: left out)."""
    defaults, endpoint = {"base_url": BASE_URL}, dict(ENDPOINT)
    target = defaults if scope == "defaults" else endpoint
    target.pop(field, None)
    if value is not _LEFT_OUT:
        target[field] = value
    if field == "body":
        endpoint["method"] = "POST"
    return defaults, endpoint


_LEFT_OUT = object()


def _value(manifest, scope: str, field: str):
    """What the field came to: the endpoint's value (or, for a setting of the whole run that
    only `defaults` holds, the manifest's)."""
    endpoint = manifest.endpoints[0]
    if scope == "defaults" and field not in ENDPOINT_FIELDS:
        value = getattr(manifest.defaults, field)
    elif scope == "defaults" and field in ("concurrency", "rate"):
        value = getattr(manifest.defaults, field)  # the run's, not each endpoint's own
    else:
        value = getattr(endpoint, ATTRIBUTE.get(field, field))
    if value is None:
        value = RUN_DEFAULT.get((scope, field))
    if isinstance(value, tuple) and field == "matrix":
        value = dict(value)  # (param, source) pairs
    return value


def _parsed(field: str, text: str):
    """A table cell's value (`10s`, `8MiB`, `{}`...) as the reader holds it."""
    value = yaml.safe_load(text)
    if field == "timeout":
        return parse_duration(value)
    if field == "ttl":
        return round(parse_duration(value) * 1000)
    if field == "max_response_bytes":
        return parse_size(value)
    if isinstance(value, list):
        return tuple(value)
    return value


# ---- the types: values each type's wording says are taken, and values it says are refused ----

_WORDED = {
    "URL text": (["https://a.test/v1", "http://a.test"], ["ftp://a.test", "a.test"]),
    "text": (["products"], [["a"], 7]),
    "mapping of text": ([{"X-A": "b"}], [["a"], {"X-A": ["b"]}]),
    "`GET` or `POST`": (["GET", "POST"], ["PUT"]),
    "mapping, list or text": ([{"q": 1}, [1], "q=1"], []),
    "mapping": ([{"limit": 1}], [["a"]]),
    "mapping of param → source": ([{"p": [1, 2]}, {"p": {"range": [1, 2]}}], [["a"]]),
    "URL or path template": (["/p/{id}", "https://a.test/p/{id}"], []),
    "text or list of text templates": (["a", ["a", "b_{id}"]], [{"a": 1}]),
    "`always`, `non_empty` or list of statuses": (["always", "non_empty", [200]], ["often"]),
    "`always`, `non_empty` or list of 2xx statuses": (
        ["always", "non_empty", [200, 203]],
        ["often", [404]],
    ),
    "size": (["512KiB", 1024], ["lots", 0]),
}


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _taken_and_refused(type_: str) -> tuple[list, list]:
    if type_ in _WORDED:
        return _WORDED[type_]
    if match := re.fullmatch(r"integer (\d+)\u2013(\d+)", type_):  # an en dash
        low, high = int(match[1]), int(match[2])
        return [low, high], [low - 1, high + 1, low + 0.5, str(low)]
    if match := re.fullmatch(r"number ([\d.,]+)\u2013([\d.,]+)", type_):
        low, high = _number(match[1]), _number(match[2])
        return [low, high], [low / 2, high + 1, "fast"]
    if match := re.fullmatch(r"duration((?:, above 0)?)(?:, at most `(\w+)`)?", type_):
        taken, refused = ["300ms", "10m", 5], ["soon"]
        if match[1]:
            refused.append(0)
        if match[2]:
            most = parse_duration(match[2])
            taken.append(match[2])
            refused.append(f"{most + 1:g}s")
        return taken, refused
    raise AssertionError(
        f"no rule for the type {type_!r}: add one to tests/docs/{Path(__file__).name}"
    )


@pytest.mark.parametrize(("scope", "field"), CASES, ids=IDS)
def test_the_type_column_says_what_the_reader_takes_and_refuses(tmp_path, scope, field):
    rows = DEFAULTS_ROWS if scope == "defaults" else ENDPOINT_ROWS
    taken, refused = _taken_and_refused(rows[field][0])
    for value in taken:
        _load(tmp_path, *_with(scope, field, value))
    for value in refused:
        with pytest.raises(ManifestError) as caught:
            _load(tmp_path, *_with(scope, field, value))
        assert any(field in problem for problem in caught.value.problems), (
            value,
            caught.value.problems,
        )


@pytest.mark.parametrize(("scope", "field"), CASES, ids=IDS)
def test_the_example_column_is_a_value_the_reader_takes(tmp_path, scope, field):
    rows = DEFAULTS_ROWS if scope == "defaults" else ENDPOINT_ROWS
    example = re.fullmatch(r"`(.+)`", rows[field][2])
    assert example, f"{field}: the example is one value in backticks, got {rows[field][2]!r}"
    _load(tmp_path, *_with(scope, field, yaml.safe_load(example[1])))


@pytest.mark.parametrize(("scope", "field"), CASES, ids=IDS)
def test_the_default_column_is_what_a_left_out_field_comes_to(tmp_path, scope, field):
    rows = DEFAULTS_ROWS if scope == "defaults" else ENDPOINT_ROWS
    default, example = rows[field][1], yaml.safe_load(rows[field][2].strip("`"))
    if default == "*required*":
        with pytest.raises(ManifestError) as caught:
            _load(tmp_path, *_with(scope, field, _LEFT_OUT))
        assert any(field in problem for problem in caught.value.problems)
        return
    if field == "base_url":  # nothing to join a relative URL to: the endpoint's URL says so
        assert default == "none"
        with pytest.raises(ManifestError, match="base_url"):
            _load(tmp_path, {}, dict(ENDPOINT))
        return
    if field == "ttl" and scope == "defaults":  # none: each endpoint must give its own
        assert default == "none"
        with pytest.raises(ManifestError, match="ttl"):
            _load(
                tmp_path, {"base_url": BASE_URL}, {k: v for k, v in ENDPOINT.items() if k != "ttl"}
            )
        return
    inherited = re.fullmatch(
        r"`defaults\.(\w+)`(?:, else `(.+)`| \(\*required\* in one of the two\))?", default
    )
    if inherited:
        # Left out of the endpoint, it is what `defaults` says.
        assert inherited[1] == field
        defaults, endpoint = _with("endpoint", field, _LEFT_OUT)
        defaults[field] = example
        got = _value(_load(tmp_path, defaults, endpoint), "endpoint", field)
        assert got == _value(_load(tmp_path, *_with("endpoint", field, example)), "endpoint", field)
        if inherited[2] is not None:  # and with neither, the default the cell names
            left_out = _value(
                _load(tmp_path, *_with("endpoint", field, _LEFT_OUT)), "endpoint", field
            )
            assert left_out == _parsed(field, inherited[2])
        elif "required" in default:
            with pytest.raises(ManifestError, match=field):
                _load(tmp_path, *_with("endpoint", field, _LEFT_OUT))
        return
    got = _value(_load(tmp_path, *_with(scope, field, _LEFT_OUT)), scope, field)
    if default in NO_VALUE:
        assert got is None, (field, got)
        return
    value = re.fullmatch(r"`(.+)`", default)
    assert value, f"{field}: no rule for the default {default!r}"
    want = _parsed(field, value[1])
    assert (tuple(got) if isinstance(got, (list, tuple)) else got) == want, (field, got, want)


def test_the_tables_are_read():
    """The checks above see every field the reader knows (and only those)."""
    assert set(DEFAULTS_ROWS) == set(DEFAULT_FIELDS)
    assert set(ENDPOINT_ROWS) == set(ENDPOINT_FIELDS)


def test_the_top_level_table(tmp_path):
    rows = _rows("Top level")
    assert set(rows) == {"version", "defaults", "endpoints"}
    assert rows["version"][1:] == ("*required*", "`1`")
    assert [rows[f][1] for f in ("defaults", "endpoints")] == ["`{}`", "*required*"]
    whole = {"version": 1, "defaults": {"base_url": BASE_URL}, "endpoints": [ENDPOINT]}
    for field in ("version", "endpoints"):
        (tmp_path / "m.yaml").write_text(
            yaml.safe_dump({k: v for k, v in whole.items() if k != field})
        )
        with pytest.raises(ManifestError, match=field):
            load_manifest(tmp_path / "m.yaml", env=ENV)
    endpoint = {**ENDPOINT, "url": BASE_URL + "/items"}
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"version": 1, "endpoints": [endpoint]}))
    assert load_manifest(tmp_path / "m.yaml", env=ENV).endpoints[0].name == "items"
