"""Every numeric flag (and every flag that takes a duration or a size) fed 0, -1, 10^21, NaN,
1e400 and a 10,000-digit number: an absurd value is a usage error (exit 2) naming the flag, in
one short line; no value is ever an internal error (exit 1)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cachectl.cli.app import app

runner = CliRunner()
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens: a command that gets that far exits 4

SANE = {"0": "0", "-1": "-1"}
ABSURD = {"10^21": "1" + "0" * 21, "NaN": "nan", "1e400": "1e400", "10,000 digits": "9" * 10_000}
# Flags given as text but read as numbers: durations, sizes, counts.
TEXT_NUMBERS = {
    "--sample", "--since", "--baseline", "--every", "--ttl-below", "--ttl-above",
    "--idle-above", "--older-than", "--larger-than", "--delay", "--refresh-below",
    "--compact-after", "--max-failures", "--max-memory", "--max-response-bytes",
}  # fmt: skip
SKIPPED = {"demo"}  # starts servers of its own
ABSURD_ACCEPTED: set = {}


def manifest_file(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("m") / "m.yaml"
    path.write_text(
        "version: 1\nendpoints:\n  - {name: a, url: 'http://127.0.0.1:1/a', ttl: 60, retries: 0}\n"
    )
    return str(path)


def required_args(path: tuple[str, ...], manifest: str) -> list[str]:
    return {
        ("warm",): [manifest],
        ("manifest", "validate"): [manifest],
        ("manifest", "expand"): [manifest],
        ("history", "show"): ["hit_rate"],
        ("history", "outliers"): ["hit_rate"],
        ("history", "correlate"): ["hit_rate", "misses"],
        ("tags", "show"): ["t"],
        ("invalidate",): ["--tag", "t", "--yes"],
        ("check",): ["--min-hit-rate", "50"],
    }.get(path, [])


def numeric_flags() -> list[tuple[tuple[str, ...], str]]:
    out = []

    def walk(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            if name not in SKIPPED:
                walk(sub, (*path, name))
        for param in command.params:
            flag = next((o for o in param.opts if o.startswith("--")), None)
            if flag is None or getattr(param, "is_flag", False):
                continue
            numeric = param.type.name.split()[0] in ("integer", "int", "float", "duration")
            if numeric or flag in TEXT_NUMBERS:
                out.append((path, flag))

    walk(typer.main.get_command(app), ())
    return out


FLAGS = numeric_flags()


def test_the_flags_enumerated_include_the_known_numeric_ones():
    flags = {(" ".join(p), f) for p, f in FLAGS}
    for expected in [
        ("", "--timeout"), ("warm", "--concurrency"), ("warm", "--rate"),
        ("invalidate", "--delay"), ("invalidate", "--rate"), ("stats", "--every"),
        ("warm", "--max-response-bytes"), ("history record", "--every"),
    ]:  # fmt: skip
        assert expected in flags


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return manifest_file(tmp_path_factory)


def run(path, flag, value, manifest):
    if path == ():  # a root option: given before a command that reads the settings
        args = ["--url", DEAD_REDIS, flag, value, "keys"]
    else:
        args = ["--url", DEAD_REDIS, *path, *required_args(path, manifest), f"{flag}={value}"]
    return runner.invoke(app, args, env={"NO_COLOR": "1", "CACHECTL_RETRIES": "0"})


@pytest.mark.parametrize("label", list(ABSURD))
@pytest.mark.parametrize(("path", "flag"), FLAGS, ids=[" ".join(p) + f" {f}" for p, f in FLAGS])
def test_an_absurd_number_in_a_flag_is_a_usage_error_naming_the_flag(path, flag, label, manifest):
    result = run(path, flag, ABSURD[label], manifest)
    assert result.exit_code == 2, result.output
    first = result.output.strip().splitlines()[0] if result.output.strip() else ""
    assert flag in result.output, result.output[:500]
    assert len(first) < 300, first[:300]


@pytest.mark.parametrize("label", list(SANE))
@pytest.mark.parametrize(("path", "flag"), FLAGS, ids=[" ".join(p) + f" {f}" for p, f in FLAGS])
def test_zero_and_minus_one_in_a_flag_are_never_an_internal_error(path, flag, label, manifest):
    result = run(path, flag, SANE[label], manifest)
    assert result.exit_code != 1, result.output
    assert "internal error" not in result.output


@pytest.mark.parametrize(("flag", "value"), [("--concurrency", "1001"), ("--rate", "1000001")])
def test_warm_flags_keep_the_bounds_of_the_manifest_fields_they_override(flag, value, manifest):
    result = run(("warm",), flag, value, manifest)
    assert result.exit_code == 2 and flag in result.output
