"""`cachectl check` over stored history, with --fail-on-anomaly, and as an alerting loop posting to
a webhook (a local HTTP server)."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.errors import ExitCode
from cachectl.layout import Layout
from cachectl.ops.check import CheckResult, Condition, check_loop
from cachectl.store import Store
from cachectl.timeseries import TimeSeries
from tests.integration.test_history_analysis import fill, wobble
from tests.integration.test_stats import App

runner = CliRunner()
LAYOUT = Layout()


@pytest.fixture
def recorded(redis_url):
    """Ten minutes of history: 90% hits at 100 req/s, p95 20 ms, 40% of maxmemory."""
    with Store(Settings(url=redis_url)) as store:
        ts = TimeSeries(store, LAYOUT)
        fill(ts, "cache.hit_ratio", [0.9] * 60)
        fill(ts, "cache.requests_per_s", [100] * 60)
        fill(ts, "cache.response_p95_ms", [20] * 60)
        fill(ts, "redis.memory_used_ratio", [0.4] * 60)
        fill(ts, "redis.used_memory_bytes", [4_000_000] * 60)
        fill(ts, "redis.evicted_per_s", [0] * 60)
        fill(ts, "cache.hit_ratio:products", [0.5] * 60)
        fill(ts, "cache.requests_per_s:products", [10] * 60)
    return redis_url


def check(url, *args):
    return runner.invoke(app, ["--url", url, "check", *args])


def test_history_window_passes_and_fails_on_the_recorded_figures(recorded):
    ok = check(
        recorded,
        "--since",
        "15m",
        "--min-hit-rate",
        "85",
        "--max-p95-ms",
        "50",
        "--max-memory",
        "80%",
        "--max-evictions-per-s",
        "1",
        "--json",
    )
    assert ok.exit_code == 0, ok.output
    data = json.loads(ok.stdout)["data"]
    assert data["source"] == "history"
    measured = {c["name"]: c["measured"] for c in data["conditions"]}
    assert measured == {
        "min_hit_rate": pytest.approx(90),
        "max_p95_ms": 20,
        "max_memory": pytest.approx(40),
        "max_evictions_per_s": 0,
    }
    bad = check(recorded, "--since", "15m", "--endpoint", "products", "--min-hit-rate", "85")
    assert bad.exit_code == ExitCode.CHECK_FAILED
    assert "50.00%" in bad.stdout and "FAIL" in bad.stdout


def test_a_window_with_nothing_recorded_fails(redis_url):
    result = check(redis_url, "--since", "15m", "--min-hit-rate", "50")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "NO DATA" in result.stdout


def _share_base(condition):
    """The base of a memory share, from a detail such as '1,234 of 25,276,510,208 bytes (...)'."""
    return int(re.search(r"of ([\d,]+) bytes", condition["detail"]).group(1).replace(",", ""))


def test_a_window_without_maxmemory_takes_the_share_of_the_machines_memory_as_a_sample_does(
    redis_url,
):
    conn = redis.Redis.from_url(redis_url)
    info = conn.info("memory")
    conn.close()
    assert info["maxmemory"] == 0  # the test server has no maxmemory: no share is recorded
    system = info["total_system_memory"]
    with Store(Settings(url=redis_url)) as store:
        fill(TimeSeries(store, LAYOUT), "redis.used_memory_bytes", [0.1 * system, 0.9 * system])
    window = check(redis_url, "--since", "15m", "--max-memory", "80%", "--json")
    assert window.exit_code == ExitCode.CHECK_FAILED, window.output
    (condition,) = json.loads(window.stdout)["data"]["conditions"]
    assert condition["verdict"] == "fail" and condition["measured"] == pytest.approx(90)
    assert "machine's memory" in condition["detail"]
    # The same base as a live sample of the same server.
    sample = check(redis_url, "--sample", "0.1s", "--max-memory", "80%", "--json")
    (live,) = json.loads(sample.stdout)["data"]["conditions"]
    assert _share_base(condition) == _share_base(live) == system
    assert check(redis_url, "--since", "15m", "--max-memory", "95%").exit_code == 0


def test_a_window_that_cannot_judge_a_share_of_memory_says_what_would_let_it(acl_redis, acl_url):
    with Store(Settings(url=acl_url)) as store:
        fill(TimeSeries(store, LAYOUT), "redis.used_memory_bytes", [1000] * 10)
    # A user who may not run INFO cannot read the machine's memory.
    result = check(
        acl_redis.url_for("noinfo", "noinfo-pass"),
        "--since",
        "15m",
        "--max-memory",
        "80%",
        "--json",
    )
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    (condition,) = json.loads(result.stdout)["data"]["conditions"]
    assert condition["verdict"] == "no data"
    assert "INFO" in condition["detail"]
    assert "set maxmemory on the server, or give --max-memory as a size" in condition["detail"]
    assert "noinfo-pass" not in result.output


def test_no_anomaly_over_history(redis_url):
    with Store(Settings(url=redis_url)) as store:
        fill(TimeSeries(store, LAYOUT), "cache.hit_ratio", [*wobble(60, 0.9, 0.01), 0.3])
    result = check(redis_url, "--since", "15m", "--fail-on-anomaly", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    (condition,) = json.loads(result.stdout)["data"]["conditions"]
    assert condition["name"] == "no_anomaly" and "cache.hit_ratio=0.3" in condition["detail"]


def test_no_anomaly_holds_a_live_sample_against_history(redis_url):
    client = redis.Redis.from_url(redis_url)
    with Store(Settings(url=redis_url)) as store:
        # Stored: about a million bytes used. Live: the server's real figure, far above.
        fill(TimeSeries(store, LAYOUT), "redis.used_memory_bytes", wobble(60, 1000, 10))
    App(client).traffic({"products": (5, 5, 1.0)})
    client.close()
    result = check(redis_url, "--sample", "0.1s", "--fail-on-anomaly", "--json")
    assert result.exit_code == ExitCode.CHECK_FAILED
    (condition,) = json.loads(result.stdout)["data"]["conditions"]
    assert "redis.used_memory_bytes" in condition["detail"]


def test_no_anomaly_without_history_fails_and_says_why(redis_url):
    result = check(redis_url, "--sample", "0.1s", "--fail-on-anomaly")
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "history record" in result.stdout


class Hooks:
    """A local webhook receiver: keeps each POST's JSON and its Authorization header; answers
    with a redirect to `redirect_to` when that is set."""

    def __init__(self):
        self.posts: list[dict] = []
        self.authorizations: list[str | None] = []
        self.requests = 0  # of any method
        self.redirect_to: str | None = None
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                hooks.requests += 1
                length = int(self.headers["Content-Length"])
                body = json.loads(self.rfile.read(length))
                if hooks.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", hooks.redirect_to)
                    self.end_headers()
                    return
                hooks.posts.append(body)
                hooks.authorizations.append(self.headers.get("Authorization"))
                self.send_response(204)
                self.end_headers()

            def do_GET(self):
                hooks.requests += 1
                hooks.authorizations.append(self.headers.get("Authorization"))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}/hooks/SECRET-TOKEN"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks():
    server = Hooks()
    yield server
    server.close()


def test_every_posts_a_breach_once_then_a_line_per_round(recorded, hooks):
    result = check(
        recorded,
        "--since",
        "15m",
        "--min-hit-rate",
        "95",
        "--every",
        "0.05s",
        "--rounds",
        "3",
        "--webhook",
        hooks.url,
    )
    assert result.exit_code == ExitCode.CHECK_FAILED
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and lines[0].endswith("[breach]") and "FAILED" in lines[2]
    assert [p["event"] for p in hooks.posts] == ["breach"]
    assert hooks.posts[0]["failed"] == ["min_hit_rate"]
    assert hooks.posts[0]["conditions"][0]["measured"] == pytest.approx(90)
    assert "SECRET-TOKEN" not in result.output


def test_breach_and_recovery_are_posted_on_each_change(hooks):
    verdicts = iter([True, False, False, True, True, False])

    def run_round():
        ok = next(verdicts)
        return CheckResult(
            "sample",
            1,
            [Condition("min_hit_rate", "hit rate >= 90%", 90, 95 if ok else 80, "percent", ok)],
        )

    from cachectl.ops.check import post_webhook

    rounds = []
    check_loop(
        run_round,
        0,
        rounds=6,
        webhook=hooks.url,
        on_round=rounds.append,
        sleep=lambda s: None,
        post=post_webhook,
    )
    assert [r.event for r in rounds] == [None, "breach", None, "recovery", None, "breach"]
    assert [p["event"] for p in hooks.posts] == ["breach", "recovery", "breach"]


def test_an_unreachable_webhook_is_a_warning_and_the_loop_goes_on(recorded):
    result = check(
        recorded,
        "--since",
        "15m",
        "--min-hit-rate",
        "95",
        "--every",
        "0.05s",
        "--rounds",
        "2",
        "--webhook",
        "http://127.0.0.1:1/hook/SECRET-TOKEN",
    )
    assert result.exit_code == ExitCode.CHECK_FAILED
    assert "webhook at http://127.0.0.1:1 could not be reached" in result.stderr
    assert "SECRET-TOKEN" not in result.output


def test_credentials_in_the_webhook_url_are_sent_as_basic_auth_and_never_shown(recorded, hooks):
    # Percent-encoded as a URL must hold them; decoded before they are sent, as curl does.
    url = f"http://alert%40ops:s3cr%3At%2Fpw@127.0.0.1:{hooks.port}/hooks/SECRET-TOKEN"
    result = check(recorded, "--since", "15m", "--min-hit-rate", "95", "--webhook", url)
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    assert [p["event"] for p in hooks.posts] == ["breach"], result.output
    assert hooks.authorizations == ["Basic " + base64.b64encode(b"alert@ops:s3cr:t/pw").decode()]
    for secret in ("s3cr", "alert", "SECRET-TOKEN"):
        assert secret not in result.output


def test_a_webhook_that_fails_with_credentials_names_only_its_host(recorded):
    result = check(
        recorded,
        "--since",
        "15m",
        "--min-hit-rate",
        "95",
        "--webhook",
        "http://ops:PASSWORD-XYZ@127.0.0.1:1/hook/SECRET-TOKEN",
    )
    assert "webhook at http://127.0.0.1:1 could not be reached" in result.stderr
    assert "Name or service" not in result.stderr  # the credentials were not read as the host
    assert "PASSWORD-XYZ" not in result.output and "ops" not in result.stderr


def test_a_redirecting_webhook_is_a_warning_and_nothing_follows_it(recorded, hooks):
    other = Hooks()
    try:
        hooks.redirect_to = other.url
        url = f"http://ops:PASSWORD-XYZ@127.0.0.1:{hooks.port}/hooks/SECRET-TOKEN"
        result = check(recorded, "--since", "15m", "--min-hit-rate", "95", "--webhook", url)
        assert "answered HTTP 302, a redirect, which is not followed" in result.stderr
        # Followed, the POST would have become a bodiless GET carrying the password elsewhere.
        assert other.requests == 0 and other.authorizations == []
        assert "PASSWORD-XYZ" not in result.output and "SECRET-TOKEN" not in result.output
    finally:
        other.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://ops:pass/WORD-XYZ@127.0.0.1:8080/hook",  # an unencoded / in the password
        "http://ops:PASSWORD-XYZ@127.0.0.1:80 80/hook",
    ],
)
def test_a_webhook_url_that_cannot_be_read_is_a_usage_error_that_does_not_echo_it(url):
    result = runner.invoke(
        app, ["--url", "redis://127.0.0.1:1/0", "check", "--min-hit-rate", "5", "--webhook", url]
    )
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "WORD-XYZ" not in result.output


def test_in_the_loop_a_lost_server_is_a_breach_not_the_end(make_redis, hooks):
    server = make_redis()
    url = server.url
    server.kill()
    result = runner.invoke(
        app,
        [
            "--url",
            url,
            "--connect-timeout",
            "0.5",
            "check",
            "--max-memory",
            "90%",
            "--sample",
            "0.1s",
            "--every",
            "0.05s",
            "--rounds",
            "2",
            "--webhook",
            hooks.url,
            "--json",
        ],
    )
    assert result.exit_code == ExitCode.CHECK_FAILED, result.output
    rounds = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["event"] for r in rounds] == ["breach", None]
    assert rounds[0]["error"].startswith("cannot connect")
    assert [p["event"] for p in hooks.posts] == ["breach"]


@pytest.mark.parametrize(
    "args",
    [
        ["--sample", "1s", "--since", "5m", "--min-hit-rate", "5"],
        ["--rounds", "2", "--min-hit-rate", "5"],
        ["--webhook", "ftp://x/y", "--min-hit-rate", "5"],
        ["--fail-on-anomaly", "--sensitivity", "0"],
        ["--every", "-1s", "--min-hit-rate", "5"],
    ],
)
def test_contradictory_loop_options_are_usage_errors(args):
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", "check", *args])
    assert result.exit_code == ExitCode.USAGE, result.output
