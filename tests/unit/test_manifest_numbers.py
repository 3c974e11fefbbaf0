"""Every numeric field of a manifest fed absurd numbers: each is a problem naming the field
(ManifestError, exit 3) or a value in bounds, never another exception; huge valid ranges stream."""

from __future__ import annotations

import itertools
import textwrap

import pytest

from cachectl.errors import ManifestError
from cachectl.layout import Layout
from cachectl.manifest import Plan, load_manifest

HOSTILE = {
    "zero": "0",
    "minus one": "-1",
    "10^21": "1000000000000000000000",
    "NaN": ".nan",
    "infinity": ".inf",
    "1e400 as a float": "1.0e+400",
    "1e400 as text": "'1e400'",
    "10,000 digits": "9" * 10_000,
}
DEFAULT_FIELDS = (
    "timeout", "ttl", "retries", "concurrency", "concurrency_per_host", "rate",
    "max_response_bytes",
)  # fmt: skip
ENDPOINT_FIELDS = (
    "timeout", "ttl", "retries", "concurrency", "rate", "max_response_bytes", "range_first",
    "range_last", "cache_if", "version",
)  # fmt: skip


def manifest(field: str, value: str, where: str) -> str:
    defaults = {"ttl": "60"}
    endpoint = {"name": "items", "url": "'http://origin.test/items/{i}'"}
    matrix = "{i: {range: [1, 5]}}"
    version = "1"
    if field == "range_first":
        matrix = f"{{i: {{range: [{value}, 5]}}}}"
    elif field == "range_last":
        matrix = f"{{i: {{range: [1, {value}]}}}}"
    elif field == "cache_if":
        endpoint["cache_if"] = f"[{value}]"
    elif field == "version":
        version = value
    elif where == "defaults":
        defaults[field] = value
    else:
        endpoint[field] = value
    return textwrap.dedent(
        f"""\
        version: {version}
        defaults: {{{", ".join(f"{k}: {v}" for k, v in defaults.items())}}}
        endpoints:
          - {{{", ".join(f"{k}: {v}" for k, v in endpoint.items())}, matrix: {matrix}}}
        """
    )


def test_the_manifest_these_tests_vary_is_valid(tmp_path):
    path = tmp_path / "m.yaml"
    for field, where in [("ttl", "defaults"), ("retries", "endpoint"), ("range_last", "")]:
        path.write_text(manifest(field, "7", where))
        assert Plan([load_manifest(path, env={})], Layout()).total >= 1


CASES = [
    *((f, label, "defaults") for f, label in itertools.product(DEFAULT_FIELDS, HOSTILE)),
    *((f, label, "endpoint") for f, label in itertools.product(ENDPOINT_FIELDS, HOSTILE)),
]


@pytest.mark.parametrize(("field", "label", "where"), CASES)
def test_every_numeric_field_refuses_absurd_numbers_as_a_manifest_problem(
    tmp_path, field, label, where
):
    path = tmp_path / "m.yaml"
    path.write_text(manifest(field, HOSTILE[label], where))
    try:
        loaded = load_manifest(path, env={})
    except ManifestError as exc:
        assert str(path) in exc.message and len(exc.message) < 600
        assert "\n" not in exc.message
        named = {"range_first": "range", "range_last": "range"}.get(field, field)
        assert named in exc.message, exc.message
        return
    # Accepted: only a value in bounds, and the plan can count and expand it.
    assert label in ("zero", "minus one"), f"{field}={label} was accepted"
    plan = Plan([loaded], Layout())
    assert plan.total >= 1
    assert next(plan.requests()).key


@pytest.mark.parametrize("label", ["10^21", "10,000 digits", "NaN", "1e400 as a float"])
def test_absurd_values_are_refused_in_every_numeric_field(tmp_path, label):
    for field in ("timeout", "ttl", "concurrency", "rate", "range_last", "max_response_bytes"):
        path = tmp_path / "m.yaml"
        path.write_text(manifest(field, HOSTILE[label], "endpoint"))
        with pytest.raises(ManifestError):
            load_manifest(path, env={})


def test_a_huge_but_valid_range_matrix_streams_and_counts_without_overflow(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nendpoints:\n"
        "  - {name: items, url: 'http://o.test/{i}/{j}', ttl: 60,\n"
        "     matrix: {i: {range: [-9007199254740991, 9007199254740991]},"
        " j: {range: [0, 9007199254740991]}}}\n"
    )
    plan = Plan([load_manifest(path, env={})], Layout())
    assert plan.total == (2 * 9007199254740991 + 1) * 9007199254740992
    first = list(itertools.islice(plan.requests(), 3))
    assert first[0].params == {"i": -9007199254740991, "j": 0}
    assert plan.summary()["total"] == plan.total
