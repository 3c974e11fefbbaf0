"""A Redis Cluster reached the hard ways: by an ACL user refused INFO, with cluster mode forced
the wrong way, and with a primary down. Each must cover the whole cluster or say plainly that
it does not, naming the node at fault."""

from __future__ import annotations

import json

import pytest
from redis.crc import key_slot
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.config import Settings
from cachectl.devserver import CLUSTER_SLOTS, RedisCluster
from cachectl.errors import ExitCode, RedisPermissionError
from cachectl.layout import Layout
from cachectl.store import Store

pytestmark = pytest.mark.cluster

runner = CliRunner()
LAYOUT = Layout()
ENTRIES = 300
# An application user as ops hand them out: every command but the dangerous ones (INFO among
# them, on Redis 7.0); and one refused every way cachectl has of telling a cluster node.
NO_DANGEROUS = ("nodanger", "nodanger-pass", "~* &* +@all -@dangerous")
BLIND = ("blind", "blind-pass", "~* &* +@all -@dangerous -cluster|myid -cluster|info -readonly")


def invoke(url: str, *args: str):
    return runner.invoke(app, ["--url", url, "--connect-timeout", "2", *args])


def fill(client) -> list[str]:
    """ENTRIES entries spread over every slot range, each tagged `all` and `by{i % 10}`."""
    keys = [LAYOUT.entry("items", {"id": i}) for i in range(ENTRIES)]
    for start in range(0, ENTRIES, 100):
        client.mset_nonatomic({key: "{}" for key in keys[start : start + 100]})
    for i, key in enumerate(keys):
        client.sadd(LAYOUT.tag(f"by{i % 10}"), key)
    return keys


def url_for(node, user: tuple[str, str, str]) -> str:
    name, password, _ = user
    return f"redis://{name}:{password}@{node.host}:{node.port}/0"


@pytest.fixture
def cluster_users(redis_cluster, cluster_url):
    """NO_DANGEROUS and BLIND on every node of the session cluster (ACL users are per node),
    removed afterwards; the cluster holds fill()'s entries."""
    users = (NO_DANGEROUS, BLIND)
    for node in redis_cluster.nodes:
        with node.client() as conn:
            for name, password, rules in users:
                conn.execute_command(
                    "ACL", "SETUSER", name, "reset", "on", f">{password}", *rules.split()
                )
    with redis_cluster.client() as client:
        fill(client)
    yield redis_cluster
    for node in redis_cluster.nodes:
        with node.client() as conn:
            conn.execute_command("ACL", "DELUSER", *(name for name, _, _ in users))


# -- detection without INFO -------------------------------------------------------------------


def test_a_user_refused_info_still_finds_the_cluster(cluster_users):
    url = url_for(cluster_users.nodes[0], NO_DANGEROUS)
    with Store(Settings(url=url)) as store:
        assert store.is_cluster
        assert len(store.primaries()) == 3


def test_keys_and_tags_cover_every_node_for_a_user_refused_info(cluster_users):
    url = url_for(cluster_users.nodes[0], NO_DANGEROUS)
    result = invoke(url, "keys", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["data"]) == ENTRIES
    result = invoke(url, "tags", "--json")
    assert result.exit_code == 0, result.output  # was CROSSSLOT, taken for one server
    totals = json.loads(result.stdout)["data"]["totals"]
    assert (totals["sets"], totals["existing"]) == (10, ENTRIES)


def test_memory_covers_every_node_for_a_user_refused_info(cluster_users):
    result = invoke(url_for(cluster_users.nodes[0], NO_DANGEROUS), "memory", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["data"]["nodes"]) == 3


def test_a_user_who_may_not_ask_at_all_is_told_to_choose_and_nothing_runs(cluster_users):
    url = url_for(cluster_users.nodes[0], BLIND)
    result = invoke(url, "keys", "--json")
    assert result.exit_code == ExitCode.REDIS
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cluster mode could not be detected" in lines[0] and "INFO is refused" in lines[0]
    assert "--cluster or --no-cluster" in lines[0]
    assert "blind-pass" not in result.output
    assert json.loads(result.stdout)["error"]["code"] == "redis.permission"


def test_a_user_who_may_not_ask_can_say_cluster_themselves(cluster_users):
    result = invoke(url_for(cluster_users.nodes[0], BLIND), "--cluster", "keys", "--json")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["data"]) == ENTRIES


def test_the_store_refuses_to_guess_for_a_user_who_may_not_ask(cluster_users):
    with (
        Store(Settings(url=url_for(cluster_users.nodes[0], BLIND))) as store,
        pytest.raises(RedisPermissionError, match="cluster mode could not be detected"),
    ):
        store.dbsize()


# -- cluster mode forced the wrong way ---------------------------------------------------------


def test_no_cluster_against_a_cluster_node_warns_once_that_one_node_is_covered(cluster_url):
    with Store(Settings(url=cluster_url)) as store:
        fill(store.client)
    result = runner.invoke(app, ["--url", cluster_url, "--no-cluster", "keys", "--json"])
    assert result.exit_code == 0, result.output
    assert 0 < len(json.loads(result.stdout)["data"]) < ENTRIES
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "is a Redis Cluster node but cluster mode is off (flag --no-cluster)" in warnings[0]
    assert "only this node's keys are covered" in warnings[0]


def test_cluster_false_in_a_profile_warns_on_memory_too(cluster_url, tmp_path):
    config = tmp_path / "cachectl.yaml"
    config.write_text(f"url: {cluster_url}\ncluster: false\n")
    result = runner.invoke(app, ["--config", str(config), "memory"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"config {config}:2" in warnings[0]


def test_doctor_with_no_cluster_on_a_cluster_node_says_so_in_its_report(cluster_url):
    result = runner.invoke(app, ["--url", cluster_url, "--no-cluster", "doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)["data"]
    assert data["mode"] == "standalone"
    warning = next(w for w in data["warnings"] if w["code"] == "cluster_node_used_alone")
    assert "only this node's keys are covered" in warning["message"]
    assert "warning:" not in result.stderr  # in the report, not said twice


def test_detected_cluster_and_plain_no_cluster_server_have_no_such_warning(cluster_url, redis_url):
    for args in (["--url", cluster_url], ["--url", redis_url, "--no-cluster"]):
        result = runner.invoke(app, [*args, "keys"])
        assert result.exit_code == 0, result.output
        assert "warning:" not in result.stderr


# -- a primary down ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def broken_cluster():
    """A cluster of its own whose third primary is killed after filling. The others keep
    serving their slots (no full coverage needed), so every failure is the dead node's."""
    with RedisCluster(3, extra_args=("--cluster-require-full-coverage", "no")) as cluster:
        with cluster.client() as client:
            fill(client)
        cluster.nodes[2].kill()
        yield cluster


def _dead_and_seed(cluster) -> tuple[str, str]:
    dead, seed = cluster.nodes[2], cluster.nodes[0]
    return f"redis://127.0.0.1:{dead.port}/0", f"127.0.0.1:{seed.port}"


def _tag_on(cluster, node_index: int) -> str:
    """A tag of fill() whose set lives in the slots of that node."""
    first = node_index * CLUSTER_SLOTS // 3
    last = (node_index + 1) * CLUSTER_SLOTS // 3 - 1
    return next(
        f"by{i}" for i in range(10) if first <= key_slot(LAYOUT.tag(f"by{i}").encode()) <= last
    )


@pytest.mark.parametrize(
    "args",
    [["tags"], ["memory"], ["keys"], ["stats"], ["invalidate", "--tag", "DEAD", "--dry-run"]],
    ids=lambda args: args[0],
)
def test_every_command_names_the_node_that_is_down(broken_cluster, args):
    dead_url, seed = _dead_and_seed(broken_cluster)
    dead_tag = _tag_on(broken_cluster, 2)
    result = invoke(broken_cluster.url, *(dead_tag if arg == "DEAD" else arg for arg in args))
    assert result.exit_code in (ExitCode.REDIS, ExitCode.PARTIAL), result.output
    error = next(line for line in result.stderr.splitlines() if line.startswith("error:"))
    assert f"cannot connect to Redis at {dead_url}: connection refused" in error
    assert seed not in error  # the seed node answered: it is not the one to blame


def test_tags_show_of_a_set_on_the_dead_node_names_it(broken_cluster):
    dead_url, seed = _dead_and_seed(broken_cluster)
    result = invoke(broken_cluster.url, "tags", "show", _tag_on(broken_cluster, 2))
    assert result.exit_code == ExitCode.REDIS
    assert f"cannot connect to Redis at {dead_url}: connection refused" in result.stderr
    assert seed not in result.stderr


def test_doctor_reports_the_node_that_is_down_and_exits_4(broken_cluster):
    dead_url, _ = _dead_and_seed(broken_cluster)
    dead = f"127.0.0.1:{broken_cluster.nodes[2].port}"
    result = invoke(broken_cluster.url, "doctor", "--json")
    assert result.exit_code == ExitCode.REDIS
    envelope = json.loads(result.stdout)
    data = envelope["data"]
    assert envelope["ok"] is False and data["reachable"] is True and data["mode"] == "cluster"
    nodes = {node["address"]: node for node in data["nodes"]}
    assert len(nodes) == 3
    assert nodes[dead]["reachable"] is False
    assert nodes[dead]["error"] == f"cannot connect to Redis at {dead_url}: connection refused"
    assert all(n["reachable"] and n["keys"] is not None for a, n in nodes.items() if a != dead)
    assert data["keys_total"] is None  # two nodes' keys are not the cluster's
    assert envelope["error"]["message"] == nodes[dead]["error"]
    assert result.stderr.strip() == f"error: {nodes[dead]['error']}"


def test_doctors_text_report_marks_the_node_that_is_down(broken_cluster):
    dead = f"127.0.0.1:{broken_cluster.nodes[2].port}"
    result = invoke(broken_cluster.url, "doctor")
    assert result.exit_code == ExitCode.REDIS
    assert "internal error" not in result.output
    [row] = [
        line
        for line in result.stdout.splitlines()
        if line.strip().startswith(dead) and "unreachable" in line
    ]
    assert [c.strip() for c in row.split("│")][1] == "unreachable"
    assert f"{dead}: cannot connect to Redis at" in result.stdout


# -- the asyncio library ----------------------------------------------------------------------


def test_the_asyncio_library_finds_the_cluster_for_a_user_refused_info(cluster_users):
    """connect_async once took a refused INFO for a single server: every write to a slot of
    another node then failed with MOVED (and, fail-open, was silently not cached)."""
    import asyncio

    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    from cachectl import AsyncAPICache

    async def main():
        async with AsyncAPICache(
            url_for(cluster_users.nodes[0], NO_DANGEROUS), fail_open=False
        ) as cache:
            client = await cache._redis()
            assert isinstance(client, AsyncRedisCluster)
            keys = [await cache.set("spread", {"id": i}, {"i": i}, ttl=60) for i in range(30)]
            return keys

    keys = asyncio.run(main())
    assert len({key_slot(k.encode()) * 3 // CLUSTER_SLOTS for k in keys}) == 3  # every node
    with cluster_users.client() as client:
        assert sum(client.exists(k) for k in keys) == 30


def test_the_asyncio_library_refuses_to_guess_for_a_user_who_may_not_ask(cluster_users):
    import asyncio

    from cachectl import AsyncAPICache

    async def main():
        async with AsyncAPICache(url_for(cluster_users.nodes[0], BLIND), fail_open=False) as cache:
            await cache.set("spread", {"id": 1}, {"i": 1}, ttl=60)

    with pytest.raises(RedisPermissionError, match="cluster mode could not be detected"):
        asyncio.run(main())
