"""`warm` against a real HTTP origin (slow, failing, flaky, non-JSON) and real Redis servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cachectl.config import Settings
from cachectl.errors import ExitCode, RedisPermissionError, RedisUnreachable
from cachectl.layout import Layout
from cachectl.manifest import Plan, load_manifests
from cachectl.ops.warm import FailureLimit, WarmOptions, warm, warm_every
from cachectl.ops.warm_write import INDEX_TTL_MARGIN_MS
from cachectl.store import Store

TTL_MS = 600_000


def manifest(tmp_path: Path, origin, endpoints: str, defaults: str = "") -> Path:
    path = tmp_path / "warm.yaml"
    path.write_text(
        "version: 1\n"
        f"defaults:\n  base_url: {origin.url}\n  ttl: 10m\n  retries: 1\n"
        + textwrap.indent(textwrap.dedent(defaults), "  ")
        + "endpoints:\n"
        + textwrap.indent(textwrap.dedent(endpoints), "  ")
    )
    return path


def run(url: str, path: Path, *, retries: int = 1, env=None, **options):
    settings = Settings(url=url, retries=retries, timeout=2.0, connect_timeout=1.0)
    plan = Plan(load_manifests([path], env=env or {}), Layout(settings.layout))
    with Store(settings) as store:
        return warm(store, plan, WarmOptions(**options))


@pytest.fixture(params=["single", "cluster"])
def any_url(request) -> str:
    return request.getfixturevalue("redis_url" if request.param == "single" else "cluster_url")


def client_for(url: str):
    import redis

    from cachectl.store import Store

    with Store(Settings(url=url)) as store:
        cluster = store.is_cluster
    return redis.RedisCluster.from_url(url) if cluster else redis.Redis.from_url(url)


def test_entries_are_stored_with_ttl_tags_dependencies_and_write_log(tmp_path, origin, any_url):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          params: {limit: 10}
          matrix: {id: {range: [1, 30]}}
          tags: [items, "item_{id}"]
          depends_on: ["cat_{id}"]
        """,
    )
    before_ms = int(time.time() * 1000)  # the log holds whole milliseconds, as JS Date.now()
    result = run(any_url, path)
    assert (result.planned, result.requested, result.stored, result.failed_total) == (30, 30, 30, 0)
    assert result.problem() is None
    conn = client_for(any_url)
    key = "api_cache:items:id:7|limit:10"
    assert conn.get(key) == b'{"id":"7","query":{"limit":"10"}}'
    entry_ttl = conn.pttl(key)
    assert TTL_MS - 60_000 < entry_ttl <= TTL_MS
    assert len(conn.smembers("tag:items")) == 30
    assert conn.smembers("tag:item_7") == {key.encode()}
    assert conn.smembers("depends_on:cat_7") == {key.encode()}
    for index_key in ("tag:items", "tag:item_7", "depends_on:cat_7"):
        assert conn.pttl(index_key) > entry_ttl + 500  # a set never expires before its members
    assert conn.zcard("cache_entries") == 30
    assert conn.zscore("cache_entries", key) >= before_ms


def test_what_is_stored_is_what_json_stringify_writes(tmp_path, origin, redis_url, redis_server):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: numbers, url: /json/numbers}
        - {name: keys, url: /json/keys}
        - {name: bom, url: /json/bom}
        """,
    )
    result = run(redis_url, path)
    assert result.stored == 3
    with redis_server.client() as conn:
        assert conn.get("api_cache:numbers:no_params") == (
            '{"b":1,"a":[1e+21,1e-7,100000000000000000000,0,2.5],"s":"café \u2028"}'.encode()
        )
        assert conn.get("api_cache:keys:no_params") == b'{"2":"two","10":"ten","z":1,"a":2}'
        assert conn.get("api_cache:bom:no_params") == b'{"ok":true}'


def test_a_javascript_application_finds_the_entry_byte_for_byte(
    tmp_path, origin, redis_url, redis_server, js_app
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: products
          url: /items/p
          params: {category: electronics, limit: 10}
        - {name: numbers, url: /json/numbers}
        """,
    )
    assert run(redis_url, path).stored == 2

    def ask(endpoint: str, params: dict) -> dict:
        # tests/js/app.js: an application's own key code and JSON.parse, on the redis npm client.
        out = subprocess.run(
            [*js_app, redis_server.url, "read", endpoint, json.dumps(params)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    products = ask("products", {"category": "electronics", "limit": 10})
    assert products["found"] and products["same"]
    assert products["key"] == 'api_cache:products:category:"electronics"|limit:10'
    assert products["value"]["query"] == {"category": "electronics", "limit": "10"}
    numbers = ask("numbers", {})
    assert numbers["found"] and numbers["same"]
    # limit "10" (a string) is another entry, which nobody warmed.
    assert ask("products", {"category": "electronics", "limit": "10"})["found"] is False


def test_failures_are_retried_as_configured_reported_and_never_cached(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: error, url: /status/500/a, retries: 2}
        - {name: notfound, url: /status/404/a, retries: 2}
        - {name: garbage, url: /garbage/a, retries: 2}
        - {name: broken, url: /broken/a, retries: 2}
        - {name: slow, url: "/slow/a?delay=3", timeout: 300ms, retries: 1}
        - {name: refused, url: "http://127.0.0.1:9/x", retries: 1}
        - {name: fine, url: /items/ok}
        """,
    )
    result = run(redis_url, path, report_path=str(tmp_path / "report.json"))
    assert result.stored == 1
    assert dict(result.failed) == {
        "http_500": 1, "http_404": 1, "not_json": 1, "bad_answer": 1, "timeout": 1, "connect": 1,
    }  # fmt: skip
    assert origin.hits("/status/500/a") == 3  # 1 + 2 retries
    assert origin.hits("/status/404/a") == 1  # a 404 will not change: not retried
    assert origin.hits("/garbage/a") == 3
    assert origin.hits("/broken/a") == 3
    assert origin.hits("/slow/a") == 2
    with redis_server.client() as conn:
        assert conn.keys("api_cache:*") == [b"api_cache:fine:no_params"]
    report = json.loads((tmp_path / "report.json").read_text())
    by_endpoint = {r["endpoint"]: r for r in report["requests"]}
    assert by_endpoint["error"] == {
        "endpoint": "error", "key": "api_cache:error:no_params", "method": "GET",
        "url": f"{origin.url}/status/500/a", "outcome": "failed", "reason": "http_500",
        "status": 500, "latency_ms": by_endpoint["error"]["latency_ms"], "bytes": 15,
        "attempts": 3, "error": "HTTP 500 Internal Server Error",
    }  # fmt: skip
    assert by_endpoint["slow"]["error"] == "no answer within 0.3s"
    assert by_endpoint["fine"]["outcome"] == "stored"
    assert report["summary"]["failed"]["total"] == 6
    # Beyond --max-failures (0 by default) the exit code says partial failure.
    assert result.problem().exit_code == ExitCode.PARTIAL


def test_max_failures_as_a_count_or_a_share(tmp_path, origin, redis_url):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: error, url: /status/500/b, retries: 0}
        - name: fine
          url: /items/{id}
          matrix: {id: {range: [1, 9]}}
        """,
    )
    assert run(redis_url, path, max_failures=FailureLimit.parse("1")).problem() is None
    assert run(redis_url, path, max_failures=FailureLimit.parse("10%")).problem() is None
    assert (
        run(redis_url, path, max_failures=FailureLimit.parse("9.9%")).problem().exit_code
        == ExitCode.PARTIAL
    )


def test_a_flaky_origin_is_retried_until_it_answers_and_retry_after_is_honoured(
    tmp_path, origin, redis_url
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: flaky, url: "/flaky/1?fail=2", retries: 2}
        - {name: limited, url: /ratelimited/1, retries: 1}
        """,
    )
    result = run(redis_url, path)
    assert result.stored == 2 and result.attempts == 3 + 2
    first, second = origin.times("/ratelimited/1")
    assert second - first >= 0.9  # Retry-After: 1, while the backoff alone waits at most 0.2 s


def test_cache_if_decides_what_is_worth_caching(tmp_path, origin, redis_url, redis_server):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: empty_list, url: /empty/list, cache_if: non_empty}
        - {name: empty_object, url: /empty/object, cache_if: non_empty}
        - {name: nothing, url: /empty/null, cache_if: non_empty}
        - {name: full, url: /empty/full, cache_if: non_empty}
        - {name: kept_empty, url: /empty/list}
        - {name: only_201, url: /items/x, cache_if: [201]}
        - {name: is_201, url: /status/201/x, cache_if: [201]}
        """,
    )
    result = run(redis_url, path)
    assert dict(result.skipped) == {"empty": 3, "cache_if": 1}
    with redis_server.client() as conn:
        assert sorted(conn.keys("api_cache:*")) == [
            b"api_cache:full:no_params", b"api_cache:is_201:no_params", b"api_cache:kept_empty:no_params",
        ]  # fmt: skip


def test_a_fallback_answers_in_the_report_but_is_never_cached(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: detail
          url: /status/503/{id}
          fallback_url: /items/fb-{id}
          matrix: {id: [1]}
          retries: 0
        """,
    )
    result = run(redis_url, path)
    assert result.stored == 0 and result.fallback_answers == 1
    failure = result.failures[0]
    assert failure["reason"] == "http_503"
    assert failure["fallback"]["status"] == 200
    assert failure["fallback"]["answer"] == {"id": "fb-1", "query": {}}
    with redis_server.client() as conn:
        assert conn.dbsize() == 0


def test_post_sends_its_body_and_headers_and_the_answer_is_cached(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: search
          url: /echo
          method: POST
          body: {query: "*"}
          params: {page: 1}
          headers: {Authorization: "Bearer ${TOKEN}", X-Tenant: acme}
        """,
    )
    assert run(redis_url, path, env={"TOKEN": "tok-123456"}).stored == 1
    with redis_server.client() as conn:
        echoed = json.loads(conn.get("api_cache:search:page:1"))
    assert echoed["method"] == "POST"
    assert echoed["body"] == '{"query":"*"}'
    assert echoed["query"] == {"page": "1"}
    assert echoed["headers"]["Authorization"] == "Bearer tok-123456"
    assert echoed["headers"]["X-Tenant"] == "acme"


def test_only_missing_and_refresh_below_skip_what_is_fresh(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          matrix: {id: [cached, expiring, fresh, persistent, missing]}
        """,
    )
    with redis_server.client() as conn:
        conn.set('api_cache:items:id:"cached"', "old", px=3_600_000)
        conn.set('api_cache:items:id:"expiring"', "old", px=5_000)
        conn.set('api_cache:items:id:"fresh"', "old", px=3_600_000)
        conn.set('api_cache:items:id:"persistent"', "old")
    missing = run(redis_url, path, only_missing=True)
    assert (missing.stored, dict(missing.skipped)) == (1, {"cached": 4})
    assert origin.hits("/items/missing") == 1 and origin.hits("/items/cached") == 0

    origin.reset()
    refresh = run(redis_url, path, refresh_below_seconds=60)
    assert refresh.stored == 1 and dict(refresh.skipped) == {"fresh": 4}
    assert origin.hits("/items/expiring") == 1
    with redis_server.client() as conn:
        assert conn.get('api_cache:items:id:"expiring"') != b"old"
        assert conn.get('api_cache:items:id:"fresh"') == b"old"


def test_a_dry_run_fetches_and_writes_nothing(tmp_path, origin, redis_url, redis_server):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          matrix: {id: {range: [1, 5]}}
        """,
    )
    result = run(redis_url, path, dry_run=True, report_path=str(tmp_path / "plan.json"))
    assert (result.planned, result.would_request, result.requested, result.stored) == (5, 5, 0, 0)
    assert origin.requests == []
    with redis_server.client() as conn:
        assert conn.dbsize() == 0
    report = json.loads((tmp_path / "plan.json").read_text())
    assert [r["outcome"] for r in report["requests"]] == ["would_request"] * 5


def test_from_access_log_warms_the_most_recently_hit_entries_of_the_manifest(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: items, url: "/items/{id}", tags: ["item_{id}"], matrix: {id: [1]}}
        - {name: products, url: /items/p}
        """,
    )
    layout = Layout()
    with redis_server.client() as conn:
        conn.zadd("cache_access", {
            layout.entry("items", {"id": 1}): 1000,
            layout.entry("items", {"id": 2}): 3000,
            layout.entry("items", {"id": 3, "extra": True}): 2000,
            layout.entry("items", {"name": "x"}): 5000,  # cannot fill /items/{id}
            layout.entry("other", {"id": 9}): 4000,  # not an endpoint of the manifest
            layout.entry("products", {}): 500,
        })  # fmt: skip
    result = run(redis_url, path, from_access_log_top=2)
    assert result.access_log.selected == 2
    assert dict(result.access_log.ignored) == {"params_do_not_fit": 1, "other_endpoint": 1}
    assert result.stored == 2
    assert [p for _, p, _, _ in origin.requests] == ["/items/2", "/items/3?extra=true"] or sorted(
        p for _, p, _, _ in origin.requests
    ) == ["/items/2", "/items/3?extra=true"]
    with redis_server.client() as conn:
        assert conn.smembers("tag:item_3") == {
            layout.entry("items", {"id": 3, "extra": True}).encode()
        }


def test_set_ttls_only_ever_grow_and_a_set_kept_forever_stays_so(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: a, url: /items/a, tags: [longer, shorter, forever, new]}
        """,
    )
    with redis_server.client() as conn:
        conn.sadd("tag:longer", "x")
        conn.pexpire("tag:longer", 3 * TTL_MS)
        conn.sadd("tag:shorter", "x")
        conn.pexpire("tag:shorter", 1000)
        conn.sadd("tag:forever", "x")
    assert run(redis_url, path).stored == 1
    with redis_server.client() as conn:
        entry_ttl = conn.pttl("api_cache:a:no_params")
        assert conn.pttl("tag:longer") > 2 * TTL_MS
        assert entry_ttl < conn.pttl("tag:shorter") <= TTL_MS + INDEX_TTL_MARGIN_MS
        assert conn.pttl("tag:forever") == -1
        assert entry_ttl < conn.pttl("tag:new") <= TTL_MS + INDEX_TTL_MARGIN_MS
        assert conn.scard("tag:forever") == 2


def test_an_index_key_of_the_wrong_type_keeps_its_entry_out(tmp_path, origin, any_url):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: a, url: /items/a, tags: [broken]}
        - {name: b, url: /items/b, tags: [fine]}
        """,
    )
    conn = client_for(any_url)
    conn.set("tag:broken", "a string")
    result = run(any_url, path)
    assert result.stored == 1 and dict(result.failed) == {"wrong_type": 1}
    assert "tag:broken holds a string, not a set" in result.failures[0]["error"]
    assert conn.exists("api_cache:a:no_params") == 0
    assert conn.zscore("cache_entries", "api_cache:a:no_params") is None
    assert conn.exists("api_cache:b:no_params") == 1


def test_per_endpoint_concurrency_is_held(tmp_path, origin, redis_url):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: gauged
          url: "/gauge/{id}?delay=0.2"
          matrix: {id: {range: [1, 8]}}
          concurrency: 2
        """,
    )
    result = run(redis_url, path, concurrency=8)
    assert result.stored == 8
    assert origin.max_in_flight["gauge"] == 2


def test_rate_spaces_the_requests(tmp_path, origin, redis_url):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          matrix: {id: {range: [1, 6]}}
        """,
    )
    assert run(redis_url, path, rate=10, concurrency=6).stored == 6
    times = sorted(
        origin.times("/items/1") + [t for i in range(2, 7) for t in origin.times(f"/items/{i}")]
    )
    assert times[-1] - times[0] >= 0.45  # 6 requests 0.1 s apart


def test_redis_lost_for_a_moment_is_ridden_out(tmp_path, origin, make_redis):
    server = make_redis()
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: "/slow/{id}?delay=0.05"
          matrix: {id: {range: [1, 60]}}
        """,
    )
    settings = Settings(url=server.url, retries=3, timeout=1.0, connect_timeout=0.5)
    plan = Plan(load_manifests([path], env={}), Layout())
    state = {"killed": False}

    def on_progress(progress):
        if progress.stored >= 10 and not state["killed"]:
            state["killed"] = True
            server.kill()
            threading.Timer(1.0, server.restart).start()

    with Store(settings) as store:
        result = warm(store, plan, WarmOptions(concurrency=4), on_progress=on_progress)
    assert state["killed"]
    assert result.error is None and result.failed_total == 0
    assert result.stored == 60
    # The restarted server (no persistence) lost what was written before the kill; the run saw
    # the run_id change and wrote again what it had written in the last HOLD_SECONDS (here the
    # whole run), so it holds every entry.
    assert result.rewritten > 0
    with server.client() as conn:
        assert conn.zcard("cache_entries") == 60


def test_redis_that_stays_down_stops_the_run_with_a_report_of_what_was_stored(
    tmp_path, origin, make_redis
):
    server = make_redis()
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: "/slow/{id}?delay=0.05"
          matrix: {id: {range: [1, 200]}}
        """,
    )
    settings = Settings(url=server.url, retries=1, timeout=1.0, connect_timeout=0.5)
    plan = Plan(load_manifests([path], env={}), Layout())
    stored_at_kill = {}

    def on_progress(progress):
        if progress.stored >= 10 and not stored_at_kill:
            stored_at_kill["n"] = progress.stored
            server.kill()

    report = tmp_path / "report.json"
    with Store(settings) as store:
        result = warm(
            store,
            plan,
            WarmOptions(concurrency=4, report_path=str(report)),
            on_progress=on_progress,
        )
    assert result.stopped == "redis"
    assert isinstance(result.error, RedisUnreachable)
    assert result.problem().exit_code == ExitCode.REDIS
    assert stored_at_kill["n"] <= result.stored < 200
    assert result.failed["redis"] >= 1
    assert result.stored + result.failed_total + result.interrupted + result.not_attempted == 200
    summary = json.loads(report.read_text())["summary"]
    assert summary["stored"] == result.stored and summary["stopped"] == "redis"


def test_an_acl_user_that_may_not_write_stops_the_run_at_once(tmp_path, origin, acl_redis, acl_url):
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          matrix: {id: {range: [1, 50]}}
        """,
    )
    result = run(acl_redis.url_for("reader", "reader-pass"), path, concurrency=2)
    assert isinstance(result.error, RedisPermissionError)
    assert "reader" in result.error.message
    assert result.stored == 0
    assert result.problem().exit_code == ExitCode.REDIS
    assert result.requested < 50  # it stopped rather than fetching everything


def test_redis_unreachable_at_the_start_fails_before_fetching(tmp_path, origin):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = manifest(tmp_path, origin, "- {name: a, url: /items/a}\n")
    with pytest.raises(RedisUnreachable):
        run(f"redis://127.0.0.1:{port}/0", path, retries=0)
    assert origin.requests == []


def test_every_repeats_rounds_until_stopped(tmp_path, origin, redis_url):
    path = manifest(tmp_path, origin, "- {name: a, url: /items/a}\n")
    rounds = []

    def sleep(seconds):
        if len(rounds) == 3:
            raise KeyboardInterrupt

    settings = Settings(url=redis_url, retries=1)
    plan = Plan(load_manifests([path], env={}), Layout())
    with Store(settings) as store:
        loop = warm_every(store, plan, WarmOptions(), 0.01, on_round=rounds.append, sleep=sleep)
    assert [r.round for r in rounds] == [1, 2, 3]
    assert loop.last is rounds[-1] and loop.problem() is None
    assert origin.hits("/items/a") == 3


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_while_a_round_is_reported_ends_the_loop_after_the_whole_report(
    tmp_path, origin, redis_url, stop
):
    """The round is done once warm() returns: Ctrl-C or SIGTERM landing while its report is
    written (a busy box can pause the process there for long) waits for the report to be out and
    ends the loop cleanly, as a stop between rounds does; it is not an interrupted run (130)."""
    path = manifest(tmp_path, origin, "- {name: a, url: /items/a}\n")
    events = []

    def on_round(result):
        events.append(("report starts", result.round))
        if result.round == 2:
            os.kill(os.getpid(), stop)
            time.sleep(0.05)  # the handler runs here, between two bytecodes
        events.append(("report ends", result.round))

    def sleep(seconds):
        events.append("sleep")

    settings = Settings(url=redis_url, retries=1)
    plan = Plan(load_manifests([path], env={}), Layout())
    with Store(settings) as store:
        loop = warm_every(
            store, plan, WarmOptions(), 0.01, on_round=on_round,
            on_notice=events.append, sleep=sleep,
        )  # fmt: skip
    assert events == [
        ("report starts", 1), ("report ends", 1), "sleep",
        ("report starts", 2), ("report ends", 2),
    ]  # fmt: skip
    assert loop.last.round == 2 and loop.last.stopped is None and loop.problem() is None
    assert origin.hits("/items/a") == 2


def test_every_goes_on_after_a_failed_round_and_the_loop_still_fails(tmp_path, origin, redis_url):
    """A round over --max-failures does not end the loop, nor does a later good round clear it:
    the loop's problem names the failed rounds (exit 6). Said at the start and the end of the
    run of failed rounds, each after its round."""
    path = manifest(
        tmp_path, origin, "- {name: f, url: '/flaky/{id}?fail=4', matrix: {id: [1, 2]}}\n"
    )  # retries: 1
    events = []

    def sleep(seconds):
        if len(events) == 4 + 2:  # four rounds and two notices
            raise KeyboardInterrupt

    settings = Settings(url=redis_url, retries=0)
    plan = Plan(load_manifests([path], env={}), Layout())
    with Store(settings) as store:
        loop = warm_every(
            store, plan, WarmOptions(), 0.01, on_round=lambda r: events.append(r.round),
            on_notice=events.append, sleep=sleep,
        )  # fmt: skip
    first = (
        "round 1 failed: 2 of 2 requests failed, more than --max-failures 0 allows (the loop "
        "goes on; failed rounds are counted and the loop will exit 6)"
    )
    assert events == [1, first, 2, 3, "round 3 went well after 2 failed rounds", 4]
    problem = loop.problem()
    assert loop.last.round == 4 and loop.last.problem() is None
    assert problem.exit_code == ExitCode.PARTIAL
    assert problem.message.startswith("2 of 4 rounds failed (last error: 2 of 2 requests failed")
    assert problem.details == {"failed_rounds": 2, "rounds": 4}


def test_redis_full_under_noeviction_stops_the_run_with_partial_failure(
    tmp_path, origin, make_redis, monkeypatch
):
    """maxmemory reached under noeviction: the first refused write stops the run as a read-only
    replica or an ACL refusal does. In-flight requests end, no new one starts (so the origin sees
    at most about `concurrency` more requests after the refusal), the result says why, exit 6."""
    from cachectl.ops import warm_write

    server = make_redis()
    with server.client() as conn:
        used = conn.info("memory")["used_memory"]
        conn.config_set("maxmemory-policy", "noeviction")
        conn.config_set("maxmemory", used + 1_000_000)  # room for some thousands of entries
    path = manifest(
        tmp_path,
        origin,
        """\
        - name: items
          url: /items/{id}
          matrix: {id: {range: [1, 20000]}}
          tags: ["item_{id}"]
        """,
    )
    seen_at_refusal: list[int] = []
    write = warm_write.EntryWriter.write

    def watched(self, items):
        results = write(self, items)
        if not seen_at_refusal and any(
            e is not None and "maxmemory" in e.message for _, e in results
        ):
            seen_at_refusal.append(len(origin.requests))
        return results

    monkeypatch.setattr(warm_write.EntryWriter, "write", watched)
    concurrency = 4
    result = run(server.url, path, concurrency=concurrency)
    assert seen_at_refusal, "Redis never refused a write: maxmemory too high for the test"
    assert result.error is not None and result.error.code == "redis.oom"
    problem = result.problem()
    assert problem.exit_code == ExitCode.PARTIAL
    assert "maxmemory" in problem.message and "stored" in problem.message
    assert result.stopped == "redis"
    assert 0 < result.stored < 20000
    # The requests answered in the refused batch and those already on their way are all that
    # follow the refusal: no new request starts once it is known.
    assert len(origin.requests) - seen_at_refusal[0] <= 2 * concurrency
    accounted = result.stored + result.failed_total + result.interrupted + result.not_attempted
    assert accounted == 20000
    assert all("Redis was lost" not in (f["error"] or "") for f in result.failures)
