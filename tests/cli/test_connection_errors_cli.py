"""A URL that reaches the wrong thing says what it reached, through the real CLI: an HTTP
server, a database number past the server's last one."""

from __future__ import annotations

import http.server
import threading

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.devserver import free_port

runner = CliRunner()


@pytest.fixture
def http_port():
    port = free_port()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), http.server.BaseHTTPRequestHandler
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("command", [["keys"], ["stats"]])
def test_a_url_pointing_at_an_http_server_says_it_is_not_redis(http_port, command):
    url = f"redis://app:s3cret-pw@127.0.0.1:{http_port}/0"
    result = runner.invoke(app, ["--url", url, *command])
    assert result.exit_code != 0
    assert "is not a Redis server (it answered HTTP)" in result.stderr
    assert "s3cret-pw" not in result.output
    assert "protocol error" not in result.stderr.lower()


def test_a_database_past_the_last_one_says_how_many_there_are(redis_url):
    url = redis_url.rsplit("/", 1)[0] + "/99"
    result = runner.invoke(app, ["--url", url, "keys"])
    assert result.exit_code != 0
    assert "database 99 does not exist" in result.stderr
    assert "(the server has 16)" in result.stderr
    assert "EVAL" not in result.stderr


@pytest.mark.parametrize("command", [["keys"], ["stats"], ["memory"]])
def test_traceback_shows_the_traceback_of_a_redis_error(redis_url, command):
    url = redis_url.rsplit("/", 1)[0] + "/99"
    result = runner.invoke(app, ["--url", url, *command, "--traceback"])
    assert result.exit_code != 0
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: database 99")


def test_traceback_of_a_redis_error_never_shows_the_password(http_port):
    url = f"redis://app:s3cret-pw@127.0.0.1:{http_port}/0"
    result = runner.invoke(app, ["--traceback", "--url", url, "keys"])
    assert "Traceback (most recent call last)" in result.stderr
    assert "s3cret-pw" not in result.output


def test_warm_with_the_origin_down_says_so_once_per_cause(redis_url):
    from pathlib import Path

    manifest = Path(__file__).parents[2] / "sample_configs" / "demo_manifest.yaml"
    port = free_port()
    result = runner.invoke(
        app,
        ["--url", redis_url, "warm", str(manifest)],
        env={"DEMO_API_URL": f"http://user:s3cret-pw@127.0.0.1:{port}"},
    )
    assert result.exit_code != 0
    line = f"origin http://127.0.0.1:{port} unreachable: connection refused, 21 requests"
    assert line in result.stdout
    assert "Connect call failed" not in result.stdout  # not one identical row per request
    assert "s3cret-pw" not in result.output
