"""Redis Sentinel for real: a primary, a replica and two sentinels (`server --sentinel`, both
server kinds), reached from a `redis+sentinel://` URL and from the `sentinel:` settings, by the
Store, the library (sync and asyncio) and the commands; a failover forced with SENTINEL FAILOVER
is followed, and ridden out by an invalidation it lands in the middle of."""

from __future__ import annotations

import asyncio
import gc
import json
import threading
import time
import warnings

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings, load_settings
from cachectl.devserver import free_port
from cachectl.errors import ConfigError, ExitCode, RedisUnreachable
from cachectl.layout import Layout
from cachectl.library import APICache, AsyncAPICache
from cachectl.ops.invalidate import InvalidateOptions, invalidate
from cachectl.ops.selection import Filters, SelectionSpec, resolve_selection
from cachectl.store import NodeRef, Store

runner = CliRunner()
LAYOUT = Layout()


def node_of(server) -> NodeRef:
    return NodeRef(server.host, server.port)


def test_the_store_writes_to_the_primary_the_sentinels_name(redis_sentinel, sentinel_url):
    url = redis_sentinel.url(db=2)
    with Store(Settings(url=url)) as store:
        store.execute("SET", "api_cache:a:no_params", "1")
        assert store.is_sentinel
        primary = redis_sentinel.current_primary()
        assert store.primaries() == [node_of(primary)]
    with primary.client(db=2) as conn:
        assert conn.get("api_cache:a:no_params") == b"1"
        conn.wait(1, 5000)
    with redis_sentinel.replicas_now()[0].client(db=2) as conn:
        assert conn.get("api_cache:a:no_params") == b"1"


def test_the_settings_name_the_sentinels_and_the_url_the_database(redis_sentinel, sentinel_url):
    hosts = ",".join(f"{s.host}:{s.port}" for s in redis_sentinel.sentinels)
    env = {
        "CACHECTL_URL": "redis://unused.invalid:1/3",
        "CACHECTL_SENTINEL_HOSTS": hosts,
        "CACHECTL_SENTINEL_SERVICE": redis_sentinel.service,
    }
    settings = load_settings(env=env)
    with Store(settings) as store:
        store.execute("SET", "k", "v")
    with redis_sentinel.current_primary().client(db=3) as conn:
        assert conn.get("k") == b"v"


def test_a_failover_is_followed_to_the_new_primary(redis_sentinel, sentinel_url):
    with Store(Settings(url=sentinel_url)) as store:
        store.execute("SET", "before", "1")
        before = store.epoch()
        new = redis_sentinel.failover()
        store.execute("SET", "after", "1")
        assert store.primaries() == [node_of(new)]
        assert store.epoch() != before  # a run that spans it makes another pass
    with new.client() as conn:
        assert conn.get("before") == b"1" and conn.get("after") == b"1"


def test_sentinels_that_do_not_answer_are_one_line_exit_4(redis_sentinel):
    url = f"redis+sentinel://:pw-s3cret@127.0.0.1:{free_port()}/mymaster/0"
    store = Store(Settings(url=url, retries=0, connect_timeout=0.5))
    with store, pytest.raises(RedisUnreachable) as caught:
        store.execute("PING")
    error = caught.value
    assert error.exit_code == 4
    assert "\n" not in error.message and "pw-s3cret" not in json.dumps(error.to_dict())


def test_a_service_the_sentinels_do_not_watch_is_an_error(redis_sentinel):
    hosts = ",".join(f"{s.host}:{s.port}" for s in redis_sentinel.sentinels)
    store = Store(Settings(url=f"redis+sentinel://{hosts}/nosuch/0", retries=0))
    with store, pytest.raises(RedisUnreachable) as caught:
        store.execute("PING")
    assert "nosuch" in caught.value.message


def test_cluster_mode_on_with_sentinel_is_a_config_error(sentinel_url):
    with pytest.raises(ConfigError, match="Sentinel"):
        Store(Settings(url=sentinel_url, cluster=True)).execute("PING")


def test_doctor_shows_the_sentinels_the_primary_and_its_replicas(redis_sentinel, sentinel_url):
    result = runner.invoke(app, ["--url", sentinel_url, "doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["mode"] == "sentinel"
    view = data["sentinel"]
    primary = redis_sentinel.current_primary()
    assert view["service"] == redis_sentinel.service
    assert view["primary"]["address"] == f"{primary.host}:{primary.port}"
    assert [r["address"] for r in view["replicas"]] == [
        f"{r.host}:{r.port}" for r in redis_sentinel.replicas_now()
    ]
    assert {s["address"] for s in view["sentinels"]} == {
        f"{s.host}:{s.port}" for s in redis_sentinel.sentinels
    }
    assert all(s["ok"] for s in view["sentinels"])

    shown = runner.invoke(app, ["--url", sentinel_url, "doctor"])
    assert shown.exit_code == 0, shown.output
    assert "Sentinel (service mymaster)" in shown.stdout
    assert f"{primary.host}:{primary.port}" in shown.stdout


def test_doctor_with_no_sentinel_answering_names_them_and_exits_4():
    port = free_port()
    url = f"redis+sentinel://:pw-s3cret@127.0.0.1:{port}/mymaster/0"
    result = runner.invoke(
        app,
        ["--url", url, "doctor", "--json"],
        env={"CACHECTL_RETRIES": "0", "CACHECTL_CONNECT_TIMEOUT": "0.5"},
    )
    assert result.exit_code == ExitCode.REDIS, result.output
    assert "pw-s3cret" not in result.output
    view = json.loads(result.stdout)["data"]["sentinel"]
    assert view["sentinels"][0]["address"] == f"127.0.0.1:{port}"
    assert view["sentinels"][0]["ok"] is False and view["primary"] is None


def test_commands_take_the_sentinel_url(redis_sentinel, sentinel_url):
    with redis_sentinel.current_primary().client() as conn:
        conn.set(LAYOUT.entry("users", {"id": 1}), "{}")
    result = runner.invoke(app, ["--url", sentinel_url, "keys", "--json"])
    assert result.exit_code == 0, result.output
    assert LAYOUT.entry("users", {"id": 1}) in result.stdout


def test_the_library_connects_through_the_sentinels(redis_sentinel, sentinel_url):
    with APICache(sentinel_url) as cache:
        cache.set("users", {"id": 1}, {"name": "a"}, ttl=60)
        assert cache.get("users", {"id": 1}) == {"name": "a"}

    async def main():
        cache = AsyncAPICache(sentinel_url)
        try:
            await cache.set("users", {"id": 2}, {"name": "b"}, ttl=60)
            return await cache.get("users", {"id": 2})
        finally:
            await cache.aclose()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert asyncio.run(main()) == {"name": "b"}
        gc.collect()
    # aclose closed the connections to the sentinels too, not only the primary's
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    with redis_sentinel.current_primary().client() as conn:
        assert conn.exists(LAYOUT.entry("users", {"id": 1}), LAYOUT.entry("users", {"id": 2})) == 2


def test_an_invalidation_rides_out_a_failover_and_misses_nothing(redis_sentinel, sentinel_url):
    primary = redis_sentinel.current_primary()
    with primary.client() as conn:
        pipe = conn.pipeline(transaction=False)
        for i in range(4000):
            pipe.set(LAYOUT.entry("k", {"id": i}), "v")
        for i in range(1000):
            pipe.set(LAYOUT.entry("other", {"id": i}), "v")
        pipe.execute()
        conn.wait(1, 10000)
    selection = resolve_selection(LAYOUT, SelectionSpec(patterns=["api_cache:k:*"]))
    box: dict = {}
    with Store(Settings(url=sentinel_url, retries=12)) as store:
        options = InvalidateOptions(batch_size=50, scan_count=50, rate=1000)
        thread = threading.Thread(
            target=lambda: box.setdefault(
                "result", invalidate(store, selection, Filters(), options)
            )
        )
        thread.start()
        keys = [LAYOUT.entry("k", {"id": i}) for i in range(4000)]
        deadline = time.monotonic() + 30
        with primary.client() as conn:
            while conn.exists(*keys) == 4000:
                assert time.monotonic() < deadline, "the run never started deleting"
                time.sleep(0.02)
        # Mid-run, and without waiting for the old primary to be demoted: until the sentinels
        # reconfigure it, what the run deletes there is lost, and a second pass finds it.
        new = redis_sentinel.failover(demoted=False)
        assert thread.is_alive(), f"done before the failover: {box}"
        thread.join(timeout=120)
    result = box["result"]
    assert result.failure is None, result.failure
    assert redis_sentinel.current_primary() is new
    with new.client() as conn:
        assert list(conn.scan_iter("api_cache:k:*", count=1000)) == []
        assert len(list(conn.scan_iter("api_cache:other:*", count=1000))) == 1000
    assert any("restarted" in note or "failed over" in note for note in result.notes)


@pytest.fixture(scope="module")
def guarded_sentinel(server_kind):
    """Servers with a password and a sentinel with its own."""
    from cachectl.devserver import RedisSentinelGroup
    from tests.conftest import server_binary

    binary = server_binary(server_kind)
    with RedisSentinelGroup(
        binary=binary, password="server-s3cret", sentinel_password="sentinel-s3cret"
    ) as group:
        yield group


def test_passwords_for_the_servers_and_the_sentinels(guarded_sentinel):
    hosts = ",".join(f"{s.host}:{s.port}" for s in guarded_sentinel.sentinels)
    url = f"redis+sentinel://:server-s3cret@{hosts}/mymaster/0"
    env = {"CACHECTL_URL": url, "CACHECTL_SENTINEL_PASSWORD": "sentinel-s3cret"}
    with Store(load_settings(env=env)) as store:
        store.execute("SET", "k", "v")
        assert store.execute("GET", "k") == b"v"

    # The sentinels' password missing: they refuse, and neither password is shown.
    result = runner.invoke(app, ["doctor", "--json"], env={"CACHECTL_URL": url})
    assert result.exit_code == ExitCode.REDIS, result.output
    assert "s3cret" not in result.output
    view = json.loads(result.stdout)["data"]["sentinel"]
    assert view["sentinels"][0]["ok"] is False
    assert "auth" in view["sentinels"][0]["error"].lower()

    # The servers' password wrong: refused, not shown.
    wrong = url.replace("server-s3cret", "wrong-s3cret")
    env = {"CACHECTL_URL": wrong, "CACHECTL_SENTINEL_PASSWORD": "sentinel-s3cret"}
    result = runner.invoke(app, ["keys", "--json"], env=env)
    assert result.exit_code == ExitCode.REDIS, result.output
    assert json.loads(result.stdout)["error"]["code"] == "redis.auth"
    assert "s3cret" not in result.output

    shown = runner.invoke(app, ["doctor"], env={**env, "CACHECTL_URL": url})
    assert shown.exit_code == 0, shown.output
    assert "s3cret" not in shown.output and "sentinel.password" in shown.output


def scans_on(server) -> int:
    with server.client(decode_responses=True) as conn:
        return int(conn.info("commandstats").get("cmdstat_scan", {}).get("calls", 0))


@pytest.mark.parametrize(
    "argv", [["keys", "--json"], ["memory", "--json"], ["stats", "--json"]], ids=str
)
def test_replica_reads_go_to_a_replica_and_not_the_primary(redis_sentinel, sentinel_url, argv):
    primary = redis_sentinel.current_primary()
    with primary.client() as conn:
        conn.set(LAYOUT.entry("users", {"id": 1}), "{}")
        conn.hset(LAYOUT.hits_endpoint("users")[0], mapping={"hits": 3, "misses": 1})
        conn.wait(1, 5000)
    (replica,) = redis_sentinel.replicas_now()
    for server in (primary, replica):
        with server.client() as conn:
            conn.config_resetstat()
    result = runner.invoke(app, ["--url", sentinel_url, *argv, "--replica"])
    assert result.exit_code == 0, result.output
    assert scans_on(replica) > 0 and scans_on(primary) == 0
    if argv[0] == "keys":
        assert LAYOUT.entry("users", {"id": 1}) in result.stdout


def test_replica_needs_sentinel_and_reads_only(redis_url, sentinel_url):
    result = runner.invoke(app, ["--url", redis_url, "keys", "--replica"])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "Sentinel" in result.output
    result = runner.invoke(
        app,
        ["--url", sentinel_url, "stats", "--every", "1s", "--record", "--replica", "--rounds", "1"],
    )
    assert result.exit_code == ExitCode.USAGE, result.output


def test_a_warm_run_rides_out_a_failover_and_every_entry_is_on_the_new_primary(
    redis_sentinel, sentinel_url, origin, tmp_path
):
    from cachectl.manifest import Plan, load_manifests
    from cachectl.ops.warm import WarmOptions, warm

    path = tmp_path / "warm.yaml"
    path.write_text(
        "version: 1\n"
        f"defaults: {{base_url: {origin.url}, ttl: 10m, retries: 1}}\n"
        "endpoints:\n"
        "  - {name: items, url: '/items/{id}', matrix: {id: {range: [1, 2000]}}, tags: [items]}\n"
    )
    settings = Settings(url=sentinel_url, retries=12)
    plan = Plan(load_manifests([path], env={}), Layout(settings.layout))
    primary = redis_sentinel.current_primary()
    box: dict = {}
    with Store(settings) as store:
        options = WarmOptions(rate=400, concurrency=4)
        thread = threading.Thread(
            target=lambda: box.setdefault("result", warm(store, plan, options))
        )
        thread.start()
        deadline = time.monotonic() + 30
        with primary.client() as conn:
            while conn.dbsize() < 200:
                assert time.monotonic() < deadline, "the run never started writing"
                time.sleep(0.02)
        # Writes that reach the old primary until the sentinels demote it are lost with it.
        new = redis_sentinel.failover(demoted=False)
        assert thread.is_alive(), f"done before the failover: {box}"
        thread.join(timeout=120)
    result = box["result"]
    assert result.problem() is None, result.problem()
    assert result.stored == 2000 and result.rewritten > 0
    keys = [LAYOUT.entry("items", {"id": i}) for i in range(1, 2001)]
    with new.client() as conn:
        assert conn.exists(*keys) == 2000
        assert conn.scard(LAYOUT.tag("items")) == 2000
