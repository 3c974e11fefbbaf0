"""The exporter's metric families: every name in METRICS is served (and nothing else), the
reference page's table lists exactly them, and the Grafana dashboard queries only them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cachectl.ops.exporter import RefreshResult, Snapshot, latest_runs, parse_listen
from cachectl.ops.stats import NodeSample, ResponseTime, Sample, compute_report
from cachectl.render.prometheus import (
    EXPORTER_ONLY,
    METRICS,
    metric_families,
    prometheus_text,
    run_succeeded,
)
from cachectl.runlog import RecentRun

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "sample_configs" / "grafana" / "cachectl.json"
PAGE = ROOT / "docs" / "reference" / "exporter.md"


def _full_snapshot() -> Snapshot:
    sample = Sample(
        taken_at=1_700_000_000.0,
        nodes=[
            NodeSample(
                "127.0.0.1:7000",
                "run",
                {"keyspace_hits": 5, "keyspace_misses": 1, "evicted_keys": 2, "expired_keys": 3},
                {
                    "used_memory": 1e6,
                    "used_memory_peak": 2e6,
                    "maxmemory": 1e8,
                    "mem_fragmentation_ratio": 1.2,
                    "instantaneous_ops_per_sec": 10,
                    "connected_clients": 3,
                    "uptime_in_seconds": 100,
                },
            )
        ],
        counters_present=True,
        hits=70,
        misses=30,
        endpoints={"users": (40, 10)},
        response_times=[ResponseTime(1_699_999_999_000, "users", 12.0, True, "k")],
        log_from_ms=1_699_999_000_000,
    )
    report = compute_report(None, sample)
    return Snapshot(
        taken_at=sample.taken_at,
        up=True,
        report=report,
        response_times=report.application.response_times,
        endpoint_p95_ms={"users": 12.0},
        runs=latest_runs([RecentRun(1_699_999_000_000, "warm", 1.5, {"stored": 5, "failed": 0})]),
        refresh=RefreshResult(
            finished_at=1_699_999_990.0,
            duration_seconds=0.2,
            complete=True,
            keys_scanned=100,
            entries=90,
            entry_bytes=9000,
            endpoint_entries={"users": 90},
            endpoint_bytes={"users": 9000},
            bookkeeping_keys={"tag": 4},
            bookkeeping_bytes={"tag": 400},
            tag_sets=4,
            members_probed=50,
            members_dangling=5,
        ),
        scrape_seconds=0.01,
        commands=9,
    )


def _exposed(families) -> set[str]:
    return {f.name + "_total" if f.type == "counter" else f.name for f in families}


def test_a_full_snapshot_serves_every_metric_in_the_table():
    assert _exposed(metric_families(_full_snapshot())) == set(METRICS)


def test_a_stats_report_serves_all_but_the_exporters_own():
    snapshot = Snapshot.of_report(_full_snapshot().report)
    assert _exposed(metric_families(snapshot)) == set(METRICS) - EXPORTER_ONLY
    text = prometheus_text(snapshot)
    assert 'cachectl_endpoint_hits_total{endpoint="users"} 40.0' in text


def test_redis_down_serves_up_0_and_the_exporters_own_figures_only():
    names = _exposed(metric_families(Snapshot(taken_at=0, up=False, scrape_errors=1)))
    assert names == {"cachectl_up", "cachectl_scrape_errors_total", "cachectl_refresh_errors_total"}


def test_names_follow_prometheus_conventions():
    for name, (kind, _labels, _help) in METRICS.items():
        assert name.startswith("cachectl_")
        assert name.endswith("_total") == (kind == "counter"), name
        assert not re.search(r"_(ms|milliseconds|kb|mb|percent)\b", name), name


@pytest.mark.parametrize(
    ("summary", "ok"),
    [
        ({"stored": 5, "failed": 0}, True),
        ({"stored": 5, "failed": 2}, False),
        ({"interrupted": True}, False),
        ({"stopped": "Redis lost"}, False),
        ({"deleted": 3}, True),
    ],
)
def test_a_run_succeeded_when_it_did_its_whole_job(summary, ok):
    assert run_succeeded(summary) is ok


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9787", ("127.0.0.1", 9787)),
        (":0", ("127.0.0.1", 0)),
        ("[::1]:9000", ("::1", 9000)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
    ],
)
def test_listen_addresses(text, address):
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["nowhere", "host:", "::1:9000", "h:70000"])
def test_listen_addresses_refused(text):
    from cachectl.errors import UsageError

    with pytest.raises(UsageError):
        parse_listen(text)


def _queries(dashboard: dict) -> list[str]:
    exprs = [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    for panel in dashboard["panels"]:
        exprs += [t["expr"] for t in panel.get("targets", [])]
    return exprs


def test_the_grafana_dashboard_queries_only_metrics_the_exporter_serves():
    dashboard = json.loads(DASHBOARD.read_text())
    queried = set()
    for expr in _queries(dashboard):
        queried |= set(re.findall(r"\bcachectl_[a-z0-9_]+", expr))
    assert queried, "no cachectl metric queried"
    assert queried <= set(METRICS), queried - set(METRICS)
    # What the issue asks the dashboard to show.
    for needed in (
        "cachectl_endpoint_hits_total",
        "cachectl_response_time_seconds",
        "cachectl_redis_used_memory_bytes",
        "cachectl_redis_evicted_keys_total",
    ):
        assert needed in queried
    annotations = [a for a in dashboard["annotations"]["list"] if "expr" in a]
    assert any("cachectl_last_run_timestamp_seconds" in a["expr"] for a in annotations)


def test_the_reference_page_lists_every_metric_and_no_other():
    listed = set(re.findall(r"^\| `(cachectl_[a-z0-9_]+)`", PAGE.read_text(), re.MULTILINE))
    assert listed == set(METRICS)


def test_a_scrape_does_not_wait_for_a_read_still_in_flight():
    import threading
    import time

    from cachectl.config import Settings
    from cachectl.layout import Layout
    from cachectl.ops.exporter import Scraper
    from cachectl.store import Store

    release = threading.Event()
    scraper = Scraper(Store(Settings(url="redis://127.0.0.1:1/0")), Layout(), timeout=0.2)

    def stuck() -> Snapshot:
        release.wait(10)
        raise AssertionError("never answered")

    scraper._read = stuck  # type: ignore[method-assign]
    try:
        started = time.monotonic()
        first = scraper.scrape()
        assert not first.up and "within 0.2s" in (first.error or "")
        assert 0.15 < time.monotonic() - started < 1
        started = time.monotonic()
        second = scraper.scrape()
        assert not second.up and "has not finished" in (second.error or "")
        assert time.monotonic() - started < 0.1
        assert second.scrape_errors == 2
    finally:
        release.set()
        scraper.close()
