"""`cachectl stats` and `cachectl check` end to end: exit codes, --json parsed, Prometheus text."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode
from tests.integration.test_stats import App

runner = CliRunner()


@pytest.fixture
def traffic_url(redis_url):
    client = redis.Redis.from_url(redis_url)
    # products: 90% hits at 5 ms; users: all misses at 80 ms.
    App(client).traffic({"products": (100, 10, 5.0), "users": (10, 10, 80.0)})
    client.close()
    return redis_url


def invoke(url, *args):
    return runner.invoke(app, ["--url", url, *args])


def test_stats_json_has_application_and_server_figures(traffic_url):
    result = invoke(traffic_url, "stats", "--json", "--sample", "0")
    assert result.exit_code == 0, result.output
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is True and envelope["command"] == "stats"
    data = envelope["data"]
    assert data["application"]["hits"] == 90
    assert data["application"]["misses"] == 20
    assert data["application"]["endpoints"][0]["endpoint"] == "products"
    assert data["application"]["response_times"]["p50_ms"] == 5.0
    assert data["server"]["used_memory_bytes"] > 0
    assert data["server"]["nodes"][0]["node"].startswith("127.0.0.1:")


def test_stats_for_people_lists_endpoints_and_server(traffic_url):
    result = invoke(traffic_url, "stats", "--sample", "0")
    assert result.exit_code == 0, result.output
    assert "products" in result.stdout and "users" in result.stdout
    assert "81.8%" in result.stdout  # 90 hits in 110 requests
    assert "\x1b[" not in result.stdout


def test_stats_prometheus_is_text_exposition(traffic_url):
    result = invoke(traffic_url, "stats", "--format", "prometheus", "--sample", "0")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "cachectl_app_hits_total 90.0" in lines
    assert 'cachectl_endpoint_misses_total{endpoint="users"} 10.0' in lines
    assert "# TYPE cachectl_app_hits_total counter" in lines
    for line in lines:
        assert line.startswith(("#", "cachectl_")), line


def test_stats_rejects_a_bad_sample_duration(redis_url):
    result = invoke(redis_url, "stats", "--sample", "soon")
    assert result.exit_code == ExitCode.USAGE
    assert "--sample" in result.stderr


def test_check_passes_with_every_condition_printed(traffic_url):
    result = invoke(
        traffic_url,
        "check",
        "--sample",
        "0.2s",
        "--max-memory",
        "95%",
        "--max-evictions-per-s",
        "10",
    )
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout and "FAIL" not in result.stdout
    assert "evictions <= 10/s" in result.stdout


def test_check_fails_with_exit_7_and_names_the_condition(traffic_url):
    result = invoke(
        traffic_url,
        "check",
        "--sample",
        "0.2s",
        "--min-hit-rate",
        "95",
        "--max-memory",
        "1KiB",
        "--allow-lifetime",
        "--json",
    )
    assert result.exit_code == ExitCode.CHECK_FAILED
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and envelope["error"]["code"] == "check_failed"
    verdicts = {c["name"]: c for c in envelope["data"]["conditions"]}
    # No traffic during the sample: the counters' lifetime rate stands in, and says so.
    assert verdicts["min_hit_rate"]["measured"] == pytest.approx(90 / 110 * 100)
    assert verdicts["min_hit_rate"]["verdict"] == "fail"
    assert "lifetime" in verdicts["min_hit_rate"]["detail"]
    assert verdicts["max_memory"]["verdict"] == "fail"


def test_check_for_an_endpoint(traffic_url):
    # The traffic came before the sample: its lifetime rate stands in.
    ok = invoke(
        traffic_url,
        "check",
        "--sample",
        "0.2s",
        "--endpoint",
        "products",
        "--min-hit-rate",
        "85",
        "--allow-lifetime",
    )
    assert ok.exit_code == 0, ok.output
    bad = invoke(
        traffic_url, "check", "--sample", "0.2s", "--endpoint", "users", "--min-hit-rate", "85"
    )
    assert bad.exit_code == ExitCode.CHECK_FAILED


def test_check_without_the_measured_data_fails_rather_than_passing(redis_url):
    result = invoke(redis_url, "check", "--sample", "0.2s", "--max-p95-ms", "100", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    condition = json.loads(result.stdout)["data"]["conditions"][0]
    assert condition["verdict"] == "no data"


@pytest.mark.parametrize(
    "args",
    [
        ["--min-hit-rate", "120"],
        ["--min-hit-rate", "-1"],
        ["--max-memory", "150%"],
        ["--max-memory", "lots"],
        ["--max-evictions-per-s", "-5"],
        ["--max-p95-ms", "0"],
        ["--endpoint", "products"],
        [],
    ],
)
def test_impossible_or_missing_thresholds_are_usage_errors(args):
    # No server is reached: nothing listens on port 1.
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", "check", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    # cachectl's own line, or click's for a value out of the flag's declared range
    assert result.stderr.startswith("error: ") or f"Invalid value for '{args[0]}'" in result.stderr


def test_ctrl_c_leaves_the_watch_with_exit_0(redis_url, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr("cachectl.ops.stats.watch", interrupted)
    result = invoke(redis_url, "stats", "--every", "1s")
    assert result.exit_code == 0, result.output


def test_stats_and_check_on_a_cluster(cluster_url):
    client = redis.RedisCluster.from_url(cluster_url)
    App(client).traffic({f"ep{i}": (10, 2, 3.0) for i in range(4)})
    client.close()
    result = invoke(cluster_url, "stats", "--json", "--sample", "0.2s")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert len(data["server"]["nodes"]) == 3
    assert (data["application"]["hits"], data["application"]["misses"]) == (32, 8)
    assert data["server"]["ops_per_s"] > 0
    checked = invoke(
        cluster_url,
        "check",
        "--sample",
        "0.2s",
        "--min-hit-rate",
        "75",
        "--max-memory",
        "95%",
        "--allow-lifetime",
    )
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--rounds", "3"], "--rounds only applies with --every"),
        (["--discover-every", "10"], "--discover-every only applies with --every"),
        (["--rounds", "2", "--discover-every", "5"], "--rounds and --discover-every only apply"),
        (["--record"], "--record needs --every"),
    ],
)
def test_dashboard_options_without_every_are_usage_errors_naming_every(args, named):
    # No server is reached: nothing listens on port 1.
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", "stats", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
    (line,) = result.stderr.splitlines()
    assert named in line
