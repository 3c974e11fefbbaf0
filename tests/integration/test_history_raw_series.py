"""Series written by other applications in the time-series layout of docs/keyspace.md: raw
points (and the meta hash) only, no aggregate buckets. The readers compute the buckets from
the raw points where no stored bucket covers them."""

from __future__ import annotations

import json
import math
import time

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.history import correlate, show
from cachectl.store import Store
from cachectl.timeseries import TimeSeries
from tests.integration.test_library_interop import node_app

runner = CliRunner()
LAYOUT = Layout()
MINUTE = 60_000


def write_raw(client, name: str, points: list[tuple[int, float]], tags: str = "{}") -> None:
    """Points as another application writes them: the member and the meta hash, no `agg:`."""
    pipe = client.pipeline(transaction=False)
    for stamp, value in points:
        member = json.dumps(
            {"value": value, "timestamp": stamp, "tags": tags}, separators=(",", ":")
        )
        pipe.zadd(f"metric:{name}", {member: stamp})
    last = max(stamp for stamp, _ in points)
    pipe.hset(f"meta:{name}", mapping={"lastUpdate": str(last), "updatedAt": "x"})
    pipe.execute()


def now_ms() -> int:
    return int(time.time() * 1000)


def cli(url: str, *args: str) -> dict:
    result = runner.invoke(app, ["--url", url, "history", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["data"]


@pytest.fixture
def client(redis_url):
    with redis.Redis.from_url(redis_url) as c:
        yield c


@pytest.fixture
def two_raw_series(client):
    """Two hours of two related series, a point every 30 s, written without buckets."""
    start = now_ms() - 2 * 3_600_000
    load = [(start + i * 30_000, 100 + 40 * math.sin(i / 20)) for i in range(240)]
    write_raw(client, "app.load", load)
    write_raw(client, "app.latency", [(t, 5 + v / 10) for t, v in load])
    return load


def test_show_at_5m_computes_the_buckets_of_a_series_with_raw_points_only(
    redis_url, client, two_raw_series
):
    assert not client.keys("agg:*")
    data = cli(redis_url, "show", "app.load", "--since", "3h", "-r", "5m")
    buckets = data["aggregates"]
    assert sum(b["count"] for b in buckets) == data["count"] == len(two_raw_series)
    assert all(b["bucket_start_ms"] % 300_000 == 0 for b in buckets)
    assert data["computed_buckets"] == len(buckets) >= 24
    first = buckets[0]
    inside = [
        v
        for t, v in two_raw_series
        if first["bucket_start_ms"] <= t < first["bucket_start_ms"] + 300_000
    ]
    assert first["count"] == len(inside)
    assert first["min"] == pytest.approx(min(inside)) and first["max"] == pytest.approx(max(inside))
    assert first["first"] == pytest.approx(inside[0]) and first["last"] == pytest.approx(inside[-1])
    assert first["avg"] == pytest.approx(sum(inside) / len(inside))
    assert data["max"] == pytest.approx(max(v for _, v in two_raw_series))
    assert not client.keys("agg:*")  # a reader writes nothing
    people = runner.invoke(
        app, ["--url", redis_url, "history", "show", "app.load", "--since", "3h", "-r", "5m"]
    )
    assert people.exit_code == 0 and "no data" not in people.stdout
    assert "from raw points" in people.stdout


def test_correlate_at_its_default_resolution_finds_the_pairs_of_raw_series(
    redis_url, two_raw_series
):
    data = cli(redis_url, "correlate", "app.load", "app.latency", "--since", "3h")
    assert data["resolution"] == "1m"
    assert data["pairs"] >= 119 and data["r"] == pytest.approx(1.0)


def test_stored_buckets_are_taken_as_they_are_and_only_the_missing_ones_computed(redis_url):
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        now = series.now_ms()
        hour_ago = now - now % 3_600_000 - 3_600_000
        # cachectl wrote the first half hour (with its buckets), another writer the second.
        series.add_many([("mixed", 1.0, hour_ago + i * MINUTE, None) for i in range(30)])
        with redis.Redis.from_url(redis_url) as client:
            write_raw(client, "mixed", [(hour_ago + i * MINUTE, 3.0) for i in range(30, 60)])
        found = series.aggregates("mixed", "5m", hour_ago, hour_ago + 3_600_000 - 1)
        assert [a.count for a in found.aggregates] == [5] * 12
        assert [a.avg for a in found.aggregates] == [1.0] * 6 + [3.0] * 6
        assert found.computed == 6
        # A bucket that is stored is never recomputed, even when raw points say otherwise.
        with redis.Redis.from_url(redis_url) as client:
            write_raw(client, "mixed", [(hour_ago + 30_000, 100.0)])
        again = series.aggregates("mixed", "5m", hour_ago, hour_ago + 3_600_000 - 1)
        assert again.aggregates[0].count == 5 and again.aggregates[0].max == 1.0


def test_compacted_raw_points_are_bucketed_too_and_duplicates_count_once(redis_url, client):
    start = now_ms() - 3 * 3_600_000
    start -= start % 3_600_000
    write_raw(client, "compacted", [(start + i * MINUTE, float(i)) for i in range(120)])
    with Store(Settings(url=redis_url)) as store:
        series = TimeSeries(store, LAYOUT)
        result = series.compact(older_than_seconds=60, names=["compacted"])
        assert result.points_compacted == 120 and client.zcard("metric:compacted") == 0
        # A compaction that died after writing its chunk leaves the raw members as well.
        write_raw(client, "compacted", [(start + i * MINUTE, float(i)) for i in range(10)])
        found = series.aggregates("compacted", "1h", start, start + 2 * 3_600_000 - 1)
        assert [(a.count, a.min, a.max) for a in found.aggregates] == [
            (60, 0.0, 59.0),
            (60, 60.0, 119.0),
        ]
        shown = show(series, "compacted", 4 * 3600, "1h")
        assert shown.count == 120
        assert correlate(series, "compacted", "compacted", 4 * 3600).pairs == 120


def test_a_series_a_javascript_application_wrote_is_shown_in_buckets(
    js_app, redis_server, redis_url, client
):
    start = now_ms() - 30 * MINUTE
    points = [[start + i * 20_000, i % 7, {"host": "web-1"}] for i in range(60)]
    assert node_app(js_app, redis_server, "points", "js.queue_depth", json.dumps(points)) == {
        "written": 60
    }
    assert not client.keys("agg:*")
    data = cli(redis_url, "show", "js.queue_depth", "--since", "1h", "-r", "5m")
    assert data["count"] == 60 and data["max"] == 6 and data["min"] == 0


def test_the_raw_points_are_read_a_page_at_a_time_none_lost_none_twice(
    redis_url, client, monkeypatch
):
    monkeypatch.setattr("cachectl.timeseries_rollup.PAGE", 4)
    start = now_ms() - 10 * MINUTE
    start -= start % MINUTE
    # Ten points on one millisecond (more than a page), then one a second.
    same = [(start, float(i)) for i in range(10)]
    write_raw(client, "paged", same + [(start + i * 1000, 100.0 + i) for i in range(1, 50)])
    with Store(Settings(url=redis_url)) as store:
        lookups = []
        series = TimeSeries(store, LAYOUT, on_lookups=lambda h, m: lookups.append((h, m)))
        found = series.aggregates("paged", "1m", start, start + 2 * MINUTE - 1)
    assert [(a.count, a.min, a.max) for a in found.aggregates] == [(59, 0.0, 149.0)]
    assert found.aggregates[0].sum == sum(range(10)) + sum(100.0 + i for i in range(1, 50))
    assert found.aggregates[0].first == 0.0  # ten tie on time: the smallest value, every time
    assert found.aggregates[0].last == 149.0
    # Two stored-bucket lookups, HKEYS and the pages (15 of 4 members then an empty one...).
    hits, misses = lookups[-1]
    assert hits + misses >= 2 + 1 + 59 // 4
