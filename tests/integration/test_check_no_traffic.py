"""`cachectl check` over a live sample with no traffic in it: every condition that has no data
in its sample is NO DATA (a failure), the hit rate as much as p95, unless --allow-lifetime lets
the lifetime figures stand in, which each such condition then says (detail, `lifetime`)."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.errors import ExitCode
from cachectl.layout import Layout
from cachectl.ops.check import Thresholds, check_once
from cachectl.store import Store
from tests.integration.test_stats import App

runner = CliRunner()
LAYOUT = Layout()
# products: 100 requests, 90 hits, at 5 ms; users: 10 misses at 80 ms. p95 of them all: 80 ms.
PLAN = {"products": (100, 10, 5.0), "users": (10, 10, 80.0)}


@pytest.fixture
def quiet_url(redis_url):
    """Traffic long before the sample, none during it."""
    with redis.Redis.from_url(redis_url) as client:
        App(client).traffic(PLAN)
    return redis_url


def check(url, *args):
    result = runner.invoke(app, ["--url", url, "check", "--sample", "0.1s", *args, "--json"])
    return result, {c["name"]: c for c in json.loads(result.stdout)["data"]["conditions"]}


@pytest.mark.parametrize("endpoint", [[], ["--endpoint", "products"]], ids=["all", "endpoint"])
def test_no_traffic_in_the_sample_is_no_data_for_every_traffic_condition(quiet_url, endpoint):
    result, conditions = check(quiet_url, *endpoint, "--min-hit-rate", "50", "--max-p95-ms", "100")
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    for name in ("min_hit_rate", "max_p95_ms"):
        assert conditions[name]["verdict"] == "no data", conditions[name]
        assert conditions[name]["lifetime"] is False
        assert "--allow-lifetime" in conditions[name]["detail"]


@pytest.mark.parametrize("endpoint", [[], ["--endpoint", "products"]], ids=["all", "endpoint"])
def test_allow_lifetime_lets_the_lifetime_figures_stand_in_and_says_so(quiet_url, endpoint):
    result, conditions = check(
        quiet_url, *endpoint, "--min-hit-rate", "50", "--max-p95-ms", "100", "--allow-lifetime"
    )
    assert result.exit_code == 0, result.output
    hit_rate, p95 = conditions["min_hit_rate"], conditions["max_p95_ms"]
    assert hit_rate["verdict"] == p95["verdict"] == "pass"
    assert hit_rate["lifetime"] is p95["lifetime"] is True
    assert "lifetime" in hit_rate["detail"] and "lifetime" in p95["detail"]
    if endpoint:
        assert hit_rate["measured"] == pytest.approx(90.0)
        assert p95["measured"] == pytest.approx(5.0)
        assert p95["log_members"] == 100  # the response-time log members it was read from
    else:
        assert hit_rate["measured"] == pytest.approx(90 / 110 * 100)
        assert p95["measured"] == pytest.approx(80.0)
        assert p95["log_members"] == 110
    assert hit_rate["log_members"] is None


def test_people_see_the_lifetime_stand_in_in_the_table(quiet_url):
    result = runner.invoke(
        app,
        ["--url", quiet_url, "check", "--sample", "0.1s", "--min-hit-rate", "50"]
        + ["--allow-lifetime"],
    )
    assert result.exit_code == 0, result.output
    assert "lifetime" in result.stdout


def test_traffic_in_the_sample_is_measured_over_the_sample_even_with_allow_lifetime(redis_url):
    with redis.Redis.from_url(redis_url) as client, Store(Settings(url=redis_url)) as store:
        app_ = App(client)
        app_.traffic({"products": (10, 10, 5.0)})  # ten misses before the sample
        thresholds = Thresholds(min_hit_rate_pct=50, max_p95_ms=100, allow_lifetime=True)
        result = check_once(
            store,
            LAYOUT,
            thresholds,
            sample_seconds=0.1,
            sleep=lambda _: app_.traffic({"products": (10, 10, 7.0)}),  # ten hits during it
        )
    conditions = {c.name: c for c in result.conditions}
    assert conditions["min_hit_rate"].measured == pytest.approx(100.0)
    assert conditions["max_p95_ms"].measured == pytest.approx(7.0)
    # The members read: the hits logged in the sample (those in its first millisecond are
    # not told from calls before it, and left out).
    p95 = conditions["max_p95_ms"]
    assert 0 < p95.log_members <= 10 and p95.detail == f"{p95.log_members} requests logged"
    assert not conditions["min_hit_rate"].lifetime and not conditions["max_p95_ms"].lifetime
    assert result.ok


def test_allow_lifetime_is_for_a_live_sample_not_a_window():
    result = runner.invoke(
        app,
        ["--url", "redis://127.0.0.1:1/0", "check", "--since", "15m", "--min-hit-rate", "5"]
        + ["--allow-lifetime"],
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "--allow-lifetime" in result.stderr
