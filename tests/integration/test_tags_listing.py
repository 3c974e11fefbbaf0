"""`tags` and `tags show` against real servers: exact and sampled counts of live and dangling
members, dependency sets, keys under the prefix that are not sets, and a cluster."""

from __future__ import annotations

import pytest

from cachectl.config import Settings
from cachectl.errors import NotFoundError
from cachectl.layout import Layout
from cachectl.ops import tags as tags_ops
from cachectl.ops.tags import list_tag_sets, show_tag_set
from cachectl.store import Store

LAYOUT = Layout()


def load(client) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(40):
        key = LAYOUT.entry("users", {"id": i})
        if i < 30:
            pipe.set(key, "{}", ex=600)
        pipe.sadd(LAYOUT.tag("users"), key)  # 30 live, 10 dangling
        if i < 5:
            pipe.sadd(LAYOUT.tag("user:vip"), key)
    pipe.sadd(LAYOUT.tag("user:gone"), LAYOUT.entry("users", {"id": -1}))
    pipe.expire(LAYOUT.tag("user:gone"), 900)
    pipe.sadd(LAYOUT.dependency("user:1"), LAYOUT.entry("users", {"id": 1}))
    pipe.set(LAYOUT.tag("not-a-set"), "x")
    pipe.execute()


@pytest.fixture
def store(redis_url):
    with Store(Settings(url=redis_url, scan_count=3, batch_size=7)) as store:
        load(store.client)
        yield store


def test_exact_counts_of_existing_and_dangling_members(store):
    listing = list_tag_sets(store, LAYOUT)
    rows = {r.name: r for r in listing.rows}
    assert [r.name for r in listing.rows] == sorted(rows)
    users = rows["users"]
    assert (users.members, users.existing, users.dangling, users.sampled) == (40, 30, 10, False)
    assert (rows["user:vip"].existing, rows["user:vip"].dangling) == (5, 0)
    assert rows["user:gone"].dangling == 1 and 0 < rows["user:gone"].ttl_seconds <= 900
    assert rows["not-a-set"].type == "string"
    assert listing.totals == {
        "sets": 3,
        "members": 46,
        "existing": 35,
        "dangling": 11,
        "not_sets": 1,
    }


def test_big_sets_are_counted_a_page_at_a_time(store, monkeypatch):
    monkeypatch.setattr(tags_ops, "SMEMBERS_MAX", 3)
    users = next(r for r in list_tag_sets(store, LAYOUT).rows if r.name == "users")
    assert (users.existing, users.dangling, users.checked) == (30, 10, 40)


def test_a_pattern_selects_tags_by_name(store):
    names = [r.name for r in list_tag_sets(store, LAYOUT, "user:*").rows]
    assert names == ["user:gone", "user:vip"]


def test_a_sample_estimates_and_says_so(store):
    users = next(r for r in list_tag_sets(store, LAYOUT, "users", sample=20).rows)
    assert users.sampled and users.checked == 20
    assert users.existing + users.dangling == 40
    assert 15 <= users.existing <= 40  # 20 of 40 drawn without repeats: at least 10 live


def test_dependency_sets_are_listed_with_dependencies(store):
    listing = list_tag_sets(store, LAYOUT, dependencies=True)
    assert [(r.name, r.kind, r.existing) for r in listing.rows] == [("user:1", "dependency", 1)]


def test_show_lists_members_with_whether_each_exists(store):
    info, members = show_tag_set(store, LAYOUT, "users")
    rows = list(members)
    assert info.members == 40 and len(rows) == 40
    live = {r.key for r in rows if r.exists}
    assert live == {LAYOUT.entry("users", {"id": i}) for i in range(30)}
    assert all(0 < r.ttl_seconds <= 600 for r in rows if r.exists)
    assert (info.shown, info.existing) == (40, 30)


def test_show_of_a_missing_or_wrong_set_is_not_found(store):
    with pytest.raises(NotFoundError):
        show_tag_set(store, LAYOUT, "nope")
    with pytest.raises(NotFoundError, match="not a set"):
        show_tag_set(store, LAYOUT, "not-a-set")


def test_members_on_other_nodes_of_a_cluster_are_counted(cluster_url):
    with Store(Settings(url=cluster_url, scan_count=3)) as store:
        load(store.client)
        users = next(r for r in list_tag_sets(store, LAYOUT).rows if r.name == "users")
        _, members = show_tag_set(store, LAYOUT, "users")
        live = sum(r.exists for r in members)
    assert (users.existing, users.dangling) == (30, 10)
    assert live == 30


def test_show_cut_short_by_a_lost_server_is_a_partial_listing(make_redis):
    from cachectl.errors import PartialFailure

    server = make_redis()
    with server.client() as client:
        load(client)
    settings = Settings(
        url=server.url, retries=0, scan_count=3, batch_size=5, connect_timeout=0.5, timeout=1
    )
    with Store(settings) as store:
        info, members = show_tag_set(store, LAYOUT, "users")
        first = next(members)
        server.kill()
        with pytest.raises(PartialFailure) as failure:
            list(members)
    assert first.key.startswith("api_cache:users:")
    assert 0 < info.shown < info.members == 40
    assert failure.value.details["cause"].startswith("redis")


def test_a_half_finished_invalidations_pending_set_is_not_listed_as_a_tag(store):
    pending = LAYOUT.pending_set(LAYOUT.tag("users"))
    assert pending.startswith(LAYOUT.tag(""))  # it shares the tag prefix, so SCAN finds it
    store.client.sadd(pending, LAYOUT.entry("users", {"id": 1}))
    names = [r.name for r in list_tag_sets(store, LAYOUT).rows]
    assert "users" in names
    assert not any("invalidating" in name for name in names)
