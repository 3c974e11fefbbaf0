"""`stats --every` on real servers: a line or JSON object per tick off a terminal, a lost
connection reported and ridden out, a fixed number of commands per tick."""

from __future__ import annotations

import json

import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.stats import DashboardState, Sampler, watch
from cachectl.store import Store
from tests.integration.test_stats import App

runner = CliRunner()


def test_watch_off_a_terminal_prints_one_json_object_per_tick(redis_url):
    client = redis.Redis.from_url(redis_url)
    App(client).traffic({"products": (20, 4, 3.0)})
    client.close()
    result = runner.invoke(
        app,
        ["--url", redis_url, "stats", "--every", "0.05", "--rounds", "3", "--json"],
    )
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t["tick"] for t in ticks] == [1, 2, 3]
    assert ticks[0]["report"]["application"]["hits"] == 16
    assert ticks[-1]["report"]["interval_seconds"] > 0
    assert all(t["error"] is None for t in ticks)


def test_watch_off_a_terminal_prints_plain_lines(redis_url):
    result = runner.invoke(app, ["--url", redis_url, "stats", "--every", "0.05", "--rounds", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all("app_counters=missing" in line and "memory=" in line for line in lines)
    assert "\x1b[" not in result.stdout


def test_a_lost_connection_is_shown_and_retried_until_the_server_is_back(make_redis):
    server = make_redis()
    store = Store(Settings(url=server.url, retries=0, connect_timeout=1, timeout=1))
    sampler = Sampler(store, Layout())
    state = DashboardState(started_at=0, interval_seconds=0.01)
    events, reports = [], []

    def sleep(_seconds):
        # Between ticks: the server goes away after the first, comes back after the third.
        if len(events) == 1:
            server.kill()
        elif len(events) == 3:
            server.restart()

    for tick in watch(sampler, 0.01, sleep=sleep, max_ticks=5):
        state.update(tick)
        events.append("error" if tick.error else "ok")
        reports.append(tick.report)
    store.close()
    assert events == ["ok", "error", "error", "ok", "ok"]
    assert state.error is None and state.report is not None
    # Its counters began again: the tick after the gap counts that as a reset.
    assert reports[3].server.nodes[0].restarted


def test_commands_per_tick_do_not_grow_with_the_keyspace(redis_url):
    client = redis.Redis.from_url(redis_url)
    App(client).traffic({"a": (3, 1, 1.0), "b": (3, 1, 1.0)})
    with Store(Settings(url=redis_url)) as store:
        sampler = Sampler(store, Layout(), discover_every=1000)
        before = client.info("commandstats")
        small = [sampler.sample().commands for _ in range(3)]
        client.mset({f"filler:{i}": "x" for i in range(5000)})
        large = [sampler.sample().commands for _ in range(3)]
        after = client.info("commandstats")
    client.close()
    assert small == large == [1 + 2 + 4 + 1] * 3
    # One discovery SCAN pass only, at the first tick.
    scans = after.get("cmdstat_scan", {}).get("calls", 0) - before.get("cmdstat_scan", {}).get(
        "calls", 0
    )
    assert scans == 1


def test_the_dashboard_scans_only_when_it_discovers(redis_url):
    from cachectl.ops.history import dashboard_tick
    from cachectl.timeseries import TimeSeries

    client = redis.Redis.from_url(redis_url)
    App(client).traffic({"a": (3, 1, 1.0)})
    with Store(Settings(url=redis_url)) as store:
        sampler = Sampler(store, Layout(), discover_every=2)
        series = TimeSeries(store, Layout(), on_lookups=sampler.count_own)
        state = DashboardState(started_at=0, interval_seconds=0.01)
        before = client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
        for tick in watch(sampler, 0.01, max_ticks=5, sleep=lambda _s: None):
            dashboard_tick(state, tick, series)
        after = client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
    client.close()
    # Discovery at ticks 1, 3 and 5 (one SCAN call each at this size); nothing else scans: not
    # the recent runs, not the stored history's sparklines.
    assert sampler.discoveries == 3 and after - before == 3
