"""Options more than one command takes, declared once: the same flag, metavar and help
wherever the idea appears (the options every command has live in `cachectl.cli.context`), and
the parameter types of the vocabulary (docs/reference/vocabulary.md): a DURATION, a choice.

`tests/cli/test_vocabulary.py` walks the command tree and holds every command to it."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer._click.types import ParamType  # typer 0.28 vendors click
from typer._types import TyperChoice

from cachectl.cli.completion import complete_manifest_endpoint

CountOpt = Annotated[
    int | None,
    typer.Option(
        "--count",
        min=1,
        metavar="N",
        help="SCAN COUNT: keys the server looks at per call "
        "(default: the scan_count setting, 1000).",
    ),
]
BatchOpt = Annotated[
    int | None,
    typer.Option(
        "--batch-size",
        min=1,
        metavar="N",
        help="Keys per pipelined batch (default: the batch_size setting, 1000).",
    ),
]
RateOpt = Annotated[
    float | None,
    typer.Option(
        "--rate",
        min=0.001,
        metavar="KEYS_PER_S",
        help="At most this many keys a "
        "second, scanned and deleted (default: the rate setting, no cap).",
    ),
]
ReplicaOpt = Annotated[
    bool,
    typer.Option(
        "--replica",
        help="Read from a replica the sentinels name, sparing the primary (Redis Sentinel only; "
        "a replica may lag the primary by a moment).",
    ),
]
JsonlOpt = Annotated[
    bool, typer.Option("--jsonl", help="One JSON object per line, written as rows arrive.")
]


class Duration(ParamType):
    """A duration flag's type: `90` (seconds), `90s`, `500ms`, `10m`, `1h30m`, `2d`, read as
    seconds (a float). Zero is refused unless `allow_zero` (zero means "none": `--sample 0`).

    A bad value is cachectl's one-line usage error (exit 2) naming the flag, as every value
    cachectl itself checks is: CachectlGroup reports it."""

    name = "duration"

    def __init__(self, *, allow_zero: bool = False) -> None:
        self.allow_zero = allow_zero

    def get_metavar(self, param: Any, ctx: Any = None) -> str:
        return DURATION_METAVAR

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if isinstance(value, float):  # already seconds (a default converted before)
            return value
        from cachectl.durations import parse_duration
        from cachectl.errors import UsageError

        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise UsageError(f"{flag_of(param)}: {exc}") from None
        if seconds < 0 or (seconds == 0 and not self.allow_zero):
            least = "0 or more" if self.allow_zero else "greater than 0"
            raise UsageError(f"{flag_of(param)} must be {least}, not {value!r}")
        return seconds


def flag_of(param: Any) -> str:
    """The flag a usage error names: its long spelling."""
    opts = getattr(param, "opts", None) or ["value"]
    return next((o for o in opts if o.startswith("--")), opts[0])


DURATION_METAVAR = "DURATION"


def DurationOption(*names: str, help: str, allow_zero: bool = False, **kw: Any) -> Any:
    """A duration flag: the DURATION type and metavar, seconds (a float) in the function."""
    return typer.Option(
        *names,
        click_type=Duration(allow_zero=allow_zero),
        metavar=DURATION_METAVAR,
        help=help,
        **kw,
    )


class HintedChoice(TyperChoice):
    """One of a few values (click's choice: the help lists them), a wrong one a one-line usage
    error naming them; a value that is no longer a choice says what replaced it (`stats
    --format json`: did you mean --json?)."""

    def __init__(self, choices: Any, hints: dict[str, str] | None = None) -> None:
        super().__init__(choices)
        self.hints = hints or {}

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if value in self.choices:
            return value
        from cachectl.errors import UsageError

        hint = self.hints.get(value) if isinstance(value, str) else None
        also = f"; did you mean {hint}?" if hint else ""
        raise UsageError(
            f"{flag_of(param)} must be one of {', '.join(map(str, self.choices))}, "
            f"not {value!r}{also}"
        )


def ChoiceOption(
    *names: str, choices: Any, help: str, hints: dict[str, str] | None = None, **kw: Any
) -> Any:
    """A flag taking one of `choices` (click's Choice: the metavar lists them, a wrong value is
    a usage error naming them)."""
    return typer.Option(*names, click_type=HintedChoice(choices, hints), help=help, **kw)


EndpointOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--endpoint",
        "-e",
        metavar="NAME",
        help="Only this endpoint (repeatable).",
        autocompletion=complete_manifest_endpoint,  # from the manifests on the line
    ),
]
RoundsOpt = Annotated[
    int | None,
    typer.Option("--rounds", min=1, metavar="N", help="With --every: stop after N rounds."),
]
