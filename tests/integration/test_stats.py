"""`cachectl stats` and its sampler against real servers, with traffic the tests make the way
the applications do: entries, HINCRBY counters and the response-time log of docs/keyspace.md."""

from __future__ import annotations

import json
import random
import time

import pytest
import redis

from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.stats import Sampler, compute_report, take_stats
from cachectl.store import Store

LAYOUT = Layout()


class App:
    """An application caching API responses as docs/keyspace.md says (one request at a time)."""

    def __init__(self, client, layout: Layout = LAYOUT, seed: int = 7):
        self.client = client
        self.layout = layout
        self.rng = random.Random(seed)

    def request(self, endpoint: str, params: dict, response_ms: float, now_ms: int | None = None):
        key = self.layout.entry(endpoint, params)
        hit = self.client.get(key) is not None
        if not hit:
            self.client.set(key, json.dumps({"ok": True}), ex=600)
        counter_key, field = (self.layout.hits_total if hit else self.layout.misses_total)()
        ep_key, ep_field = (self.layout.hits_endpoint if hit else self.layout.misses_endpoint)(
            endpoint
        )
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(counter_key, field, 1)
        pipe.hincrby(ep_key, ep_field, 1)
        member = json.dumps(
            {
                "endpoint": endpoint,
                "cacheKey": key,
                "responseTime": response_ms,
                "hit": hit,
                "n": self.rng.random(),
            }
        )
        pipe.zadd(self.layout.response_times(), {member: now_ms or int(time.time() * 1000)})
        pipe.execute()
        return hit

    def traffic(self, plan: dict[str, tuple[int, int, float]]):
        """plan: endpoint -> (requests, distinct params, response ms)."""
        for endpoint, (requests, distinct, response_ms) in plan.items():
            for i in range(requests):
                self.request(endpoint, {"id": i % distinct}, response_ms)


def store_for(url: str) -> Store:
    return Store(Settings(url=url, retries=0))


@pytest.fixture
def single(redis_url):
    client = redis.Redis.from_url(redis_url)
    with store_for(redis_url) as store:
        yield client, store
    client.close()


def test_stats_counts_hits_misses_and_endpoints_from_real_traffic(single):
    client, store = single
    App(client).traffic({"products": (40, 10, 5.0), "users": (10, 10, 50.0)})
    report = take_stats(store, LAYOUT, sample_seconds=0)
    app = report.application
    assert app.counters_present
    assert (app.hits, app.misses) == (30, 20)
    assert app.hit_rate == pytest.approx(0.6)
    by_name = {e.endpoint: e for e in app.endpoints}
    assert (by_name["products"].hits, by_name["products"].misses) == (30, 10)
    assert (by_name["users"].hits, by_name["users"].misses) == (0, 10)
    assert [e.endpoint for e in app.endpoints] == ["products", "users"]  # by traffic
    rt = app.response_times
    assert rt.count == 50
    assert rt.p50_ms == 5.0 and rt.p99_ms == 50.0
    assert rt.slowest[0].endpoint == "users" and rt.slowest[0].response_time_ms == 50.0
    assert report.warnings == []


def test_rates_come_from_two_samples(single):
    client, store = single
    app = App(client)
    sampler = Sampler(store, LAYOUT)
    first = sampler.sample()
    app.traffic({"products": (20, 5, 1.0)})
    second = sampler.sample()
    second.taken_at = first.taken_at + 2.0  # rates over a known interval
    report = compute_report(first, second)
    assert report.application.requests_per_s == pytest.approx(10.0)
    assert report.application.interval_hit_rate == pytest.approx(15 / 20)
    # The second sample read only the log written since the first.
    assert report.application.response_times.count == 20


def test_a_request_logged_in_the_millisecond_of_a_sample_is_counted_once_by_the_next(single):
    """The log holds whole milliseconds: a request logged after a sample was taken but in the
    same millisecond is read by the next sample, and one the sample read already is not read
    again by the next."""
    client, store = single
    at = [1_800_000_000.0004]
    sampler = Sampler(store, LAYOUT, clock=lambda: at[0])
    app = App(client)

    def log(endpoint: str) -> None:
        app.request(endpoint, {"id": 1}, 5.0, now_ms=int(at[0] * 1000))

    sampler.sample()
    log("after_first")  # the first sample's millisecond, after it read the log
    at[0] += 2.0
    log("before_second")  # the second sample's millisecond, before it reads
    second = sampler.sample()
    log("after_second")  # the same millisecond again, after the second read
    at[0] += 2.0
    third = sampler.sample()
    assert sorted(rt.endpoint for rt in second.response_times) == ["after_first", "before_second"]
    assert [rt.endpoint for rt in third.response_times] == ["after_second"]


def test_server_interval_hit_rate_leaves_out_cachectls_own_reads(single):
    client, store = single
    client.set("k", "v")
    sampler = Sampler(store, LAYOUT)
    first = sampler.sample()
    for _ in range(9):
        client.get("k")
    client.get("missing")
    report = compute_report(first, sampler.sample())
    # 9 hits and 1 miss by the "application"; the sampler's own HGETALLs on missing counters
    # and its log read (all misses here) would otherwise drag the rate down to 9 in 13.
    assert report.server.interval_hit_rate == pytest.approx(0.9)


def test_a_server_without_application_counters_still_shows_server_figures(single):
    _, store = single
    report = take_stats(store, LAYOUT, sample_seconds=0)
    assert report.application.counters_present is False
    assert any("application counters are missing" in w for w in report.warnings)
    assert report.server.used_memory_bytes > 0
    assert report.server.uptime_seconds is not None
    assert len(report.server.nodes) == 1


def test_corrupt_counters_and_log_members_are_skipped_and_counted(single):
    client, store = single
    App(client).traffic({"products": (4, 2, 3.0)})
    hits_key, field = LAYOUT.hits_endpoint("broken")
    client.hset(hits_key, field, "not-a-number")
    client.set(LAYOUT.misses_endpoint("wrongtype")[0], "a string, not a hash")
    now = int(time.time() * 1000)
    client.zadd(
        LAYOUT.response_times(),
        {"{not json": now, '{"endpoint": 5}': now, '{"endpoint": "x", "responseTime": -1}': now},
    )
    report = take_stats(store, LAYOUT, sample_seconds=0)
    app = report.application
    assert app.corrupt_counters == 2
    assert app.response_times.corrupt_members == 3
    assert app.response_times.count == 4
    assert app.response_times.to_dict()["members_read"] == 7  # what the figures came from
    assert (app.hits, app.misses) == (2, 2)
    assert len(report.warnings) == 2


def test_sampler_sends_a_fixed_number_of_commands_and_scans_only_on_discovery(single):
    client, store = single
    App(client).traffic({f"endpoint{i}": (2, 1, 1.0) for i in range(5)})
    for i in range(200):
        client.set(f"other:{i}", "x")
    sampler = Sampler(store, LAYOUT, discover_every=3)
    counts = [sampler.sample().commands for _ in range(6)]
    # INFO + 2 totals + 2 per endpoint + the log read, whatever the keyspace holds.
    assert counts == [1 + 2 + 2 * 5 + 1] * 6
    assert sampler.discoveries == 2


def test_a_restarted_counter_counts_from_its_new_value(single):
    client, store = single
    app = App(client)
    app.traffic({"products": (10, 1, 1.0)})
    sampler = Sampler(store, LAYOUT)
    first = sampler.sample()
    client.delete(LAYOUT.hits_total()[0], LAYOUT.misses_total()[0])
    app.traffic({"products": (3, 1, 1.0)})  # all hits: the entry is still cached
    second = sampler.sample()
    second.taken_at = first.taken_at + 1.0
    report = compute_report(first, second)
    assert report.application.hits_per_s == pytest.approx(3.0)
    assert report.application.misses_per_s == pytest.approx(0.0)


def test_cluster_figures_are_summed_over_primaries_with_node_detail(cluster_url):
    client = redis.RedisCluster.from_url(cluster_url)
    try:
        App(client).traffic({f"ep{i}": (6, 3, 2.0) for i in range(6)})
        with store_for(cluster_url) as store:
            report = take_stats(store, LAYOUT, sample_seconds=0)
    finally:
        client.close()
    assert len(report.server.nodes) == 3
    assert report.server.used_memory_bytes == sum(n.used_memory_bytes for n in report.server.nodes)
    app = report.application
    assert (app.hits, app.misses) == (18, 18)
    assert sorted(e.endpoint for e in app.endpoints) == [f"ep{i}" for i in range(6)]
    assert app.response_times.count == 36
