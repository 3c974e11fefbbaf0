"""Anomalies, outliers and correlation over stored series on a real server."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.errors import NotFoundError
from cachectl.layout import Layout
from cachectl.ops.history import anomalies, correlate, outliers
from cachectl.store import Store
from cachectl.timeseries import TimeSeries

runner = CliRunner()
LAYOUT = Layout()


@pytest.fixture
def ts(redis_url):
    with Store(Settings(url=redis_url)) as store:
        yield TimeSeries(store, LAYOUT)


def fill(ts, name, values, step_ms=10_000):
    now = ts.now_ms()
    ts.add_many(
        [(name, float(v), now - (len(values) - i) * step_ms, None) for i, v in enumerate(values)]
    )


def wobble(n, centre, spread):
    return [centre + spread * math.sin(i * 1.7) for i in range(n)]


def test_a_spike_after_a_calm_hour_is_anomalous(ts):
    fill(ts, "cache.hit_ratio", [*wobble(60, 0.9, 0.01), 0.4])
    fill(ts, "redis.ops_per_s", [*wobble(60, 1000, 50), 1010])
    report = anomalies(ts, ["cache.hit_ratio", "redis.ops_per_s"], baseline_seconds=3600)
    by_name = {s.name: s for s in report.series}
    assert by_name["cache.hit_ratio"].anomaly.anomalous
    assert by_name["cache.hit_ratio"].anomaly.z_score < -3
    assert not by_name["redis.ops_per_s"].anomaly.anomalous
    assert [s.name for s in report.anomalous] == ["cache.hit_ratio"]
    # A default series not recorded yet is "no data"; one asked for by name must exist.
    defaults = {s.name: s for s in anomalies(ts, baseline_seconds=3600).series}
    assert defaults["redis.evicted_per_s"].anomaly is None
    with pytest.raises(NotFoundError, match="'nothing'"):
        anomalies(ts, ["cache.hit_ratio", "nothing"], baseline_seconds=3600)


def test_sensitivity_decides(ts):
    values = wobble(60, 100, 10)
    stdev = 10 / math.sqrt(2)
    fill(ts, "m", [*values, 100 + 2.5 * stdev])
    assert anomalies(ts, ["m"], sensitivity=2).anomalous
    assert not anomalies(ts, ["m"], sensitivity=3).anomalous


def test_outliers_by_interquartile_range(ts):
    values = wobble(40, 50, 5)
    values[10], values[30] = 500, -300
    fill(ts, "p95", values)
    report = outliers(ts, "p95", 3600, resolution="raw")
    assert sorted(v for _, v in report.outliers) == [-300, 500]
    assert report.points == 40


def test_correlation_of_aligned_series(ts):
    requests = [100 + 40 * math.sin(i / 3) for i in range(30)]
    fill(ts, "req", requests, step_ms=60_000)
    fill(ts, "cpu", [r * 0.5 + 3 for r in requests], step_ms=60_000)
    fill(ts, "inverse", [-r for r in requests], step_ms=60_000)
    assert correlate(ts, "req", "cpu", 3600).r == pytest.approx(1.0)
    report = correlate(ts, "req", "inverse", 3600)
    assert report.r == pytest.approx(-1.0) and report.strength == "strong negative"
    assert report.pairs >= 29


def test_analysis_commands_print_json(ts, redis_url):
    fill(ts, "cache.hit_ratio", [*wobble(30, 0.9, 0.01), 0.2])
    fill(ts, "other", [*wobble(30, 0.9, 0.01), 0.2])
    found = json.loads(
        runner.invoke(
            app, ["--url", redis_url, "history", "anomalies", "cache.hit_ratio", "--json"]
        ).stdout
    )
    assert found["data"]["anomalous"] == ["cache.hit_ratio"]
    people = runner.invoke(app, ["--url", redis_url, "history", "anomalies"])
    assert people.exit_code == 0 and "ANOMALOUS" in people.stdout
    out = json.loads(
        runner.invoke(
            app,
            [
                "--url",
                redis_url,
                "history",
                "outliers",
                "cache.hit_ratio",
                "--since",
                "1h",
                "-r",
                "raw",
                "--json",
            ],
        ).stdout
    )
    assert [o["value"] for o in out["data"]["outliers"]] == [0.2]
    corr = runner.invoke(
        app,
        [
            "--url",
            redis_url,
            "history",
            "correlate",
            "cache.hit_ratio",
            "other",
            "--since",
            "1h",
            "-r",
            "raw",
        ],
    )
    assert corr.exit_code == 0 and "r = +1.000" in corr.stdout
