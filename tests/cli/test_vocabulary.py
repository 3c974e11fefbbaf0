"""One vocabulary (docs/reference/vocabulary.md): every command spells a concept the same way.

`vocabulary_problems` walks the whole click tree of the Typer app and names each place that
spells a known concept a second way: a retired spelling, a short flag with two meanings, a long
flag that is a duration here and a count there, a duration without the DURATION type and
metavar, a value without an upper-case metavar, a `--no-` flag that turns something on, an
`--every` without `--rounds` (or the reverse). The
walk is itself tested on a small app that breaks each rule, so it cannot pass by finding
nothing.
"""

from __future__ import annotations

import re
from typing import Annotated

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from cachectl.cli.app import COMMANDS, RENAMED, SUMMARIES, app
from cachectl.cli.options import DURATION_METAVAR, Duration, DurationOption, HintedChoice
from cachectl.errors import ExitCode

runner = CliRunner()

# Each concept's one spelling, and the spellings it replaced (or that a new flag might reach
# for): a retired spelling anywhere in the tree is a second spelling of the concept.
CONCEPTS: dict[str, tuple[str, set[str]]] = {
    "repeat every DURATION": ("--every", {"--watch", "-w", "--interval", "-i", "--repeat"}),
    "stop after N rounds": ("--rounds", {"--ticks", "--times", "--iterations", "--max-rounds"}),
    "select by endpoint": ("--endpoint", {"--ep", "--endpoints"}),
    "dependency sets instead of tag sets": ("--dependencies", {"--dependency", "--deps"}),
    "select by resource id": ("--depends-on", {"--dependent-on", "--resource"}),
    "a count of members or keys to read": ("--sample-size", {"--sample-count", "--samples"}),
    "stop after N entries": ("--limit", {"--max", "--head"}),
    "JSON output": ("--json", {"--output-json", "-j"}),
    "an anomaly condition": ("--fail-on-anomaly", {"--no-anomaly", "--anomaly"}),
    "entries without a TTL": ("--without-ttl", {"--no-ttl", "--persistent"}),
    "over the last DURATION": ("--since", {"--window", "--last", "--range"}),
}
# Flags that hold a duration wherever they appear.
DURATION_FLAGS = {
    "--every", "--sample", "--baseline", "--since", "--delay", "--timeout",
    "--connect-timeout", "--ttl-below", "--ttl-above", "--idle-above", "--older-than",
    "--refresh-below", "--compact-after",
}  # fmt: skip
# One short flag, one long flag, everywhere.
SHORT_FLAGS = {
    "-e": "--endpoint", "-t": "--tag", "-n": "--limit", "-f": "--fields", "-d": "--dependencies",
    "-r": "--resolution", "-y": "--yes", "-u": "--url", "-p": "--profile", "-c": "--config",
    "-h": "--help",
}  # fmt: skip
# A retired spelling that is still right elsewhere (`-f` is --fields, --sample a duration) is
# held by the rules on short flags and on kinds instead.
RETIRED = (
    ({old for _, olds in CONCEPTS.values() for old in olds} | set(RENAMED))
    - set(SHORT_FLAGS)
    - DURATION_FLAGS
)
# `--no-X` turns X off (or is the off side of --X/--no-X), never something on.
TURNS_OFF = {"--no-color"}
METAVAR = re.compile(r"^\[?[A-Z][A-Z0-9_]*([=:][A-Z]+)?(\|[A-Z0-9_%]+)*\]?(\.\.\.)?$")


def _walk(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _walk(sub, (*path, name))


def _long(param) -> str | None:
    return next((o for o in param.opts if o.startswith("--")), None)


def _kind(param) -> str:
    """What a flag takes: a switch, a duration, a choice, a count, a number, text."""
    if getattr(param, "is_flag", False):
        return "switch"
    if isinstance(param.type, Duration):
        return "duration"
    if isinstance(param.type, HintedChoice):
        return "choice"
    name = param.type.name.split()[0]
    return {"integer": "count", "int": "count", "float": "number"}.get(name, "text")


def vocabulary_problems(root) -> list[str]:
    problems: list[str] = []
    kinds: dict[str, dict[str, list[str]]] = {}
    shorts: dict[str, set[str]] = {}
    for path, command in _walk(root):
        where = " ".join(("cachectl", *path))
        ctx = typer.Context(command, info_name=where)
        names = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for param in command.params:
            if param.param_type_name == "argument":
                if not METAVAR.match(param.make_metavar(ctx)):
                    problems.append(f"{where} {param.name}: metavar {param.make_metavar(ctx)!r}")
                continue
            flag = _long(param) or param.opts[0]
            for spelling in (*param.opts, *param.secondary_opts):
                if spelling in RETIRED:
                    concept = next((c for c, (_, o) in CONCEPTS.items() if spelling in o), None)
                    problems.append(
                        f"{where} {spelling}: a retired spelling"
                        + (f" of {concept!r}" if concept else f" (now {RENAMED[spelling]})")
                    )
            for short in (o for o in param.opts if not o.startswith("--")):
                shorts.setdefault(short, set()).add(flag)
            kinds.setdefault(flag, {}).setdefault(_kind(param), []).append(where)
            if flag in DURATION_FLAGS and not isinstance(param.type, Duration):
                problems.append(f"{where} {flag}: a duration flag without the DURATION type")
            if isinstance(param.type, Duration) and param.metavar != DURATION_METAVAR:
                problems.append(f"{where} {flag}: a duration whose metavar is {param.metavar!r}")
            if _kind(param) == "choice" and "json" in param.type.choices:
                problems.append(f"{where} {flag}: offers json, which is --json")
            if flag == "--rounds" and "--every" not in names:
                problems.append(f"{where} --rounds without --every")
            if flag == "--every" and "--rounds" not in names:
                problems.append(f"{where} --every without --rounds")
            if flag.startswith("--no-") and not param.secondary_opts and flag not in TURNS_OFF:
                problems.append(f"{where} {flag}: a --no- flag that turns something on")
            if not getattr(param, "is_flag", False) and not param.hidden:
                metavar = param.make_metavar(ctx).removesuffix("...")
                if _kind(param) != "choice" and not METAVAR.match(metavar):
                    problems.append(f"{where} {flag}: metavar {metavar!r} is not upper case")
    for short, longs in sorted(shorts.items()):
        if len(longs) > 1:
            problems.append(f"{short} means {' and '.join(sorted(longs))}")
        elif SHORT_FLAGS.get(short, next(iter(longs))) != next(iter(longs)):
            problems.append(f"{short} means {next(iter(longs))}, not {SHORT_FLAGS[short]}")
    for flag, by_kind in sorted(kinds.items()):
        if len(by_kind) > 1:
            spread = "; ".join(f"{k} in {', '.join(w)}" for k, w in sorted(by_kind.items()))
            problems.append(f"{flag} is two things: {spread}")
    concept_flags = {canonical for canonical, _ in CONCEPTS.values()}
    for flag in sorted(concept_flags & {"--endpoint", "--tag", "--limit"}):
        short = next(s for s, f in SHORT_FLAGS.items() if f == flag)
        for path, command in _walk(root):
            for param in command.params:
                if _long(param) == flag and short not in param.opts:
                    problems.append(f"cachectl {' '.join(path)} {flag} without {short}")
    return problems


def test_the_command_tree_speaks_one_vocabulary():
    assert vocabulary_problems(get_command(app)) == []


def test_the_walk_finds_a_second_spelling_of_each_kind():
    """The walk on an app that breaks each rule once: it names every one of them."""
    bad = typer.Typer()

    @bad.command("one")
    def one(
        interval: Annotated[float, typer.Option("--interval", "-i")] = 1.0,
        fmt: Annotated[str, typer.Option("--format", "-f", click_type=HintedChoice(["json"]))] = "",
        sample: Annotated[int, typer.Option("--sample", metavar="N")] = 1,
        since: Annotated[str, typer.Option("--since", metavar="DURATION")] = "5m",
        no_anomaly: Annotated[bool, typer.Option("--no-anomaly")] = False,
        rounds: Annotated[int, typer.Option("--rounds", metavar="N")] = 1,
        endpoint: Annotated[str, typer.Option("--endpoint", metavar="NAME")] = "",
        name: Annotated[str, typer.Option("--name")] = "",
    ) -> None:
        pass

    @bad.command("two")
    def two(
        fields: Annotated[str, typer.Option("--fields", "-f", metavar="FIELDS")] = "",
        sample: Annotated[float, DurationOption("--sample", help="")] = "1s",  # type: ignore[assignment]
        every: Annotated[float, DurationOption("--every", help="")] = "1s",  # type: ignore[assignment]
    ) -> None:
        pass

    found = "\n".join(vocabulary_problems(get_command(bad)))
    for expected in [
        "one --interval: a retired spelling of 'repeat every DURATION'",
        "one -i: a retired spelling",
        "one --interval: metavar '<float>' is not upper case",
        "-f means --fields and --format",
        "one --format: offers json",
        "--sample is two things: count in cachectl one; duration in cachectl two",
        "one --since: a duration flag without the DURATION type",
        "one --no-anomaly: a retired spelling",
        "one --no-anomaly: a --no- flag that turns something on",
        "one --rounds without --every",
        "two --every without --rounds",
        "one --endpoint without -e",
        "one --name: metavar '<str>' is not upper case",
    ]:
        assert expected in found, found


# -- the retired spellings: an error naming the new one ---------------------------------------

OLD_SPELLINGS = [
    (["stats", "--watch"], "--every DURATION"),
    (["stats", "-w"], "--every DURATION"),
    (["stats", "--interval", "2"], "--every DURATION"),
    (["stats", "-i", "2"], "--every DURATION"),
    (["stats", "--every", "1s", "--ticks", "2"], "--rounds N"),
    (["stats", "-f", "prometheus"], "--format"),
    (["history", "record", "--ticks", "2"], "--rounds N"),
    (["check", "--no-anomaly"], "--fail-on-anomaly"),
    (["tags", "--sample", "5"], "--sample-size N"),
    (["memory", "--sample", "5"], "--sample-size N"),
    (["tags", "show", "user_1", "--dependency"], "--dependencies"),
    (["keys", "--no-ttl"], "--without-ttl"),
    (["stats", "--window", "15m"], "--since DURATION"),
    (["check", "--window", "15m"], "--since DURATION"),
]


@pytest.mark.parametrize(("args", "new"), OLD_SPELLINGS, ids=lambda a: " ".join(a))
def test_a_retired_spelling_is_a_usage_error_naming_the_new_one(args, new):
    # No server is reached: nothing listens on port 1.
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    (said,) = [line for line in result.stderr.splitlines() if "No such option" in line]
    assert said.endswith(f"did you mean {new}?"), said


def test_stats_format_json_says_use_json():
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", "stats", "--format", "json"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip() == (
        "error: --format must be one of text, prometheus, not 'json'; did you mean --json?"
    )


@pytest.mark.parametrize("value", ["90", "90s", "10m", "1h", "1h30m", "500ms"])
def test_a_duration_reads_every_spelling(value):
    assert Duration().convert(value, None, None) > 0


def test_a_bad_duration_is_one_line_naming_the_flag():
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", "stats", "--every", "soon"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip() == (
        "error: --every: expected a duration such as 90, 30s, 10m, 1h30m or 500ms, got 'soon'"
    )


# -- flags that mean the same on every command stand before or after its name ------------------


def test_json_before_the_command_name_is_the_commands_json():
    result = runner.invoke(app, ["--json", "--url", "redis://127.0.0.1:1/0", "doctor"])
    assert result.exit_code == ExitCode.REDIS, result.output
    assert '"ok":false' in result.stdout.replace(" ", "")


def test_no_color_after_the_command_name_is_the_roots(monkeypatch):
    seen = {}

    def fake(settings, store):
        raise RuntimeError("stop here")

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", fake)
    from cachectl.cli import context

    real = context.command_context

    def spy(ctx, **kw):
        seen["no_color"] = ctx.find_root().obj.no_color
        return real(ctx, **kw)

    monkeypatch.setattr("cachectl.cli.doctor.command_context", spy)
    runner.invoke(app, ["doctor", "--no-color"])
    assert seen == {"no_color": True}


def test_the_root_lists_each_commands_whole_summary():
    result = runner.invoke(app, ["--help"], prog_name="cachectl", terminal_width=80)
    listed = result.output.split("Commands:", 1)[1]
    assert set(SUMMARIES) == set(COMMANDS)
    for name, summary in SUMMARIES.items():
        assert re.search(rf"^  {name} +{re.escape(summary)}$", listed, re.MULTILINE), name
