"""History recorded from real traffic, read back, listed, pruned and compacted; cachectl's own
runs recorded and shown on the dashboard."""

from __future__ import annotations

import json

import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.history import Recorder, dashboard_tick, list_series, record, show
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
    result = runner.invoke(
        app,
        ["--url", redis_url, "history", "record", "--every", "0.05s", "--rounds", "2", "--json"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["tick"] for line in lines] == [1, 2]
    assert lines[-1]["points"] > 0 and lines[-1]["error"] is None


def test_show_list_prune_and_compact_commands(redis_url):
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        now = series.now_ms()
        series.add_many(
            [("redis.ops_per_s", float(i), now - (100 - i) * 60_000, None) for i in range(100)]
        )
    shown = runner.invoke(
        app,
        [
            "--url",
            redis_url,
            "history",
            "show",
            "redis.ops_per_s",
            "--since",
            "3h",
            "--resolution",
            "5m",
            "--json",
        ],
    )
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)["data"]
    assert data["resolution"] == "5m" and data["count"] == 100
    assert data["min"] == 0 and data["max"] == 99
    people = runner.invoke(
        app, ["--url", redis_url, "history", "show", "redis.ops_per_s", "--since", "3h"]
    )
    assert people.exit_code == 0 and "█" in people.stdout and "avg" in people.stdout

    listed = json.loads(
        runner.invoke(app, ["--url", redis_url, "history", "list", "--json"]).stdout
    )
    (entry,) = listed["data"]["series"]
    assert entry["name"] == "redis.ops_per_s" and entry["points"] == 100

    compacted = runner.invoke(
        app, ["--url", redis_url, "history", "compact", "--compact-after", "30m", "--json"]
    )
    assert compacted.exit_code == 0, compacted.output
    # Whole hours older than 30 minutes: at least the points 90 to 100 minutes old.
    assert json.loads(compacted.stdout)["data"]["points_compacted"] >= 10
    again = json.loads(
        runner.invoke(
            app,
            [
                "--url",
                redis_url,
                "history",
                "show",
                "redis.ops_per_s",
                "--since",
                "3h",
                "-r",
                "raw",
                "--json",
            ],
        ).stdout
    )["data"]
    assert [p["value"] for p in again["points"]] == list(range(100))

    pruned = runner.invoke(
        app, ["--url", redis_url, "history", "prune", "--retention", "raw=1h", "--json"]
    )
    assert pruned.exit_code == 0, pruned.output
    result = json.loads(pruned.stdout)["data"]
    # 100 points a minute apart, the newest a minute old when written: 41 are an hour old.
    assert result["raw_points_removed"] + result["compacted_points_removed"] == 41


def test_history_usage_errors(redis_url):
    for args in (
        ["show", "x", "--since", "yesterday"],
        ["show", "x", "-r", "2m"],
        ["prune", "--retention", "10m=1d"],
        ["prune", "--retention", "raw"],
        ["record", "--every", "0"],
    ):
        result = runner.invoke(app, ["--url", redis_url, "history", *args])
        assert result.exit_code == 2, (args, result.output)
    missing = runner.invoke(app, ["--url", redis_url, "history", "show", "nothing.here"])
    assert missing.exit_code == 5


def test_runs_are_recorded_and_listed_on_the_dashboard(redis_url):
    with Store(Settings(url=redis_url)) as store:
        assert record_run(
            store,
            LAYOUT,
            "invalidate",
            {"deleted": 1200, "tag": "user:1", "keys": ["a", "b"], "dry_run": False},
            0.75,
        )
        series = TimeSeries(store, LAYOUT)
        (point,) = series.read(RUNS_SERIES, "raw", 0, series.now_ms() + 1).points
        assert point.value == 0.75
        assert point.tag_dict == {
            "job": "invalidate",
            "deleted": 1200,
            "tag": "user:1",
            "dry_run": False,
        }
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
    result = runner.invoke(
        app,
        [
            "--url",
            redis_url,
            "stats",
            "--record",
            "--every",
            "0.05",
            "--rounds",
            "3",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    ticks = [json.loads(line) for line in result.stdout.splitlines()]
    assert ticks[-1]["recorded_points"] > ticks[0]["recorded_points"] > 0


# -- damaged stored data never stops prune, record or the dashboard ---------------------------

HOUR = 3_600_000


def _damaged_chunk_across_the_retention(client, name: str = "x") -> tuple[str, str]:
    """A chunk of `name` whose header reads but whose body does not, with its points on both
    sides of the default raw retention's cutoff (24 h ago); returns (meta key, field)."""
    import time

    cutoff = int(time.time() * 1000) - 24 * HOUR
    first, last = cutoff - 20 * 60_000, cutoff + 20 * 60_000
    field = f"chunk:{first - first % HOUR}"
    client.hset(f"meta:{name}", field, f"c1:40:{first}:{last}:AAAA")
    return f"meta:{name}", field


def test_prune_skips_and_counts_a_chunk_that_does_not_read_and_keeps_it(redis_url):
    client = redis.Redis.from_url(redis_url)
    with Store(Settings(url=redis_url)) as store:
        TimeSeries(store, LAYOUT).add("x", 1.0)
    meta, field = _damaged_chunk_across_the_retention(client)
    # Damaged too, but wholly past the retention by its header: it goes like any old chunk.
    old = int(client.hget(meta, field).split(b":")[2]) - 3 * HOUR
    client.hset(meta, f"chunk:{old - old % HOUR}", f"c1:5:{old}:{old + 60_000}:AAAA")

    result = runner.invoke(app, ["--url", redis_url, "history", "prune", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["corrupt_chunks"] == 1 and data["chunks_removed"] == 1
    # Which of its points are still wanted cannot be told: it is left whole, nothing lost.
    assert client.hget(meta, field).endswith(b":AAAA")
    people = runner.invoke(app, ["--url", redis_url, "history", "prune"])
    assert people.exit_code == 0, people.output
    assert "1 compacted chunk(s) could not be read and were left as they are" in people.stderr
    client.close()


def test_record_and_watch_record_go_on_past_a_damaged_chunk_and_say_so_once(redis_url):
    client = redis.Redis.from_url(redis_url)
    _damaged_chunk_across_the_retention(client)
    client.close()
    recorded = runner.invoke(
        app,
        ["--url", redis_url, "history", "record", "--every", "0.05s", "--rounds", "2", "--json"],
    )
    assert recorded.exit_code == 0, recorded.output
    lines = [json.loads(line) for line in recorded.stdout.splitlines()]
    assert [len(line["warnings"]) for line in lines] == [1, 0]
    assert "could not be read" in lines[0]["warnings"][0]
    assert lines[-1]["points"] > 0 and lines[-1]["error"] is None

    watched = runner.invoke(
        app,
        ["--url", redis_url, "stats", "--record", "--every", "0.05", "--rounds", "2"],
    )
    assert watched.exit_code == 0, watched.output
    assert watched.stderr.count("could not be read") == 1
    assert len(watched.stdout.splitlines()) == 2


def test_upkeep_that_fails_on_stored_data_is_a_warning_told_once(redis_url, monkeypatch):
    with Store(Settings(url=redis_url)) as store:
        sampler = Sampler(store, LAYOUT)
        series = TimeSeries(store, LAYOUT, on_lookups=sampler.count_own)

        def odd_data(*args, **kwargs):
            raise ValueError("a value no reader expected")

        monkeypatch.setattr(series, "compact", odd_data)
        recorder = Recorder(series, compact_after=3600, maintain_every=0)
        told = []
        progress = record(
            sampler,
            recorder,
            0.01,
            ticks=3,
            sleep=lambda _s: None,
            on_tick=lambda _t, p: told.extend(p.new_warnings),
        )
        assert progress.failed_ticks == 0 and progress.points > 0
        assert recorder.maintenances == 3
        assert len(told) == 1 and "ValueError: a value no reader expected" in told[0]

        state = DashboardState(started_at=0, interval_seconds=0.01, recording=True)
        recorder = Recorder(series, compact_after=3600, maintain_every=0)
        monkeypatch.setattr("cachectl.ops.history.recent_runs", odd_data)
        fresh = []
        for tick in watch(sampler, 0.01, max_ticks=2, sleep=lambda _s: None):
            dashboard_tick(state, tick, series, recorder)
            fresh.append(list(state.fresh_warnings))
    assert state.error is None and state.recorded_points > 0
    assert len(state.warnings) == 2  # the upkeep's and the recent runs', each once
    assert [len(f) for f in fresh] == [2, 0]


def test_compaction_sets_a_damaged_chunk_aside_and_counts_it(redis_url):
    client = redis.Redis.from_url(redis_url)
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        now = series.now_ms()
        stamp = now - 3 * HOUR
        window = stamp - stamp % HOUR
        series.add("y", 2.0, timestamp_ms=stamp)
        client.hset("meta:y", f"chunk:{window}", f"c1:3:{window}:{window + 1}:AAAA")
        result = series.compact(3600)
    assert result.corrupt_chunks == 1 and result.points_compacted == 1
    assert client.hget("meta:y", f"chunk:{window}:unreadable").endswith(b":AAAA")
    client.close()


# -- history list counts the aggregate buckets -------------------------------------------------


def _bucket_keys(client, name):
    return sorted(set(client.scan_iter(match=f"agg:{name}:*", count=1000)))


def test_list_counts_the_aggregate_buckets_and_their_memory(redis_url):
    client = redis.Redis.from_url(redis_url)
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        now = series.now_ms()
        series.add_many([("a", float(i), now - i * 60_000, None) for i in range(30)])
        series.add("b", 1.0)
    keys = _bucket_keys(client, "a")
    exact = sum(client.memory_usage(k, samples=0) for k in keys)
    assert len(keys) >= 30 + 6 + 1 + 1

    listed = runner.invoke(app, ["--url", redis_url, "history", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.stdout)["data"]
    a = next(s for s in data["series"] if s["name"] == "a")
    assert a["aggregate_buckets"] == len(keys)
    assert a["aggregate_memory_bytes"] == exact and a["aggregate_memory_estimated"] is False
    assert a["memory_bytes"] == a["raw_memory_bytes"] + a["meta_memory_bytes"] + exact
    assert data["total_aggregate_buckets"] == len(keys) + 4
    assert data["total_memory_bytes"] == sum(s["memory_bytes"] for s in data["series"])

    people = runner.invoke(app, ["--url", redis_url, "history", "list"])
    assert people.exit_code == 0, people.output
    assert "not counted" not in people.stdout
    assert f"{len(keys) + 4} aggregate buckets" in people.stdout

    # Many buckets: a sample of them is measured and scaled up, and it says so.
    with Store(Settings(url=redis_url)) as store:
        sampled = list_series(TimeSeries(store, LAYOUT), aggregate_sample=5)
    a_sampled = next(s for s in sampled.series if s.name == "a")
    assert a_sampled.aggregate_buckets == len(keys) and a_sampled.aggregate_memory_estimated
    assert exact * 0.7 < a_sampled.aggregate_memory_bytes < exact * 1.3
    assert sampled.to_dict()["aggregate_memory_estimated"] is True

    # Buckets whose series has no other key left still take memory, and are listed.
    client.delete("metric:a", "meta:a")
    with Store(Settings(url=redis_url)) as store:
        orphans = list_series(TimeSeries(store, LAYOUT))
    a_left = next(s for s in orphans.series if s.name == "a")
    assert a_left.points == 0 and a_left.aggregate_buckets == len(keys)
    client.close()


# -- SCAN walks: one per maintenance, none per tick -------------------------------------------


def _scan_calls(client) -> int:
    return client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)


def test_recording_walks_the_keyspace_once_per_upkeep_and_never_per_tick(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.mset({f"filler:{i}": "x" for i in range(200)})  # one SCAN call a walk at this size
    with Store(Settings(url=redis_url)) as store:
        sampler = Sampler(store, LAYOUT, discover_every=1000)
        series = TimeSeries(store, LAYOUT, on_lookups=sampler.count_own)
        recorder = Recorder(series, compact_after=3600)
        before = _scan_calls(client)
        record(sampler, recorder, 0.01, ticks=4, sleep=lambda _s: None)
        after = _scan_calls(client)
    # The first tick's endpoint discovery, and the upkeep's one walk for the series' names
    # (metric: and meta: share a head); no walk of the agg: buckets, which expire by
    # themselves; nothing on the three ticks after.
    assert recorder.maintenances == 1
    assert after - before == 2
    client.close()


def test_history_prune_still_removes_aged_buckets_left_without_a_ttl(redis_url):
    client = redis.Redis.from_url(redis_url)
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        series.add("w", 1.0)
        old = series.now_ms() - 30 * 86_400_000
    bucket = f"agg:w:1m:{old - old % 60_000}"  # another writer's, with no TTL
    client.hset(
        bucket,
        mapping={
            "data": '{"count":1,"sum":1,"min":1,"max":1}',
            "timestamp": str(old - old % 60_000),
        },
    )
    result = runner.invoke(app, ["--url", redis_url, "history", "prune", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"]["aggregates_removed"] == 1
    assert not client.exists(bucket)
    client.close()


# -- a series that does not exist is exit 5 in every reader -----------------------------------


def test_analyses_of_a_series_that_does_not_exist_exit_5_naming_it(redis_url):
    with Store(Settings(url=redis_url)) as store:
        TimeSeries(store, LAYOUT).add("cache.hit_ratio", 0.5)
    for args in (
        ["outliers", "nosuch"],
        ["correlate", "nosuch", "cache.hit_ratio"],
        ["correlate", "cache.hit_ratio", "nosuch"],
        ["anomalies", "nosuch"],
        ["show", "nosuch"],
    ):
        result = runner.invoke(app, ["--url", redis_url, "history", *args])
        assert result.exit_code == 5, (args, result.output)
        (line,) = result.stderr.splitlines()
        assert "no series named 'nosuch'" in line
    guessed = runner.invoke(app, ["--url", redis_url, "history", "outliers", "cache.hit_rato"])
    assert guessed.exit_code == 5
    assert "did you mean 'cache.hit_ratio'?" in guessed.stderr
    # The default series of anomalies may not be recorded yet: that is "no data", not exit 5.
    defaults = runner.invoke(app, ["--url", redis_url, "history", "anomalies"])
    assert defaults.exit_code == 0, defaults.output
