"""`cachectl warm`'s progress: a bar on a terminal (done, failed, rate, ETA), a plain line on
stderr every few seconds off one, nothing with --json; the summary for people and machines."""

from __future__ import annotations

import io
import re

from cachectl.ops.warm import WarmProgress, WarmResult
from cachectl.render.output import Output
from cachectl.render.warm import PLAIN_PROGRESS_EVERY_SECONDS, WarmProgressView, render_warm


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def progress(done: int, failed: int = 0, total: int = 1000, elapsed: float = 10.0) -> WarmProgress:
    return WarmProgress(
        total=total,
        done=done,
        stored=done - failed,
        skipped=0,
        failed=failed,
        elapsed_seconds=elapsed,
    )


def test_off_a_terminal_a_plain_line_every_few_seconds_on_stderr():
    out = Output(stdout=io.StringIO(), stderr=io.StringIO())
    clock = Clock()
    view = WarmProgressView(out, clock=clock)
    view.update(progress(100))
    assert out.stderr.getvalue() == ""  # not yet: a line every few seconds, not every tick
    clock.now += PLAIN_PROGRESS_EVERY_SECONDS
    view.update(progress(250, failed=3))
    clock.now += 1
    view.update(progress(260, failed=3))
    lines = out.stderr.getvalue().splitlines()
    assert lines == ["warm: 250/1,000 done, 247 stored, 3 failed · 25/s, ETA 30.0 s"], lines
    assert "\x1b[" not in out.stderr.getvalue()
    assert out.stdout.getvalue() == ""


def test_json_mode_draws_no_progress_at_all():
    out = Output(json_mode=True, stdout=Terminal(), stderr=Terminal())
    clock = Clock()
    view = WarmProgressView(out, clock=clock)
    clock.now += 60
    view.update(progress(500))
    view.round_done()
    assert out.stderr.getvalue() == "" and out.stdout.getvalue() == ""


def test_on_a_terminal_a_bar_with_done_failed_rate_and_eta():
    out = Output(stdout=Terminal(), stderr=Terminal())
    assert out.live
    view = WarmProgressView(out)
    view.update(progress(400, failed=7, elapsed=8.0))
    view.round_done()  # a bar per round: drawn, then cleared
    drawn = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.stderr.getvalue())
    assert "warming" in drawn
    assert "400/1000" in drawn  # done of total
    assert "7 failed · 50/s" in drawn  # failed, rate
    # Elapsed, then the time remaining (rich estimates it from the updates it has seen: two
    # updates in the same instant give it none yet, hence the placeholder).
    assert re.search(r"50/s \d+:\d\d:\d\d (\d+:\d\d:\d\d|-:--:--)", drawn), drawn
    assert out.stdout.getvalue() == ""


def test_the_summary_names_every_figure_people_look_for():
    result = WarmResult(
        manifests=["warm.yaml"],
        planned=10,
        requested=8,
        attempts=9,
        stored=6,
        stored_bytes=2048,
        response_bytes=4096,
        duration_seconds=2.0,
    )
    result.skipped.update({"cached": 2})
    result.failed.update({"http_500": 1, "timeout": 1})
    for ms in (10, 20, 30, 40):
        result.latency.add(ms)
    out = Output(stdout=io.StringIO(), stderr=io.StringIO())
    render_warm(out, result)
    text = out.stdout.getvalue()
    for expected in (
        "planned",
        "requested",
        "stored",
        "skipped",
        "cached 2",
        "failed",
        "http_500 1",
        "timeout 1",
        "4 requests/s",
        "p50",
        "p95",
    ):
        assert expected in text, expected
    data = result.to_dict()
    assert data["failed"] == {"total": 2, "by_reason": {"http_500": 1, "timeout": 1}}
    assert data["skipped"] == {"total": 2, "by_reason": {"cached": 2}}
    assert data["origin_latency_ms"]["p50"] is not None and data["requests_per_second"] == 4.0
