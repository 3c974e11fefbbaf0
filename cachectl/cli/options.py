"""Options more than one command takes, declared once: the same flag, metavar and help
wherever the idea appears (the options every command has live in `cachectl.cli.context`)."""

from __future__ import annotations

from typing import Annotated

import typer

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


def duration_option(option: str, text: str | None, *, allow_zero: bool = False) -> float | None:
    """A duration option's seconds, or a usage error naming the option."""
    if text is None:
        return None
    from cachectl.durations import parse_duration
    from cachectl.errors import UsageError

    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise UsageError(f"{option} must be greater than 0, not {text!r}")
    return seconds
