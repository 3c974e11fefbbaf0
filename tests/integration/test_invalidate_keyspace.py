"""(A helper, no tests of its own.) A mixed keyspace for the invalidate and prune tests: cache entries (both param encodings,
glob characters, unicode, non-UTF-8 bytes), the cache's bookkeeping, and application keys
that must never be touched, look-alikes included. It knows which entries each selection
should reach, so a test compares what Redis lost with what the model says, key for key."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cachectl.config import Settings
from cachectl.layout import Layout, LayoutConfig
from cachectl.store import Store

LAYOUT = Layout()
PLAIN = Layout(LayoutConfig(param_encoding="plain"))
LONG_TTL_S = 3600
INDEX_KEYS_KINDS = ("tag", "dependency", "entries_log", "access_log")


@dataclass
class Target:
    url: str
    client: object
    store: Store


def target_fixture(request):
    """The body of the `target` fixture both test modules declare: a flushed single server or
    a flushed three-primary cluster, with a raw client and a Store on it."""
    if request.param == "single":
        url = request.getfixturevalue("redis_url")
        client = request.getfixturevalue("redis_server").client()
    else:
        url = request.getfixturevalue("cluster_url")
        client = request.getfixturevalue("redis_cluster").client()
    store = Store(Settings(url=url))
    yield Target(url, client, store)
    store.close()
    client.close()


@dataclass
class Entry:
    key: bytes
    endpoint: str
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()


@dataclass
class Keyspace:
    entries: dict[bytes, Entry] = field(default_factory=dict)
    bookkeeping: list[bytes] = field(default_factory=list)
    unrelated: list[bytes] = field(default_factory=list)

    def tagged(self, tag: str) -> set[bytes]:
        return {k for k, e in self.entries.items() if tag in e.tags}

    def depending_on(self, resource: str) -> set[bytes]:
        return {k for k, e in self.entries.items() if resource in e.depends_on}

    def of_endpoint(self, endpoint: str) -> set[bytes]:
        return {k for k, e in self.entries.items() if e.endpoint == endpoint}

    @property
    def all_keys(self) -> list[bytes]:
        return list(self.entries) + self.bookkeeping + self.unrelated


def build_keyspace(client) -> Keyspace:
    """Writes the keyspace as applications would (entry, then its sets, then the logs)."""
    space = Keyspace()
    now_ms = int(time.time() * 1000)

    def entry(endpoint, params, tags=(), deps=(), layout=LAYOUT, ttl=LONG_TTL_S, age_s=0):
        key = layout.entry(endpoint, params).encode()
        write(key, endpoint, tags, deps, ttl, age_s)

    def write(key, endpoint, tags=(), deps=(), ttl=LONG_TTL_S, age_s=0):
        client.set(key, b'{"v":"' + key[-12:].replace(b'"', b"'") + b'"}', ex=ttl)
        for tag in tags:
            client.sadd(LAYOUT.tag(tag), key)
        for dep in deps:
            client.sadd(LAYOUT.dependency(dep), key)
        client.zadd(LAYOUT.entries_log(), {key: now_ms - age_s * 1000})
        space.entries[key] = Entry(key, endpoint, tuple(tags), tuple(deps))

    for i in range(40):
        entry(
            "products",
            {"id": i},
            tags=(f"cat_{i % 3}", f"user_{i % 5}"),
            deps=(f"product_{i % 4}",),
            ttl=60 if i % 2 else LONG_TTL_S,
            age_s=i * 100,
        )
    for layout in (LAYOUT, PLAIN):
        entry("products", {"category": "electronics", "limit": 10}, tags=("cat_0",), layout=layout)
        entry(
            "search",
            {"q": "café", "fields": ["name", "email"], "price": 2.5, "exact": True},
            tags=("unicode",),
            layout=layout,
        )
    for i in range(20):
        entry(
            "user_profile", {"id": i}, tags=(f"user_{i % 5}",), deps=(f"user_{i}", "profile_data")
        )
    entry("preferences", {"user": 7}, deps=("preferences",))
    entry("dashboard", None, deps=("dashboard",))
    entry("status", {})
    # Glob characters: an endpoint literally named `we[ir]d*`, and one its unescaped glob
    # would catch.
    for i in range(3):
        entry("we[ir]d*", {"id": i}, tags=("glob",))
        entry("weidx", {"id": i}, tags=("glob_lookalike",))
    entry("star*", {"q": "a*b?c[d]\\"}, tags=("glob",))
    entry("café ☕", {"q": "naïve"}, tags=("unicode",))
    write(b"api_cache:raw:\xff\xfe", "raw", tags=("binary",))
    client.zadd(LAYOUT.access_log(), {k: now_ms for k in list(space.entries)[::3]})

    bookkeeping = {
        "cache_metrics:hits": ("hash", {"total": 10}),
        "cache_metrics:hits:products": ("hash", {"count": 7}),
        "cache_metrics:misses": ("hash", {"total": 3}),
        "cache_metrics:response_times": ("zset", {'{"endpoint":"products"}': now_ms}),
        "metric:hit_rate": ("zset", {'{"value":1}': now_ms}),
        "meta:hit_rate": ("hash", {"lastUpdate": str(now_ms)}),
        "agg:hit_rate:1m:0": ("hash", {"data": "{}"}),
    }
    for key, (kind, value) in bookkeeping.items():
        (client.hset(key, mapping=value) if kind == "hash" else client.zadd(key, value))
    space.bookkeeping = [k.encode() for k in bookkeeping]
    # cachectl's own: a set a half-done `invalidate --tag halfdone` left (one member dangles),
    # and a stampede lock the library holds. No selection, sweep or prune may touch either.
    pending = LAYOUT.pending_set(LAYOUT.tag("halfdone"))
    client.sadd(pending, LAYOUT.entry("products", {"id": 3}), LAYOUT.entry("halfdone", {"id": 1}))
    lock = LAYOUT.lock(LAYOUT.entry("products", {"id": 5}))
    client.set(lock, "token", ex=LONG_TTL_S)
    space.bookkeeping += [
        pending.encode(),
        lock.encode(),
        LAYOUT.entries_log().encode(),
        LAYOUT.access_log().encode(),
        *{LAYOUT.tag(t).encode() for e in space.entries.values() for t in e.tags},
        *{LAYOUT.dependency(d).encode() for e in space.entries.values() for d in e.depends_on},
    ]

    some_entry = LAYOUT.entry("products", {"id": 1})
    for i in range(10):
        client.set(f"session:{i}", "s", ex=LONG_TTL_S)
    client.rpush("queue:jobs", "a", "b")
    client.hset("user:1", mapping={"name": "Ann"})
    client.xadd("events", {"kind": "signup"})
    client.set("api_cache_backup:products:id:1", "old")
    client.set("API_CACHE:products:id:1", "shouting")
    client.set("app:api_cache:products:id:1", "nested")
    client.set("api_cache", "bare prefix")
    client.sadd("tags:cat_0", some_entry)  # an application's own set, naming an entry
    client.zadd("cache_entries_archive", {some_entry: 1})
    client.set("depends_on_ids", "x")
    space.unrelated = [
        *(f"session:{i}".encode() for i in range(10)),
        b"queue:jobs",
        b"user:1",
        b"events",
        b"api_cache_backup:products:id:1",
        b"API_CACHE:products:id:1",
        b"app:api_cache:products:id:1",
        b"api_cache",
        b"tags:cat_0",
        b"cache_entries_archive",
        b"depends_on_ids",
    ]
    return space


def snapshot(client, keys) -> dict[bytes, tuple | None]:
    """Each key's (type, DUMP of its value, PTTL), or for an index its members; None for a
    missing key."""
    out: dict[bytes, tuple | None] = {}
    for key in keys:
        kind = client.type(key)
        if kind == b"none":
            out[key] = None
        elif LAYOUT.kind(key) in INDEX_KEYS_KINDS:
            members = client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key)
            out[key] = (kind, frozenset(members))
        else:
            out[key] = (kind, client.dump(key), client.pttl(key))
    return out


def assert_exactly_deleted(
    client, space: Keyspace, before: dict, expected: set[bytes], *, swept: bool
) -> None:
    """The entries gone are exactly `expected`; every other key keeps its value and TTL; the
    logs lose exactly the deleted entries, and the tag and dependency sets lose them too when
    the run swept the indexes (else only the invalidated sets go)."""
    after = snapshot(client, before)
    gone = {k for k, v in after.items() if v is None and before[k] is not None}
    assert {k for k in gone if k in space.entries} == expected
    for key, was in before.items():
        if was is None or key in expected:
            continue
        now = after[key]
        if LAYOUT.kind(key) in INDEX_KEYS_KINDS:
            members_before, members_after = was[1], (now[1] if now else frozenset())
            if swept or LAYOUT.kind(key).endswith("_log"):
                assert members_after == members_before - expected, key
            else:
                assert members_before - expected <= members_after <= members_before, key
            continue
        assert now is not None, key
        assert now[:2] == was[:2], key
        if was[2] < 0:
            assert now[2] == was[2], key
        else:
            assert 0 <= was[2] - now[2] < 60_000, key
