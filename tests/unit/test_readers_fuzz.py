"""Fuzzing the manifest and config readers: whatever the file holds, the outcome is a result or
a bad-input error (exit 3), never an internal error (exit 1), in bounded memory."""

from __future__ import annotations

import os
import resource

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import load_settings
from cachectl.errors import BadInputError
from cachectl.manifest import load_manifest

# 100 examples a test in the suite (each one a manifest read end to end: seconds on a busy box);
# CACHECTL_FUZZ_EXAMPLES=5000 for a long hunt. Hypothesis keeps what it found failing and tries
# it first the next run.
FUZZ = settings(
    max_examples=int(os.environ.get("CACHECTL_FUZZ_EXAMPLES", "100")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
runner = CliRunner()

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1e400", "-1", "0", "9" * 5000, "10m", "1h30m", "99999999999999999999h", ""]),
)
scalars = st.one_of(numbers, st.text(max_size=20), st.booleans(), st.none())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
endpoint = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8), "url": st.just("http://o.test/{i}")},
    optional={
        field: st.one_of(numbers, values)
        for field in (
            "ttl", "timeout", "retries", "concurrency", "rate", "max_response_bytes", "cache_if",
            "params", "tags", "method",
        )
    }
    | {
        "matrix": st.one_of(
            values,
            st.fixed_dictionaries({"i": st.fixed_dictionaries({"range": st.lists(numbers, max_size=3)})}),
        )
    },
)  # fmt: skip
manifests = st.fixed_dictionaries(
    {"version": st.one_of(st.just(1), numbers), "endpoints": st.lists(endpoint, max_size=3)},
    optional={"defaults": st.dictionaries(st.sampled_from(["ttl", "rate", "concurrency",
              "concurrency_per_host", "timeout", "retries", "max_response_bytes"]), numbers)},
)  # fmt: skip
configs = st.dictionaries(
    st.sampled_from(
        ["url", "timeout", "connect_timeout", "retries", "scan_count", "batch_size", "rate",
         "cluster", "profiles", "default_profile", "layout", "tls"]
    ),
    st.one_of(numbers, values),
    max_size=6,
)  # fmt: skip
# Text that is YAML-ish but hostile: anchors, aliases, merges, deep brackets, tags, odd bytes.
tokens = st.sampled_from(
    ["&a ", "*a", "<<: *a", "[", "]", "{", "}", "- ", ": ", "\n", "  ", "!!python/object ",
     "!!binary ", "? ", "|", ">", "#", "'", '"', "\\u0000", "9" * 5000, "1.0e+400", ".nan",
     "2024-13-45", "version: 1", "endpoints:", "x", "\t", "\ufeff", "\x85"]
)  # fmt: skip
hostile_text = st.lists(tokens, max_size=60).map("".join)


def dumped(data) -> str:
    return yaml.safe_dump(data, allow_unicode=True)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


START_MB = rss_mb()


def check_manifest(tmp_path, text) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        load_manifest(path, env={})
    except BadInputError as exc:
        assert "\n" not in exc.message
    result = runner.invoke(app, ["manifest", "validate", str(path)], env={"NO_COLOR": "1"})
    assert result.exit_code in (0, 3), result.output
    assert rss_mb() - START_MB < 300


def check_config(tmp_path, text) -> None:
    path = tmp_path / "cachectl.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        load_settings(config_path=str(path), env={}, cwd=tmp_path)
    except BadInputError as exc:
        assert "\n" not in exc.message
    assert rss_mb() - START_MB < 300


@FUZZ
@given(manifests)
def test_a_manifest_is_read_or_refused_never_an_internal_error(tmp_path, data):
    check_manifest(tmp_path, dumped(data))


@FUZZ
@given(st.one_of(hostile_text, st.binary(max_size=200)))
def test_hostile_manifest_text_is_read_or_refused(tmp_path, text):
    check_manifest(tmp_path, text)


@FUZZ
@given(st.one_of(configs.map(dumped), hostile_text, st.binary(max_size=200)))
def test_a_config_file_is_read_or_refused_never_an_internal_error(tmp_path, text):
    check_config(tmp_path, text)
