"""The history's aggregate script after the server forgot it (SCRIPT FLUSH, a restart): loaded
again and the write completed, single server, pipelines and cluster alike; a recording loop
that keeps going through it counts no failed tick."""

from __future__ import annotations

import redis

from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.history import Recorder, record
from cachectl.ops.stats import Sampler
from cachectl.store import Store
from cachectl.timeseries import TimeSeries

LAYOUT = Layout()


def _bucket_counts(series: TimeSeries, name: str) -> list[int]:
    now = series.now_ms()
    return [a.count for a in series.aggregates(name, "1d", now - 60_000, now).aggregates]


def test_a_write_after_script_flush_loads_the_script_again(redis_url):
    with Store(Settings(url=redis_url)) as store, redis.Redis.from_url(redis_url) as admin:
        series = TimeSeries(store, LAYOUT)
        series.add("x", 1.0)
        admin.script_flush()
        series.add_many([("x", 2.0, None, None), ("y", 3.0, None, None)])
        assert _bucket_counts(series, "x") == [2]
        assert _bucket_counts(series, "y") == [1]


def test_a_write_after_a_restart_loads_the_script_again(make_redis):
    server = make_redis()
    with Store(Settings(url=server.url)) as store:
        series = TimeSeries(store, LAYOUT)
        series.add("x", 1.0)
        server.restart()  # a real restart: no persistence, so the data and scripts are gone
        series.add("x", 2.0)
        assert _bucket_counts(series, "x") == [1]
        assert len(series.points("x", 0, series.now_ms()).points) == 1


def test_a_cluster_write_after_script_flush_on_every_node_loads_it_again(
    redis_cluster, cluster_url
):
    with Store(Settings(url=cluster_url)) as store:
        series = TimeSeries(store, LAYOUT)
        names = [f"series-{i}" for i in range(12)]  # their buckets spread over the three nodes
        series.add_many([(n, 1.0, None, None) for n in names])
        for node in redis_cluster.nodes:
            with node.client() as client:
                client.script_flush()
        series.add_many([(n, 2.0, None, None) for n in names])
        assert [_bucket_counts(series, n) for n in names] == [[2]] * len(names)


def test_recording_through_script_flushes_counts_no_failed_tick(redis_url):
    with Store(Settings(url=redis_url)) as store, redis.Redis.from_url(redis_url) as admin:
        sampler = Sampler(store, LAYOUT, discover_every=1)
        series = TimeSeries(store, LAYOUT, on_lookups=sampler.count_own)
        recorder = Recorder(series, compact_after=3600)
        progress = record(sampler, recorder, 0.01, ticks=3, sleep=lambda _: admin.script_flush())
        assert progress.failed_ticks == 0, progress.last_error
        assert _bucket_counts(series, "redis.used_memory_bytes") == [3]


def test_recording_through_a_restart_counts_no_failed_tick(make_redis):
    server = make_redis()
    with Store(Settings(url=server.url)) as store:
        sampler = Sampler(store, LAYOUT, discover_every=1)
        series = TimeSeries(store, LAYOUT, on_lookups=sampler.count_own)
        recorder = Recorder(series, compact_after=3600)
        progress = record(sampler, recorder, 0.01, ticks=2, sleep=lambda _: server.restart())
        assert progress.failed_ticks == 0, progress.last_error
        assert _bucket_counts(series, "redis.used_memory_bytes") == [1]
