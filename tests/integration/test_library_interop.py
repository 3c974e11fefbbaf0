"""One cache, many writers: what the library writes, cachectl's commands and a JavaScript
application read, and the other way round."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import redis
from typer.testing import CliRunner

from cachectl import MISS, APICache
from cachectl.cli.app import app
from tests.integration.test_warm import manifest

runner = CliRunner()


def cli(url: str, *args: str) -> dict:
    result = runner.invoke(app, ["--url", url, *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["data"]


@pytest.fixture
def cache(redis_url):
    with APICache(redis_url) as c:
        yield c


def test_cachectl_invalidate_deletes_what_the_library_wrote(cache, redis_url):
    for i in range(5):
        cache.set("products", {"id": i}, {"i": i}, ttl=60, tags=["sale"])
    cache.set("users", {"id": 123}, {"name": "ann"}, ttl=60)
    cache.set("users", {"id": "123"}, {"name": "string id"}, ttl=60)
    cli(redis_url, "invalidate", "--tag", "sale", "--yes")
    cli(redis_url, "invalidate", "--endpoint", "users", "--param", "id=123", "--yes")
    assert all(cache.get("products", {"id": i}, default=MISS) is MISS for i in range(5))
    assert cache.get("users", {"id": 123}, default=MISS) is MISS
    assert cache.get("users", {"id": "123"}) == {"name": "string id"}  # "123" is another key


def test_cachectl_stats_shows_the_librarys_traffic(cache, redis_url):
    for i in range(3):
        cache.cache_api_call("products", {"id": i}, lambda: [1], 60)
    for _ in range(6):
        cache.cache_api_call("products", {"id": 0}, lambda: [1], 60)
    cache.get("users", {"id": 9})
    cache.flush()
    application = cli(redis_url, "stats", "--sample", "0")["application"]
    assert (application["hits"], application["misses"]) == (6, 4)
    by_endpoint = {e["endpoint"]: e for e in application["endpoints"]}
    assert by_endpoint["products"]["hits"] == 6 and by_endpoint["users"]["misses"] == 1
    # Every call is a member of the log of its own (its callId), and stats says it read them.
    logged = redis.Redis.from_url(redis_url).zcard("cache_metrics:response_times")
    times = application["response_times"]
    assert times["count"] == times["members_read"] == logged == 10


def test_the_library_hits_what_cachectl_warm_stored(
    tmp_path,
    origin,
    cache,
    redis_url,
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          params: {limit: 10}
          matrix: {id: {range: [1, 3]}}
          tags: [items]
        - {name: numbers, url: /json/numbers}
        """,
    )
    result = runner.invoke(app, ["--url", redis_url, "warm", str(path), "--json"])
    assert result.exit_code == 0, result.output
    origin_calls = []
    answer = cache.cache_api_call(
        "items", {"id": 2, "limit": 10}, lambda: origin_calls.append(1), 60
    )
    assert answer == {"id": "2", "query": {"limit": "10"}} and origin_calls == []
    assert cache.get("numbers") == {"b": 1, "a": [1e21, 1e-7, 1e20, 0, 2.5], "s": "café \u2028"}
    assert cache.invalidate_tag("items") == 3


def node_app(js_app, server, *args: str) -> dict:
    """Runs tests/js/app.js, a JavaScript application's cache code on the `redis` npm client."""
    out = subprocess.run(
        [*js_app, server.url, *args], capture_output=True, text=True, check=False, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_javascript_application_reads_what_the_library_wrote_byte_for_byte(
    js_app, cache, redis_server
):
    params = {"category": "electronics", "limit": 10}
    value = {"price": 2.0, "ratio": 1e21, "tiny": 1e-7, "name": "café", "10": "a", "2": None}
    key = cache.set("products", params, value, ttl=60)
    seen = node_app(js_app, redis_server, "read", "products", json.dumps(params))
    assert seen["key"] == key and seen["found"] and seen["same"]
    assert seen["value"] == {"2": None, "10": "a", "price": 2, "ratio": 1e21, "tiny": 1e-7,
                             "name": "café"}  # fmt: skip


def test_the_library_reads_what_a_javascript_application_wrote(js_app, cache, redis_server):
    params = {"userId": 123}
    node_app(js_app, redis_server, "write", "user_posts", json.dumps(params), '[{"id":1.5}]')
    origin_calls = []
    assert cache.cache_api_call("user_posts", params, lambda: origin_calls.append(1), 60) == [
        {"id": 1.5}
    ]
    assert origin_calls == []


def test_a_javascript_reader_of_the_response_time_log_ignores_the_call_id(
    js_app, cache, redis_server
):
    for _ in range(50):
        cache.cache_api_call("users", {"id": 1}, lambda: {"id": 1}, 60)
    cache.flush()
    seen = node_app(js_app, redis_server, "response-times")
    # Each call its own member (the callId field), read by the fields JavaScript knows.
    assert seen["members"] == 50 and seen["hits"] == 49
    assert isinstance(seen["medianMs"], (int, float))


def test_cachectl_prune_leaves_the_librarys_locks_and_live_entries(cache, redis_url):
    live = cache.set("p", {"id": 1}, 1, ttl=60, tags=["t"])
    expiring = cache.set("p", {"id": 2}, 2, ttl=0.05, tags=["t"])
    lock = f"api_cache_lock:{live}"
    conn = redis.Redis.from_url(redis_url)
    conn.set(lock, "token", px=60_000)
    while conn.exists(expiring):  # until the server says it expired, not a guessed sleep
        time.sleep(0.01)
    runner.invoke(app, ["--url", redis_url, "prune", "--yes"])
    assert conn.smembers("tag:t") == {live.encode()}
    assert conn.exists(live, lock) == 2
    conn.close()
