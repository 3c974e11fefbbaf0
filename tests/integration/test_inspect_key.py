"""`inspect` against a real server: an entry with its logs and sets, keys built from an endpoint
and params, keys that are not UTF-8, collections, LFU servers, and keys that do not exist."""

from __future__ import annotations

import json

import pytest

from cachectl.config import Settings
from cachectl.errors import NotFoundError, UsageError
from cachectl.layout import Layout
from cachectl.ops.inspect import ITEMS_LIMIT, VALUE_READ_LIMIT, inspect_key
from cachectl.store import Store

LAYOUT = Layout()


@pytest.fixture
def store(redis_url):
    with Store(Settings(url=redis_url)) as store:
        yield store


def test_an_entry_with_its_logs_tags_and_dependencies(store):
    key = LAYOUT.entry("products", {"category": "books", "limit": 10})
    store.client.set(key, json.dumps({"items": [1, 2, 3]}), ex=300)
    store.client.zadd(LAYOUT.entries_log(), {key: 1_700_000_000_000})
    store.client.zadd(LAYOUT.access_log(), {key: 1_700_000_500_000})
    store.client.sadd(LAYOUT.tag("books"), key)
    store.client.sadd(LAYOUT.tag("other"), "api_cache:x:no_params")
    store.client.sadd(LAYOUT.dependency("category:books"), key)
    found = inspect_key(store, LAYOUT, key, with_tags=True)
    assert (found.type, found.is_entry) == ("string", True)
    # The server's own word: Redis 7 embeds this short value (embstr); Valkey 8, which embeds the
    # key and its expiry in the object too, keeps it apart (raw).
    assert found.encoding == store.client.object("encoding", key).decode()
    assert found.encoding in ("embstr", "raw")
    assert (found.endpoint, found.params) == ("products", {"category": "books", "limit": 10})
    assert 0 < found.ttl_seconds <= 300
    assert found.size_bytes == store.client.memory_usage(key)
    assert (found.last_write_ms, found.last_access_ms) == (1_700_000_000_000, 1_700_000_500_000)
    assert found.value.format == "json" and found.value.json == {"items": [1, 2, 3]}
    assert found.tags == ["books"] and found.dependencies == ["category:books"]


def test_the_key_is_built_from_endpoint_and_params_as_layout_says(store):
    store.client.set(LAYOUT.entry("user", {"id": 123}), "{}")
    store.client.set(LAYOUT.entry("user", {"id": "123"}), '{"s":1}')
    number = inspect_key(store, LAYOUT, endpoint="user", params=["id=123"])
    text = inspect_key(store, LAYOUT, endpoint="user", params=['id="123"'])
    assert number.params == {"id": 123} and text.params == {"id": "123"}
    assert text.value.json == {"s": 1}
    with pytest.raises(NotFoundError):
        inspect_key(store, LAYOUT, endpoint="user", params=["id=124"])


def test_glob_characters_in_a_key_are_taken_literally(store):
    key = LAYOUT.entry("prices[eu]", {"q": "*"})
    store.client.set(key, "{}")
    store.client.set(LAYOUT.entry("pricese", {"q": "*"}), "{}")
    assert inspect_key(store, LAYOUT, endpoint="prices[eu]", params=['q="*"']).key == key


def test_a_binary_key_is_found_from_how_keys_shows_it(store):
    store.client.set(b"api_cache:bin:\xff\n", b"\x00\xfe binary")
    found = inspect_key(store, LAYOUT, "api_cache:bin:\\xff\\n")
    assert found.key == "api_cache:bin:\\xff\\n"
    assert found.value.format == "binary" and found.value.text == "\\x00\\xfe binary"


def test_a_missing_key_is_not_found(store):
    with pytest.raises(NotFoundError):
        inspect_key(store, LAYOUT, "api_cache:nope:no_params")


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"key": "k", "endpoint": "e"},
        {"params": ["id=1"]},
    ],
)
def test_what_to_inspect_must_be_said_once(store, args):
    with pytest.raises(UsageError):
        inspect_key(store, LAYOUT, **args)


def test_a_long_value_is_read_only_in_part_unless_full(store):
    key = LAYOUT.entry("big", {})
    store.client.set(key, json.dumps({"data": "é" * VALUE_READ_LIMIT}))
    short = inspect_key(store, LAYOUT, key)
    assert not short.value.whole and short.value.json is None
    assert len(short.value.text.encode()) <= VALUE_READ_LIMIT
    full = inspect_key(store, LAYOUT, key, full=True)
    assert full.value.whole and full.value.json["data"] == "é" * VALUE_READ_LIMIT


def test_an_entry_of_another_type_is_reported_as_such(store):
    key = LAYOUT.entry("weird", {"id": 1})
    store.client.hset(key, mapping={f"f{i}": i for i in range(ITEMS_LIMIT + 5)})
    found = inspect_key(store, LAYOUT, key)
    assert found.type == "hash"
    assert any("hash" in note for note in found.notes)
    assert found.value.length == ITEMS_LIMIT + 5 and len(found.value.items) == ITEMS_LIMIT
    assert not found.value.whole
    everything = inspect_key(store, LAYOUT, key, full=True)
    assert len(everything.value.items) == ITEMS_LIMIT + 5


@pytest.mark.parametrize("type_", ["list", "set", "zset", "stream"])
def test_collections_show_their_first_items(store, type_):
    key = f"other:{type_}"
    if type_ == "list":
        store.client.rpush(key, "a", "b")
    elif type_ == "set":
        store.client.sadd(key, "a", "b")
    elif type_ == "zset":
        store.client.zadd(key, {"a": 1, "b": 2})
    else:
        store.client.xadd(key, {"f": "a"})
        store.client.xadd(key, {"f": "b"})
    found = inspect_key(store, LAYOUT, key)
    assert found.type == type_ and found.value.length == 2 and len(found.value.items) == 2
    assert any("outside the cache" in note for note in found.notes)


def test_an_lfu_server_gives_the_access_frequency_instead_of_idle_time(make_redis):
    server = make_redis(extra_args=["--maxmemory-policy", "allkeys-lfu"])
    with Store(Settings(url=server.url)) as store:
        store.client.set("api_cache:a:no_params", "{}")
        found = inspect_key(store, LAYOUT, "api_cache:a:no_params")
    assert found.idle_seconds is None and found.lfu_frequency is not None


def test_inspect_works_in_a_cluster(cluster_url):
    with Store(Settings(url=cluster_url)) as store:
        key = LAYOUT.entry("users", {"id": 5})
        store.client.set(key, '{"a":1}')
        store.client.zadd(LAYOUT.entries_log(), {key: 42})
        store.client.sadd(LAYOUT.tag("u5"), key)
        found = inspect_key(store, LAYOUT, key, with_tags=True)
    assert found.last_write_ms == 42 and found.tags == ["u5"] and found.value.json == {"a": 1}
