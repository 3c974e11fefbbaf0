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
        sample(
            100 + i,
            [node(evicted_keys=3 * i, total_commands_processed=500 * i)],
            hits=sum(h for h, _ in e.values()),
            misses=sum(m for _, m in e.values()),
            endpoints=e,
            times=[5.0, 7.0, 250.0],
        )
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
    state.update(
        Tick(None, None, None, RedisUnreachable("cannot connect to Redis at redis://h:1/0"))
    )
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
    assert "invalidate: 1,200 deleted, 250 ms" in text
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


def test_response_times_cover_a_window_kept_across_quiet_ticks():
    state = DashboardState(started_at=100, interval_seconds=1, log_window_seconds=60)
    busy = sample(100, [node()], hits=0, misses=0, endpoints={"e": (0, 0)}, times=[5.0, 7.0, 250.0])
    quiet = [sample(100 + i, [node()], hits=0, misses=0, endpoints={"e": (0, 0)}) for i in (1, 2)]
    feed(state, busy, *quiet)
    # Two quiet ticks later the requests of the first are still in the last minute.
    assert state.report.application.response_times.count == 0
    assert state.response_window.count == 3 and state.response_window.max_ms == 250.0
    assert state.endpoint_p95_ms == {"e": state.response_window.p95_ms}
    text = screen(state)
    assert "3 logged in the last 1m 0s" in text
    assert "Slowest requests in the last 1m 0s" in text and "250.0 ms" in text
    assert state.to_dict()["response_window"]["count"] == 3
    # A minute on, they have left the window.
    state.update(
        Tick(compute_report(quiet[-1], later := sample(161, [node()], 0, 0)), quiet[-1], later)
    )
    assert state.response_window.count == 0 and state.response_window.p95_ms is None


def test_the_window_keeps_at_most_its_limit_of_members():
    from cachectl.ops.stats import ResponseWindow

    window = ResponseWindow(3600, limit=4)
    window.add(sample(10, [node()], times=[1.0, 2.0, 3.0]))
    window.add(sample(11, [node()], times=[4.0, 5.0]))
    assert [rt.response_time_ms for rt in window.members] == [2.0, 3.0, 4.0, 5.0]
    assert [rt.response_time_ms for rt in window.stats().slowest] == [5.0, 4.0, 3.0, 2.0]


def test_warnings_about_stored_data_are_shown_and_fresh_only_once():
    state = DashboardState(started_at=100, interval_seconds=1)
    feed(state, *traffic_samples()[:1])
    state.warn("recent runs: stored data could not be read (ValueError: x); skipped")
    state.warn("recent runs: stored data could not be read (ValueError: x); skipped")
    assert state.fresh_warnings == state.warnings and len(state.warnings) == 1
    assert "warning: recent runs: stored data could not be read" in screen(state)
    assert state.to_dict()["warnings"] == state.warnings
    feed(state, *traffic_samples()[1:2])
    assert state.fresh_warnings == [] and state.to_dict()["warnings"] == []


def test_one_client_is_one_client():
    state = DashboardState(started_at=100, interval_seconds=1)
    first, second = sample(100, [node()]), sample(101, [node()])
    for s in (first, second):
        s.nodes[0].gauges["connected_clients"] = 1
    feed(state, first, second)
    text = screen(state)
    assert "1 client," in text and "1 clients" not in text


def test_recent_runs_say_the_selection_and_the_outcome_in_words():
    state = DashboardState(started_at=100, interval_seconds=1)
    state.runs = [
        RecentRun(101_000, "invalidate", 0.012, {"deleted": 5, "selection": "tag products"}),
        RecentRun(
            101_000, "warm", 4.0, {"stored": 1200, "failed": 3, "selection": "manifest.yaml"}
        ),
        RecentRun(101_000, "prune", 0.5, {"dry_run": False, "removed_members": 7}),
    ]
    feed(state, *traffic_samples())
    text = screen(state)
    assert "invalidate tag products: 5 deleted, 12 ms" in text
    assert "warm manifest.yaml: 1,200 stored, 3 failed, 4.0 s" in text
    assert "prune: 7 removed members, 500 ms" in text
    assert "=" not in text and "RecentRun" not in text


def test_memory_over_a_tiny_maxmemory_is_not_a_huge_percentage():
    from cachectl.render.stats import memory_text

    state = DashboardState(started_at=100, interval_seconds=1)
    first, second = sample(100, [node()]), sample(101, [node()])
    for s in (first, second):
        s.nodes[0].gauges.update(used_memory=1_087_310, maxmemory=200)
    feed(state, first, second)
    text = screen(state)
    assert "(over maxmemory, 5,437x the limit)" in text
    assert "543655" not in text and "%)" not in memory_text(state.report)
