"""cachectl's own keys beside docs/keyspace.md's: the pending set an invalidation drains and the
library's stampede lock. Named by the layout, told apart by `Layout.kind`, never entries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot as redis_key_slot

from cachectl.errors import ConfigError, UsageError
from cachectl.layout import Layout, LayoutConfig, key_slot
from cachectl.library.stampede import lock_key
from cachectl.ops.selection import SelectionSpec, resolve_selection

STANDARD = Layout()
VERSIONED = Layout(LayoutConfig(scheme="versioned", version="v2"))
SHOP = Layout(LayoutConfig(prefix="shop", tag_prefix="shop:tags", dependency_prefix="shop:deps"))
LAYOUTS = [STANDARD, VERSIONED, SHOP, Layout(LayoutConfig(prefix="shop:api_cache"))]


# --- the slot ---------------------------------------------------------------------------------


@given(st.binary(max_size=24), st.sampled_from([b"", b"{", b"}", b"{}", b"{a}", b"}{"]))
def test_key_slot_is_the_servers(body, brace):
    for key in (body + brace, brace + body, body[:3] + brace + body[3:]):
        assert key_slot(key) == redis_key_slot(key)


# --- pending sets -----------------------------------------------------------------------------

set_keys = st.one_of(
    st.binary(max_size=30).map(lambda b: b"tag:" + b),
    st.text(alphabet="{}ab:", max_size=12).map(lambda t: ("tag:" + t).encode()),
    st.text(max_size=10).map(lambda t: ("depends_on:" + t).encode("utf-8", "surrogatepass")),
)


# The pathological names search for a numbered suffix (tens of milliseconds on a busy machine).
@settings(deadline=None)
@given(set_keys)
def test_pending_name_shares_the_slot_of_its_set_and_is_classified(set_key):
    pending = STANDARD.pending_set(set_key)
    assert key_slot(pending) == key_slot(set_key)
    assert pending != set_key
    assert pending.startswith(set_key.split(b":", 1)[0] + b":")  # under the set's own prefix
    assert STANDARD.kind(pending) == "pending_set"
    assert STANDARD.is_pending_set(pending) and not STANDARD.is_entry(pending)
    assert STANDARD.kind(set_key) in ("tag", "dependency")  # the set itself stays a set
    assert STANDARD.pending_set(set_key) == pending  # a rerun finds it


@pytest.mark.parametrize(
    ("set_key", "pending"),
    [
        (b"tag:user_1", b"tag:{tag:user_1}:invalidating"),
        (b"tag:{shop}user_1", b"tag:{shop}user_1:invalidating"),
        (b"depends_on:user_1", b"depends_on:{depends_on:user_1}:invalidating"),
        ("tag:café", "tag:{tag:café}:invalidating"),  # str in, str out
    ],
)
def test_pending_name_is_readable_when_it_can_be(set_key, pending):
    assert STANDARD.pending_set(set_key) == pending


def test_pending_name_of_a_pathological_key_is_found_by_suffix():
    for set_key in (b"tag:a}b", b"tag:{}x", b"tag:{}"):
        pending = STANDARD.pending_set(set_key)
        assert pending.startswith(set_key + b":invalidating:")
        assert key_slot(pending) == key_slot(set_key)
        assert STANDARD.kind(pending) == "pending_set"


def test_pending_name_follows_a_configured_prefix():
    pending = SHOP.pending_set(SHOP.tag("sale"))
    assert pending == "shop:tags:{shop:tags:sale}:invalidating"
    assert SHOP.kind(pending) == "pending_set"
    assert SHOP.kind(SHOP.pending_set(SHOP.dependency("p"))) == "pending_set"
    assert not SHOP.is_entry(pending)  # though it starts with the entry prefix `shop:`


@pytest.mark.parametrize(
    "key",
    [
        "tag:foo:invalidating",  # a tag that merely ends so: its pending name is another
        "tag:invalidating",
        "tag:{tag:x}:invalidating:1",
        "tag:x:invalidating:7",
        "depends_on:{tag:x}y:invalidating:3",
        "tag:{tag:x}:invalidatingx",
        "tag:{tag:x}:invalidating:0",
    ],
)
def test_a_set_named_like_a_pending_one_stays_a_set(key):
    assert STANDARD.kind(key) in ("tag", "dependency")


def test_only_tag_and_dependency_sets_have_pending_names():
    with pytest.raises(UsageError):
        STANDARD.pending_set("api_cache:e:no_params")
    with pytest.raises(UsageError):
        STANDARD.pending_set("session:1")


def test_a_tag_that_names_a_pending_set_is_refused():
    """`--tag '{tag:x}:invalidating'` would take the set a half-done run left for its rerun."""
    with pytest.raises(UsageError, match="--tag x"):
        resolve_selection(STANDARD, SelectionSpec(tags=["{tag:x}:invalidating"]))
    with pytest.raises(UsageError, match="--depends-on r"):
        resolve_selection(STANDARD, SelectionSpec(depends_on=["{depends_on:r}:invalidating"]))


# --- stampede locks ---------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, ids=["standard", "versioned", "nested", "shop"])
def test_lock_is_beside_the_prefixes_and_classified(layout):
    entry = layout.entry("users", {"id": 1})
    lock = layout.lock(entry)
    assert lock_key(layout, entry) == lock  # the library takes the layout's name
    assert lock.endswith(entry) and lock != entry
    assert layout.kind(lock) == "lock"
    assert not layout.is_entry(lock)
    assert not layout.pattern_within_entries(lock)
    assert layout.owns(lock)


def test_lock_names_are_the_ones_the_library_has_always_written():
    assert STANDARD.lock("api_cache:users:id:1") == "api_cache_lock:api_cache:users:id:1"
    assert VERSIONED.lock("api:v2:users?id=1") == "api_lock:api:v2:users?id=1"
    assert STANDARD.lock_pattern() == "api_cache_lock:*"


def test_look_alikes_of_a_lock_are_not_locks():
    for key in ("api_cache_lock", "api_cache_locks:x", "API_CACHE_LOCK:x", "app:api_cache_lock:x"):
        assert STANDARD.kind(key) is None, key


def test_owned_patterns_cover_locks_and_pending_sets():
    from fnmatch import fnmatchcase

    for key in (STANDARD.lock("api_cache:e:no_params"), STANDARD.pending_set("tag:t")):
        assert any(fnmatchcase(key, p) for p in STANDARD.owned_patterns()), key


def test_a_prefix_that_collides_with_the_lock_prefix_is_a_config_error():
    with pytest.raises(ConfigError, match="share one prefix"):
        Layout(LayoutConfig(prefix="api_cache", tag_prefix="api_cache_lock"))
