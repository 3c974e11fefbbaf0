"""compute_report and the renderers on recorded samples: rates, resets, sums over nodes."""

from __future__ import annotations

import pytest

from cachectl.ops.exporter import Snapshot
from cachectl.ops.stats import NodeSample, ResponseTime, Sample, compute_report
from cachectl.render.prometheus import prometheus_text as exposition_text
from cachectl.render.stats import stats_line


def node(name="n1:1", run_id="r1", **counters):
    base = {
        "keyspace_hits": 0,
        "keyspace_misses": 0,
        "evicted_keys": 0,
        "expired_keys": 0,
        "total_commands_processed": 0,
    }
    base.update(counters)
    gauges = {
        "used_memory": 1000,
        "used_memory_peak": 2000,
        "used_memory_rss": 1500,
        "maxmemory": 4000,
        "mem_fragmentation_ratio": 1.5,
        "instantaneous_ops_per_sec": 7,
        "connected_clients": 3,
        "uptime_in_seconds": 60,
        "total_system_memory": 10_000,
    }
    return NodeSample(name, run_id, base, gauges)


def sample(t, nodes, hits=None, misses=None, endpoints=None, times=()):
    return Sample(
        taken_at=t,
        nodes=nodes,
        counters_present=hits is not None,
        hits=hits,
        misses=misses,
        endpoints=endpoints or {},
        response_times=[ResponseTime(int(t * 1000), "e", ms, True, None) for ms in times],
    )


def test_rates_are_deltas_over_the_interval():
    first = sample(100, [node(evicted_keys=10, total_commands_processed=1000)], 50, 50)
    second = sample(110, [node(evicted_keys=60, total_commands_processed=3000)], 140, 60)
    report = compute_report(first, second)
    assert report.interval_seconds == 10
    assert report.server.evicted_per_s == 5.0
    assert report.server.ops_per_s == 200.0
    assert report.application.requests_per_s == 10.0
    assert report.application.interval_hit_rate == pytest.approx(0.9)
    assert report.application.hit_rate == pytest.approx(0.7)


def test_a_restarted_node_counts_from_zero_even_when_its_counters_grew_past_the_old_ones():
    first = sample(0, [node(run_id="a", evicted_keys=5)])
    second = sample(1, [node(run_id="b", evicted_keys=8)])
    report = compute_report(first, second)
    assert report.server.evicted_per_s == 8.0
    assert report.server.nodes[0].restarted


def test_a_counter_that_went_down_is_a_reset():
    first = sample(0, [node(expired_keys=500)], hits=1000, misses=100)
    second = sample(2, [node(expired_keys=20)], hits=10, misses=10)
    report = compute_report(first, second)
    assert report.server.expired_per_s == 10.0
    assert report.application.hits_per_s == 5.0
    assert report.application.interval_hit_rate == 0.5


def test_cluster_sums_and_per_node_detail():
    nodes = [node("a:1"), node("b:2"), node("c:3")]
    report = compute_report(None, sample(0, nodes))
    assert report.server.used_memory_bytes == 3000
    assert report.server.maxmemory_bytes == 12000
    assert report.server.memory_used_ratio == 0.25
    assert report.server.fragmentation_ratio == 1.5
    assert [n.node for n in report.server.nodes] == ["a:1", "b:2", "c:3"]
    assert report.server.ops_per_s == 21  # instantaneous figure without a previous sample


def test_a_node_without_maxmemory_makes_the_deployment_unlimited():
    nodes = [node("a:1"), node("b:2")]
    nodes[1].gauges["maxmemory"] = 0
    report = compute_report(None, sample(0, nodes))
    assert report.server.maxmemory_bytes is None and report.server.memory_used_ratio is None


def test_no_rates_from_a_single_sample_or_a_clock_that_went_back():
    assert compute_report(None, sample(5, [node()], 1, 1)).application.requests_per_s is None
    assert (
        compute_report(sample(5, [node()], 1, 1), sample(5, [node()], 2, 2)).interval_seconds
        is None
    )


def test_response_time_percentiles_and_slowest():
    report = compute_report(
        None, sample(0, [node()], 1, 1, times=[float(i) for i in range(1, 101)])
    )
    rt = report.application.response_times
    assert rt.count == 100 and rt.p50_ms == pytest.approx(50.5) and rt.max_ms == 100
    assert [r.response_time_ms for r in rt.slowest] == [100, 99, 98, 97, 96]


def test_endpoints_sorted_by_traffic():
    first = sample(0, [node()], 0, 0, endpoints={"a": (0, 0), "b": (0, 0)})
    second = sample(1, [node()], 30, 0, endpoints={"a": (5, 0), "b": (25, 0)})
    report = compute_report(first, second)
    assert [e.endpoint for e in report.application.endpoints] == ["b", "a"]
    assert report.application.endpoints[0].requests_per_s == 25


def prometheus_text(report) -> str:
    """`stats --format prometheus`: the exporter's collectors over one report."""
    return exposition_text(Snapshot.of_report(report))


def test_prometheus_escapes_labels_and_declares_each_metric_once():
    s = sample(0, [node("a:1"), node("b:2")], 3, 1, endpoints={'we"ird\\name\n': (3, 1)})
    text = prometheus_text(compute_report(None, s))
    assert 'cachectl_endpoint_hits_total{endpoint="we\\"ird\\\\name\\n"} 3.0' in text
    assert text.count("# TYPE cachectl_redis_used_memory_bytes gauge") == 1
    assert 'cachectl_redis_used_memory_bytes{node="b:2"} 1000.0' in text
    assert text.endswith("\n")


def test_prometheus_keeps_each_family_in_one_group():
    """Every sample of a metric right after its HELP and TYPE, even across nodes and endpoints
    (the exposition format asks for it; promtool and OpenMetrics parsers reject the rest)."""
    s = sample(
        0,
        [node("a:1"), node("b:2"), node("c:3")],
        9,
        3,
        endpoints={"products": (5, 1), "users": (4, 2)},
    )
    lines = prometheus_text(compute_report(None, s)).splitlines()
    order: list[str] = []
    for line in lines:
        name = line.split()[2] if line.startswith("#") else line.split("{")[0].split()[0]
        if not order or order[-1] != name:
            assert name not in order, f"{name} comes back after another family"
            order.append(name)
    hits = [line for line in lines if line.startswith("cachectl_redis_keyspace_hits_total{")]
    assert [h.split('"')[1] for h in hits] == ["a:1", "b:2", "c:3"]


def test_stats_line_says_when_counters_are_missing():
    line = stats_line(compute_report(None, sample(0, [node()])))
    assert "app_counters=missing" in line and "memory=1000 B of 3.9 KiB (25.0%)" in line


def test_prometheus_server_hit_ratio_says_what_it_is_the_lifetime_figure_with_own_lookups():
    # INFO's counters count every client's lookups since the server started, cachectl's own
    # too: the HELP text must not claim they were taken out (only interval figures do that).
    first = sample(0, [node(keyspace_hits=10, keyspace_misses=10)])
    second = sample(1, [node(keyspace_hits=90, keyspace_misses=10)])
    second.own_hits = 80
    report = compute_report(first, second)
    lines = prometheus_text(report).splitlines()
    assert "cachectl_redis_hit_ratio 0.9" in lines
    (help_line,) = [line for line in lines if line.startswith("# HELP cachectl_redis_hit_ratio ")]
    assert "taken out" not in help_line
    assert "since each server started" in help_line and "cachectl's own included" in help_line
