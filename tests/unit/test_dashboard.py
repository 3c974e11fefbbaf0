"""The dashboard drawn from recorded samples onto a recording console, and read back."""

from __future__ import annotations

from rich.console import Console

from cachectl.errors import RedisUnreachable
from cachectl.ops.stats import DashboardState, Tick, compute_report
from cachectl.render.dashboard import dashboard_line, gauge, render_dashboard, sparkline
from cachectl.runlog import RecentRun
from tests.unit.test_stats_report import node, sample


def screen(state: DashboardState, width: int = 140) -> str:
    console = Console(record=True, width=width, color_system=None, force_terminal=False)
    console.print(render_dashboard(state))
    return console.export_text()


def feed(state: DashboardState, *samples):
    previous = None
    for current in samples:
        state.update(Tick(compute_report(previous, current), previous, current))
        previous = current


def traffic_samples():
    endpoints = [
        {"products": (0, 0), "users": (0, 0)},
        {"products": (90, 10), "users": (5, 5)},
        {"products": (180, 20), "users": (6, 14)},
    ]
    return [
        sample(100 + i, [node(evicted_keys=3 * i, total_commands_processed=500 * i)],
               hits=sum(h for h, _ in e.values()), misses=sum(m for _, m in e.values()),
               endpoints=e, times=[5.0, 7.0, 250.0])
        for i, e in enumerate(endpoints)
    ]


def test_dashboard_shows_interval_and_session_hit_rates_memory_and_endpoints():
    state = DashboardState(started_at=100, interval_seconds=1)
    feed(state, *traffic_samples())
    text = screen(state)
    # Last interval: 91 hits in 110 requests; since start: 186 in 220.
    assert "82.7% last interval" in text
    assert "84.5% since start" in text
    assert "1000 B of 3.9 KiB (25.0%)" in text
    assert "evictions" in text and "3.0/s" in text
    lines = text.splitlines()
    products = next(i for i, line in enumerate(lines) if line.strip().startswith("products"))
    users = next(i for i, line in enumerate(lines) if line.strip().startswith("users"))
    assert products < users  # sorted by traffic
    assert "250.0 ms" in text  # the slowest request


def test_dashboard_without_application_counters_says_so():
    state = DashboardState(started_at=0, interval_seconds=1)
    feed(state, sample(0, [node()]), sample(1, [node()]))
    text = screen(state)
    assert "missing: only the server's figures are shown" in text
    assert "memory" in text


def test_a_lost_connection_shows_and_keeps_the_last_figures():
    state = DashboardState(started_at=100, interval_seconds=1)
    feed(state, *traffic_samples())
    state.update(Tick(None, None, None, RedisUnreachable("cannot connect to Redis at redis://h:1/0")))
    text = screen(state)
    assert "connection lost: cannot connect to Redis at redis://h:1/0" in text
    assert "82.7% last interval" in text
    assert dashboard_line(state).startswith("connection lost")


def test_recent_runs_and_stored_history_are_listed():
    state = DashboardState(started_at=100, interval_seconds=1)
    state.runs = [RecentRun(101_000, "invalidate", 0.25, {"deleted": 1200, "tag": "user:1"})]
    state.stored = {"cache.hit_ratio": [0.9, 0.92, 0.5]}
    feed(state, *traffic_samples())
    text = screen(state)
    assert "invalidate" in text and "deleted=1200" in text
    assert "cache.hit_ratio" in text


def test_the_line_for_logs_carries_the_moving_figures():
    state = DashboardState(started_at=100, interval_seconds=1)
    feed(state, *traffic_samples())
    line = dashboard_line(state)
    assert "hit_rate=82.7%" in line and "session_hit_rate=84.5%" in line
    assert "\n" not in line


def test_sparkline_and_gauge():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([0.5, 0.5], low=0, high=1) == "▅▅"
    assert sparkline([]) == ""
    assert len(sparkline(list(range(100)), width=40)) == 40
    assert gauge(0.5, 10) == "█████·····"
    assert gauge(None, 4) == "····"
