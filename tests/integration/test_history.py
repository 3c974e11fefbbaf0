"""History recorded from real traffic, read back, listed, pruned and compacted; cachectl's own
runs recorded and shown on the dashboard."""

from __future__ import annotations

import json

import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.history import Recorder, dashboard_tick, record, show
from cachectl.ops.stats import DashboardState, Sampler, watch
from cachectl.runlog import RUNS_SERIES, record_run
from cachectl.store import Store
from cachectl.timeseries import TimeSeries
from tests.integration.test_stats import App

runner = CliRunner()
LAYOUT = Layout()


def test_record_stores_the_figures_of_live_traffic(redis_url):
    client = redis.Redis.from_url(redis_url)
    app_ = App(client)
    with Store(Settings(url=redis_url)) as store:
        sampler = Sampler(store, LAYOUT, discover_every=1)
        series = TimeSeries(store, LAYOUT, on_lookups=sampler.count_own)
        recorder = Recorder(series, compact_after=3600)

        def between_ticks(_seconds):
            app_.traffic({"products": (20, 5, 4.0)})

        progress = record(sampler, recorder, 0.01, ticks=3, sleep=between_ticks)
        assert progress.ticks == 3 and progress.failed_ticks == 0
        hit_ratio = show(series, "cache.hit_ratio", 3600, "raw")
        # Two intervals with traffic: 5 misses then 20 hits, and then 20 hits again.
        assert [p.value for p in hit_ratio.range.points] == [0.75, 1.0]
        # The endpoint is found at the second tick; its first rate comes at the third.
        per_endpoint = show(series, "cache.requests_per_s:products", 3600, "1m")
        assert per_endpoint.count == 1 and per_endpoint.last == per_endpoint.max
        memory = show(series, "redis.used_memory_bytes", 3600, "raw")
        assert memory.count == 3 and memory.min > 0
    client.close()


def test_record_off_a_terminal_prints_a_json_object_per_tick(redis_url):
    result = runner.invoke(app, ["--url", redis_url, "history", "record", "--every", "0.05s",
                                 "--ticks", "2", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["tick"] for line in lines] == [1, 2]
    assert lines[-1]["points"] > 0 and lines[-1]["error"] is None


def test_show_list_prune_and_compact_commands(redis_url):
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        now = series.now_ms()
        series.add_many([("redis.ops_per_s", float(i), now - (100 - i) * 60_000, None)
                         for i in range(100)])
    shown = runner.invoke(app, ["--url", redis_url, "history", "show", "redis.ops_per_s",
                                "--since", "3h", "--resolution", "5m", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)["data"]
    assert data["resolution"] == "5m" and data["count"] == 100
    assert data["min"] == 0 and data["max"] == 99
    people = runner.invoke(app, ["--url", redis_url, "history", "show", "redis.ops_per_s",
                                 "--since", "3h"])
    assert people.exit_code == 0 and "█" in people.stdout and "avg" in people.stdout

    listed = json.loads(runner.invoke(app, ["--url", redis_url, "history", "list", "--json"]).stdout)
    (entry,) = listed["data"]["series"]
    assert entry["name"] == "redis.ops_per_s" and entry["points"] == 100

    compacted = runner.invoke(app, ["--url", redis_url, "history", "compact", "--compact-after",
                                    "30m", "--json"])
    assert compacted.exit_code == 0, compacted.output
    # Whole hours older than 30 minutes: at least the points 90 to 100 minutes old.
    assert json.loads(compacted.stdout)["data"]["points_compacted"] >= 10
    again = json.loads(runner.invoke(app, ["--url", redis_url, "history", "show",
                                           "redis.ops_per_s", "--since", "3h", "-r", "raw",
                                           "--json"]).stdout)["data"]
    assert [p["value"] for p in again["points"]] == list(range(100))

    pruned = runner.invoke(app, ["--url", redis_url, "history", "prune", "--retention", "raw=1h",
                                 "--json"])
    assert pruned.exit_code == 0, pruned.output
    result = json.loads(pruned.stdout)["data"]
    # 100 points a minute apart, the newest a minute old when written: 41 are an hour old.
    assert result["raw_points_removed"] + result["compacted_points_removed"] == 41


def test_history_usage_errors(redis_url):
    for args in (["show", "x", "--since", "yesterday"], ["show", "x", "-r", "2m"],
                 ["prune", "--retention", "10m=1d"], ["prune", "--retention", "raw"],
                 ["record", "--every", "0"]):
        result = runner.invoke(app, ["--url", redis_url, "history", *args])
        assert result.exit_code == 2, (args, result.output)
    missing = runner.invoke(app, ["--url", redis_url, "history", "show", "nothing.here"])
    assert missing.exit_code == 5


def test_runs_are_recorded_and_listed_on_the_dashboard(redis_url):
    with Store(Settings(url=redis_url)) as store:
        assert record_run(store, LAYOUT, "invalidate",
                          {"deleted": 1200, "tag": "user:1", "keys": ["a", "b"], "dry_run": False},
                          0.75)
        series = TimeSeries(store, LAYOUT)
        (point,) = series.read(RUNS_SERIES, "raw", 0, series.now_ms() + 1).points
        assert point.value == 0.75
        assert point.tag_dict == {"job": "invalidate", "deleted": 1200, "tag": "user:1",
                                  "dry_run": False}
        sampler = Sampler(store, LAYOUT)
        state = DashboardState(started_at=0, interval_seconds=0.01)
        for tick in watch(sampler, 0.01, max_ticks=1):
            dashboard_tick(state, tick, series)
    assert [(r.job, r.summary["deleted"]) for r in state.runs] == [("invalidate", 1200)]


def test_record_run_never_fails_the_job():
    store = Store(Settings(url="redis://127.0.0.1:1/0", retries=0, connect_timeout=0.5))
    assert record_run(store, LAYOUT, "warm", {"warmed": 3}, 1.0) is False


def test_watch_with_record_stores_history_and_shows_it(redis_url):
    client = redis.Redis.from_url(redis_url)
    App(client).traffic({"products": (10, 2, 1.0)})
    client.close()
    result = runner.invoke(app, ["--url", redis_url, "stats", "--watch", "--record",
                                 "--interval", "0.05", "--ticks", "3", "--json"])
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in result.stdout.splitlines()]
    assert ticks[-1]["recorded_points"] > ticks[0]["recorded_points"] > 0
