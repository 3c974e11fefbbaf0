"""`cachectl exporter` for real: a child process on a free port against real servers, scraped
over HTTP; its figures checked against what the test wrote, its cost in Redis commands, its
answer with Redis down, and its stop on Ctrl-C and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from cachectl.config import Settings
from cachectl.errors import ExitCode
from cachectl.layout import Layout
from cachectl.runlog import record_run
from cachectl.store import Store

ROOT = Path(__file__).resolve().parents[2]


class Exporter:
    def __init__(self, url: str, *args: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cachectl", "--url", url, "exporter", "--json"]
            + ["--listen", "127.0.0.1:0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: list[str] = []
        threading.Thread(
            target=lambda: lines.extend(iter(self.proc.stdout.readline, "")), daemon=True
        ).start()
        deadline = time.monotonic() + 30
        while not lines:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise AssertionError(f"no address printed: {self.proc.stderr.read()}")
            time.sleep(0.02)
        self.started = json.loads(lines[0])
        self.base = self.started["url"]

    def get(self, path: str, accept: str | None = None) -> tuple[str, str]:
        request = urllib.request.Request(self.base + path)
        if accept:
            request.add_header("Accept", accept)
        with urllib.request.urlopen(request, timeout=20) as reply:
            return reply.read().decode(), reply.headers["Content-Type"]

    def metrics(self) -> dict[str, float]:
        """`name{labels}` -> value, from the Prometheus text."""
        text, _ = self.get("/metrics")
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def wait_for(self, *names: str, timeout: float = 30) -> dict[str, float]:
        deadline = time.monotonic() + timeout
        while True:
            values = self.metrics()
            if all(name in values for name in names) or time.monotonic() > deadline:
                return values
            time.sleep(0.1)

    def stop(self, sig=signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        try:
            _, stderr = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, stderr = self.proc.communicate()
            raise AssertionError(f"still running 20 s after {sig}: {stderr}") from None
        return self.proc.returncode, stderr


@pytest.fixture
def running():
    started: list[Exporter] = []

    def start(url: str, *args: str) -> Exporter:
        exporter = Exporter(url, *args)
        started.append(exporter)
        return exporter

    yield start
    for exporter in started:
        if exporter.proc.poll() is None:
            exporter.proc.kill()
            exporter.proc.communicate()


def _write_cache(url: str, entries: int = 3) -> None:
    now_ms = int(time.time() * 1000)
    with redis.Redis.from_url(url) as r:
        r.hset("cache_metrics:hits", "total", 70)
        r.hset("cache_metrics:misses", "total", 30)
        r.hset("cache_metrics:hits:users", "count", 40)
        r.hset("cache_metrics:misses:users", "count", 10)
        r.hset("cache_metrics:hits:products", "count", 30)
        r.hset("cache_metrics:misses:products", "count", 20)
        for i in range(entries):
            r.set(f"api_cache:users:id:{i}", json.dumps({"id": i, "name": "x" * 50}), ex=600)
        r.sadd("tag:people", *[f"api_cache:users:id:{i}" for i in range(entries)], "gone:1")
        members = {}
        for i in range(100):
            member = {"endpoint": "users", "cacheKey": f"k{i}", "responseTime": i + 1, "hit": True}
            members[json.dumps(member)] = now_ms - 1000 - i
        r.zadd("cache_metrics:response_times", members)
    store = Store(Settings(url=url))
    record_run(store, Layout(), "invalidate", {"deleted": 12, "interrupted": False}, 0.25)
    record_run(store, Layout(), "warm", {"stored": 5, "failed": 2}, 1.5)
    store.close()


def test_metrics_hold_what_was_written(redis_url, running):
    _write_cache(redis_url)
    exporter = running(redis_url, "--refresh", "1h")
    # Entries come with the sampled walk; the products endpoint (no entries) with the SCAN of
    # the metrics prefix after it.
    values = exporter.wait_for(
        'cachectl_endpoint_entries{endpoint="users"}',
        'cachectl_endpoint_misses_total{endpoint="products"}',
    )
    assert values["cachectl_up"] == 1
    assert values["cachectl_app_hits_total"] == 70
    assert values["cachectl_app_misses_total"] == 30
    assert values['cachectl_endpoint_hits_total{endpoint="users"}'] == 40
    assert values['cachectl_endpoint_misses_total{endpoint="products"}'] == 20
    # 100 calls of 1..100 ms: the percentiles of the log, in seconds.
    assert values['cachectl_response_time_seconds{quantile="0.5"}'] == pytest.approx(0.0505, 0.05)
    assert values['cachectl_response_time_seconds{quantile="0.99"}'] == pytest.approx(0.099, 0.05)
    assert values["cachectl_response_time_log_requests"] == 100
    assert values['cachectl_endpoint_entries{endpoint="users"}'] == 3
    assert values['cachectl_endpoint_memory_bytes{endpoint="users"}'] > 3 * 50
    assert values["cachectl_tag_sets"] == 1
    assert values["cachectl_index_members_probed"] == 4
    assert values["cachectl_index_members_dangling"] == 1
    assert values['cachectl_last_run_count{field="deleted",job="invalidate"}'] == 12
    assert values['cachectl_last_run_success{job="invalidate"}'] == 1
    assert values['cachectl_last_run_success{job="warm"}'] == 0  # two requests failed
    assert values['cachectl_last_run_duration_seconds{job="warm"}'] == 1.5
    assert abs(values['cachectl_last_run_timestamp_seconds{job="warm"}'] - time.time()) < 60
    assert values["cachectl_refresh_success"] == 1
    assert values["cachectl_scrape_errors_total"] == 0
    assert 0 < values["cachectl_scrape_duration_seconds"] < 5
    assert any(name.startswith("cachectl_redis_evicted_keys_total{node=") for name in values)
    assert "process_cpu_seconds_total" in values
    health, _ = exporter.get("/healthz")
    assert health == "ok\n"
    assert exporter.stop() == (0, "")


def test_openmetrics_when_asked(redis_url, running):
    exporter = running(redis_url, "--refresh", "1h")
    text, content_type = exporter.get("/metrics", accept="application/openmetrics-text")
    assert content_type.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    assert "# TYPE cachectl_scrape_errors counter" in text
    plain, content_type = exporter.get("/metrics")
    assert content_type.startswith("text/plain")
    assert "# EOF" not in plain


def _commands_of_one_scrape(url: str, exporter: Exporter) -> int:
    with redis.Redis.from_url(url) as r:
        r.config_resetstat()
        exporter.get("/metrics")
        stats = r.info("commandstats")
    # Everything counted but the test's own CONFIG RESETSTAT (its INFO is counted after).
    return sum(v["calls"] for k, v in stats.items() if "config" not in k)


def test_a_scrape_costs_the_same_commands_whatever_the_keyspace_size(redis_url, running):
    _write_cache(redis_url, entries=10)
    exporter = running(redis_url, "--refresh", "1h")
    exporter.wait_for("cachectl_refresh_timestamp_seconds")
    exporter.get("/metrics")  # the first scrape read the response-time log's whole window
    small = _commands_of_one_scrape(redis_url, exporter)
    with redis.Redis.from_url(url=redis_url) as r:
        for start in range(0, 30_000, 5_000):
            r.mset({f"api_cache:users:id:{i}": "{}" for i in range(start, start + 5_000)})
    large = _commands_of_one_scrape(redis_url, exporter)
    assert small == large
    # INFO; one pipeline of 2 + 2 x 2 endpoints HGETALLs and the log; the runs: 9, 3 round trips.
    assert small == 9
    assert exporter.metrics()["cachectl_scrape_commands"] == 9


def test_redis_down_answers_at_once_with_up_0(make_redis, running):
    server = make_redis()
    url = server.url
    server.stop()
    exporter = running(url, "--refresh", "1h")
    started = time.monotonic()
    values = exporter.metrics()
    assert time.monotonic() - started < 3
    assert values["cachectl_up"] == 0
    assert values["cachectl_scrape_errors_total"] >= 1
    assert "cachectl_app_hits_total" not in values
    health, _ = exporter.get("/healthz")
    assert health == "ok\n"
    code, stderr = exporter.stop()
    assert code == 0, stderr


def test_a_redis_that_stops_answering_gets_up_0_within_the_scrape_timeout(make_redis, running):
    server = make_redis()
    exporter = running(server.url, "--refresh", "1h", "--scrape-timeout", "1s")
    assert exporter.metrics()["cachectl_up"] == 1
    os.kill(server._process.pid, signal.SIGSTOP)  # connected, but nothing comes back
    try:
        started = time.monotonic()
        values = exporter.metrics()
        assert time.monotonic() - started < 2.5
        assert values["cachectl_up"] == 0
        # And again: each scrape gives up within its timeout, however long Redis is stuck.
        started = time.monotonic()
        assert exporter.metrics()["cachectl_up"] == 0
        assert time.monotonic() - started < 2.5
    finally:
        os.kill(server._process.pid, signal.SIGCONT)
    deadline = time.monotonic() + 20
    while exporter.metrics()["cachectl_up"] != 1:
        assert time.monotonic() < deadline, "never back up after Redis answered again"
        time.sleep(0.2)
    assert exporter.stop() == (0, "")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_it_with_exit_0(redis_url, running, stop):
    exporter = running(redis_url)
    exporter.metrics()
    assert exporter.stop(stop) == (0, "")
    with pytest.raises(urllib.error.URLError):
        exporter.get("/healthz")


def test_a_listen_address_that_is_not_one_is_a_usage_error(redis_url):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "cachectl", "--url", redis_url, "exporter", "--listen", "nowhere"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == ExitCode.USAGE
    assert "HOST:PORT" in result.stderr


def test_a_cluster_is_read_on_every_primary(cluster_url, running):
    with redis.RedisCluster.from_url(cluster_url) as r:
        r.hset("cache_metrics:hits", "total", 9)
        r.hset("cache_metrics:hits:users", "count", 4)
        r.hset("cache_metrics:hits:orders", "count", 5)
        for i in range(30):
            r.set(f"api_cache:orders:id:{i}", "{}")
    exporter = running(cluster_url, "--refresh", "1h")
    values = exporter.wait_for(
        'cachectl_endpoint_entries{endpoint="orders"}',
        'cachectl_endpoint_hits_total{endpoint="users"}',
    )
    assert values["cachectl_up"] == 1
    assert values["cachectl_app_hits_total"] == 9
    assert values['cachectl_endpoint_hits_total{endpoint="orders"}'] == 5
    assert values['cachectl_endpoint_entries{endpoint="orders"}'] == 30
    nodes = [n for n in values if n.startswith("cachectl_redis_used_memory_bytes{")]
    assert len(nodes) == 3
    assert exporter.stop() == (0, "")
