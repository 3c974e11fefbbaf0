"""`cachectl history add`: points from shell and CI jobs, one on the command line or a batch of
`series value [time]` lines on stdin, checked whole before anything is written."""

from __future__ import annotations

import json
import time

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode

runner = CliRunner()


def add(url: str, *args: str, stdin: str | None = None):
    return runner.invoke(app, ["--url", url, "history", "add", *args], input=stdin)


@pytest.fixture
def client(redis_url):
    with redis.Redis.from_url(redis_url) as c:
        yield c


def hour_start() -> int:
    return (int(time.time()) // 3600 - 1) * 3600


def test_one_point_with_its_time_is_stored_with_its_buckets(redis_url, client):
    at = hour_start() + 120
    result = add(
        redis_url, "deploy.seconds", "42.5", "--at", str(at), "--label", "env=ci", "--json"
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data == {"points": 1, "series": ["deploy.seconds"], "dry_run": False}
    assert (
        client.zscore("metric:deploy.seconds", client.zrange("metric:deploy.seconds", 0, 0)[0])
        == at * 1000
    )
    member = json.loads(client.zrange("metric:deploy.seconds", 0, 0)[0])
    assert member == {"value": 42.5, "timestamp": at * 1000, "tags": '{"env":"ci"}'}
    bucket = json.loads(client.hget(f"agg:deploy.seconds:1h:{hour_start() * 1000}", "data"))
    assert bucket["count"] == 1 and bucket["last"] == 42.5
    shown = runner.invoke(
        app,
        [
            "--url",
            redis_url,
            "history",
            "show",
            "deploy.seconds",
            "--since",
            "3h",
            "-r",
            "1h",
            "--json",
        ],
    )
    assert json.loads(shown.stdout)["data"]["computed_buckets"] == 0


def test_an_iso_time_and_now(redis_url, client):
    assert add(redis_url, "a", "1", "--at", "2026-01-02T03:04:05Z").exit_code == 0
    assert client.zrange("metric:a", 0, -1, withscores=True)[0][1] == 1767323045000
    before = time.time() * 1000
    assert add(redis_url, "--", "b", "-3").exit_code == 0
    assert (
        before - 1000
        <= client.zrange("metric:b", 0, -1, withscores=True)[0][1]
        <= time.time() * 1000
    )


def test_a_batch_from_stdin(redis_url, client):
    at = hour_start()
    lines = f"# deploys\nbuild.seconds 12 {at}\n\nbuild.seconds 14 {at + 60}\ntests.failed 0\n"
    result = add(redis_url, "-", "--json", stdin=lines)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["points"] == 3 and data["series"] == ["build.seconds", "tests.failed"]
    assert client.zcard("metric:build.seconds") == 2
    people = add(redis_url, "-", stdin=f"build.seconds 16 {at + 120}\n")
    assert people.exit_code == 0 and "1 point" in people.stdout


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ("ok 1\nok two\n", "stdin line 2: "),
        ("ok 1\nok nan\n", "stdin line 2: "),
        ("ok 1\n\nok\n", "stdin line 3: "),
        ("ok 1 tomorrow\n", "stdin line 1: "),
        ("ok 1 2 3\n", "stdin line 1: "),
    ],
)
def test_a_bad_line_exits_3_naming_it_and_writes_nothing(redis_url, client, lines, said):
    result = add(redis_url, "-", stdin=lines)
    assert result.exit_code == ExitCode.BAD_INPUT, result.output
    assert said in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert client.keys("*") == []


def test_a_bad_line_with_json_is_a_json_error(redis_url, client):
    result = add(redis_url, "-", "--json", stdin="ok 1\nok two\n")
    assert result.exit_code == ExitCode.BAD_INPUT
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False and "stdin line 2" in envelope["error"]["message"]
    assert client.keys("*") == []


def test_a_batch_over_the_cap_is_refused_before_anything_is_written(redis_url, client, monkeypatch):
    monkeypatch.setattr("cachectl.ops.history_add.MAX_BATCH_POINTS", 3)
    result = add(redis_url, "-", stdin="a 1\na 2\na 3\na 4\n")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "more than 3 points" in result.output
    assert client.keys("*") == []


def test_dry_run_checks_and_writes_nothing(redis_url, client):
    result = add(redis_url, "-", "--dry-run", "--json", stdin="a 1\nb 2\n")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data"] == {"points": 2, "series": ["a", "b"], "dry_run": True}
    assert client.keys("*") == []


def test_usage_errors(redis_url, client):
    assert add(redis_url, "a").exit_code == ExitCode.USAGE  # no value
    assert add(redis_url, "a", "x").exit_code == ExitCode.USAGE
    assert add(redis_url, "-", "1", stdin="").exit_code == ExitCode.USAGE
    assert add(redis_url, "a", "1", "--label", "novalue").exit_code == ExitCode.USAGE
    assert client.keys("*") == []
