"""The library's pure parts: values as JavaScript writes them, key memo, bookkeeping commands,
write ordering, options, lock names, refresh decisions, decorator params, lazy imports."""

from __future__ import annotations

import inspect
import json
import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cachectl.config import Settings
from cachectl.errors import UsageError
from cachectl.layout import Layout, LayoutConfig
from cachectl.library.connect import (
    URL_CONNECT_TIMEOUT_SECONDS,
    URL_RETRIES,
    URL_TIMEOUT_SECONDS,
    describe_client,
    resolve,
)
from cachectl.library.core import (
    RESPONSE_TIMES_KEPT_MS,
    Bookkeeping,
    Call,
    CallIds,
    EntryKeys,
    Warnings,
    Write,
    as_strategy,
    encode_value,
    index_keys,
    now_ms,
    refresh_due,
    ttl_to_ms,
    write_commands,
)
from cachectl.library.decorator import call_params
from cachectl.library.stampede import StampedeOptions, lock_key
from cachectl.library.strategies import EarlyRefresh, StaleWhileRevalidate, Strategy
from tests.unit.test_layout_vectors import STANDARD, VERSIONED

LAYOUT = Layout()


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return set(json.loads(out.splitlines()[-1]))


def _loaded(modules: set[str], *roots: str) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in roots or m.startswith(roots))


# --- imports ---------------------------------------------------------------------------------


def test_import_cachectl_loads_no_redis_and_no_cli():
    modules = _modules_after("import cachectl")
    assert _loaded(modules, "redis", "typer", "rich", "yaml", "aiohttp", "cachectl.cli") == []


def test_library_names_import_without_cli_code():
    modules = _modules_after("from cachectl import APICache, AsyncAPICache, cached, MISS")
    assert _loaded(modules, "typer", "rich", "click", "cachectl.cli", "cachectl.render") == []
    assert "redis" in modules  # loaded because the library is used now


def test_unknown_attribute_of_cachectl_is_an_attribute_error():
    import cachectl

    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        cachectl.NoSuchThing  # noqa: B018


# --- values ----------------------------------------------------------------------------------


def test_values_are_stored_as_javascript_json_stringify_writes_them():
    value = {"b": 1.0, "a": [1e21, 1e-7, 1e20, -0.0, 2.5], "s": "café \u2028", "10": "x", "2": None}
    # Array-index keys first, ascending; 1.0 -> 1; exponent style; non-ASCII kept as is.
    assert encode_value("k", value) == (
        '{"2":null,"10":"x","b":1,"a":[1e+21,1e-7,100000000000000000000,0,2.5],"s":"café \u2028"}'
    )


def test_a_value_json_cannot_hold_is_a_type_error_naming_the_entry():
    with pytest.raises(TypeError, match="api_cache:users:id:1.*set"):
        encode_value("api_cache:users:id:1", {"tags": {1, 2}})


@pytest.mark.parametrize("ttl", [0, -5, "60", True, None, math.nan, math.inf])
def test_a_ttl_must_be_a_positive_number_of_seconds(ttl):
    with pytest.raises(UsageError):
        ttl_to_ms(ttl)


def test_ttls_become_whole_milliseconds_and_never_zero():
    assert ttl_to_ms(60) == 60_000
    assert ttl_to_ms(1.5) == 1_500
    assert ttl_to_ms(0.0001) == 1


# --- entry keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", STANDARD, ids=lambda c: c["endpoint"])
def test_remembered_keys_match_javascript_vectors(case):
    keys = EntryKeys(LAYOUT)
    params = json.loads(case["params_json"])
    assert keys(case["endpoint"], params) == case["json"]
    assert keys(case["endpoint"], params) == case["json"]  # and again, from the memo


@pytest.mark.parametrize("case", VERSIONED[:20], ids=lambda c: c["endpoint"])
def test_versioned_keys_with_users_and_headers_pass_through(case):
    options = case["versioned_options"]
    headers = options.get("headers") if options.get("includeHeaders") else None
    layout = Layout(
        LayoutConfig(
            scheme="versioned",
            version=options.get("version", "v1"),
            header_allowlist=tuple(headers or ()),
        )
    )
    key = EntryKeys(layout)(
        case["endpoint"], json.loads(case["params_json"]), options.get("userId"), headers
    )
    assert key == case["versioned"]


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(), st.text(max_size=5)
)


param_values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.tuples(scalars, scalars),
    st.dictionaries(
        st.one_of(st.text(max_size=2), st.integers(0, 3), st.booleans()), scalars, max_size=2
    ),
    st.lists(st.lists(scalars, max_size=2), max_size=2),
)


@given(st.lists(st.dictionaries(st.text(max_size=3), param_values, max_size=3), max_size=6))
def test_remembered_keys_equal_fresh_keys_whatever_the_call_order(calls):
    keys = EntryKeys(LAYOUT)
    for params in calls:
        assert keys("e", params) == LAYOUT.entry("e", params)


def test_equal_but_different_values_get_their_own_keys():
    keys = EntryKeys(LAYOUT)
    assert keys("e", {"id": 1}) == "api_cache:e:id:1"
    assert keys("e", {"id": True}) == "api_cache:e:id:true"
    assert keys("e", {"id": "1"}) == 'api_cache:e:id:"1"'
    assert keys("e", {1: "x"}) == 'api_cache:e:1:"x"'
    assert keys("e", {True: "x"}) == 'api_cache:e:true:"x"'
    assert keys("e", {"ids": [1]}) == "api_cache:e:ids:[1]"
    assert keys("e", {"ids": [True]}) == "api_cache:e:ids:[true]"
    assert keys("e", {"o": {"a": 1, "b": 2}}) == 'api_cache:e:o:{"a":1,"b":2}'
    assert keys("e", {"o": {"b": 2, "a": 1}}) == 'api_cache:e:o:{"b":2,"a":1}'
    assert keys("e", {"o": {1: "x"}}) == 'api_cache:e:o:{"1":"x"}'
    assert keys("e", {"o": {True: "x"}}) == 'api_cache:e:o:{"true":"x"}'


# --- writes ----------------------------------------------------------------------------------


def test_index_keys_name_each_set_once():
    assert index_keys(LAYOUT, ["a", "a", "b"], "user:1") == ("tag:a", "tag:b", "depends_on:user:1")
    assert index_keys(LAYOUT, "sale", None) == ("tag:sale",)


def test_a_single_server_writes_an_entry_in_one_round_entry_first():
    write = Write("api_cache:e:id:1", '{"a":1}', 60_000, ("tag:t",))
    (only,) = write_commands(LAYOUT, [write], cluster=False)
    assert only[0] == ("SET", "api_cache:e:id:1", '{"a":1}', "PX", 60_000)
    assert only[1:3] == [
        ("SADD", "tag:t", "api_cache:e:id:1"),
        ("PEXPIRE", "tag:t", 60_000, "GT"),
    ]
    assert only[3][:2] == ("ZADD", "cache_entries") and only[3][3] == "api_cache:e:id:1"


def test_a_cluster_writes_every_entry_before_any_set_names_it():
    writes = [Write(f"api_cache:e:id:{i}", "1", 1000, ("tag:t", "depends_on:r")) for i in range(3)]
    entries, indexes = write_commands(LAYOUT, writes, cluster=True)
    assert [c[0] for c in entries] == ["SET"] * 3
    assert {c[0] for c in indexes} == {"SADD", "PEXPIRE", "ZADD"}
    assert len([c for c in indexes if c[0] == "SADD"]) == 6


# --- bookkeeping -----------------------------------------------------------------------------


def test_bookkeeping_adds_up_hits_and_misses_per_endpoint_in_few_commands():
    book = Bookkeeping(LAYOUT)
    for _ in range(5):
        book.record("users", "api_cache:users:id:1", True, 0.5)
    book.record("users", "api_cache:users:id:2", False, 80.0)
    book.record("products", "api_cache:products:no_params", True, 1.25)
    commands = book.take()
    hincr = [c for c in commands if c[0] == "HINCRBY"]
    assert hincr == [
        ("HINCRBY", "cache_metrics:hits", "total", 6),
        ("HINCRBY", "cache_metrics:hits:users", "count", 5),
        ("HINCRBY", "cache_metrics:hits:products", "count", 1),
        ("HINCRBY", "cache_metrics:misses", "total", 1),
        ("HINCRBY", "cache_metrics:misses:users", "count", 1),
    ]
    (access,) = [c for c in commands if c[1] == "cache_access"]
    assert set(access[3::2]) == {"api_cache:users:id:1", "api_cache:products:no_params"}
    assert book.take() == []


def test_response_time_members_are_the_json_layout_names():
    book = Bookkeeping(LAYOUT)
    before = now_ms()
    book.record("users", "api_cache:users:id:2", False, 80.12345)
    commands = book.take()
    (zadd,) = [c for c in commands if c[:2] == ("ZADD", "cache_metrics:response_times")]
    score, member = zadd[2], zadd[3]
    assert before <= score <= now_ms()
    head, call_id = member.split(',"callId":')
    assert head == (
        '{"endpoint":"users","cacheKey":"api_cache:users:id:2","responseTime":80.123,"hit":false'
    )
    assert json.loads(member)["callId"] == json.loads(call_id.rstrip("}"))
    (trim,) = [c for c in commands if c[0] == "ZREMRANGEBYSCORE"]
    cutoff = int(trim[3].lstrip("("))
    assert abs(cutoff - (now_ms() - RESPONSE_TIMES_KEPT_MS)) < 5_000


def test_identical_calls_get_members_of_their_own():
    book = Bookkeeping(LAYOUT)
    for _ in range(1000):
        book.record("users", "api_cache:users:id:1", True, 0.5)
    members = [m for c in book.take() if c[0] == "ZADD" and "response" in c[1] for m in c[3::2]]
    assert len(members) == len(set(members)) == 1000


def test_call_ids_are_drawn_again_in_a_forked_child(monkeypatch):
    ids = CallIds()
    parent = {ids.next() for _ in range(3)}
    monkeypatch.setattr("os.getpid", lambda: -7)  # what a child sees: another pid
    child = {ids.next() for _ in range(3)}
    assert len(parent | child) == 6
    assert {i.split(".")[0] for i in child}.isdisjoint({i.split(".")[0] for i in parent})


def test_the_access_log_keeps_each_keys_latest_hit_only():
    book = Bookkeeping(LAYOUT)
    book.record("e", "k", True, 1)
    book.record("e", "k", True, 1)
    (access,) = [c for c in book.take() if c[1] == "cache_access"]
    assert len(access) == 4  # ZADD key score member


def test_records_a_push_could_not_write_are_counted_until_a_warning_tells_them():
    book = Bookkeeping(LAYOUT)
    for _ in range(3):
        book.record("e", "k", False, 1)
    commands, calls = book.take_batch()
    assert commands and calls == 3
    book.pushed(calls, ConnectionError("redis went away"))
    book.record("e", "k", True, 1)
    _, calls = book.take_batch()
    book.pushed(calls, ConnectionError("still away"))
    assert book.dropped_untold
    assert book.drop_report() == (
        "could not write the cache counters: still away; the hits, misses and response times "
        "of 4 calls were dropped since the last warning"
    )
    assert not book.dropped_untold  # told: the next report counts from here
    book.pushed(2, ConnectionError("away"))
    book.pushed(1, None)
    assert book.drop_report() == (
        "the cache counters are written again; the hits, misses and response times of 2 calls "
        "were dropped while they could not be (away)"
    )
    assert book.take() == []  # nothing dropped is kept to be sent again


def test_warnings_come_at_most_one_every_ten_seconds():
    now = [100.0]
    warnings = Warnings(clock=lambda: now[0])
    assert warnings.warn("a")
    now[0] += 9.9
    assert not warnings.warn("b") and not warnings.due()
    now[0] += 0.1
    assert warnings.due() and not warnings.warn("c")


# --- options ---------------------------------------------------------------------------------


def test_an_unknown_strategy_names_the_choices():
    with pytest.raises(UsageError, match="cache_aside, write_through, write_behind"):
        as_strategy("write_around")
    assert as_strategy("write_behind") is Strategy.WRITE_BEHIND


@pytest.mark.parametrize(
    "options",
    [{"lock_timeout": 0}, {"wait_timeout": -1}, {"poll_interval": True},
     {"poll_interval": 0.1, "max_poll_interval": 0.01}],
)  # fmt: skip
def test_stampede_options_are_checked(options):
    with pytest.raises(UsageError):
        StampedeOptions(**options)


def test_poll_delays_double_up_to_the_cap_with_jitter():
    delays = StampedeOptions(poll_interval=0.01, max_poll_interval=0.04).poll_delays()
    first = [next(delays) for _ in range(8)]
    assert 0.0075 <= first[0] <= 0.0125
    assert all(0.03 <= d <= 0.05 for d in first[3:])


# --- lock names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [LayoutConfig(), LayoutConfig(prefix="shop:api_cache"), LayoutConfig(scheme="versioned")],
)
def test_lock_keys_are_never_taken_for_cache_keys(config):
    layout = Layout(config)
    entry = layout.entry("users", {"id": 1})
    lock = lock_key(layout, entry)
    assert entry in lock
    assert layout.kind(lock) == "lock"  # bookkeeping, never an entry
    assert not layout.pattern_within_entries(lock)


# --- refresh ---------------------------------------------------------------------------------


def test_early_refresh_gets_likelier_as_expiry_nears():
    policy = EarlyRefresh()
    # With rand = e**-1, -ln(rand) = 1: refresh once the time left is at most the origin's.
    rand = math.exp(-1)
    assert policy.due(remaining_ms=100, recompute_ms=100, rand=rand)
    assert not policy.due(remaining_ms=101, recompute_ms=100, rand=rand)
    assert EarlyRefresh(beta=2).due(remaining_ms=200, recompute_ms=100, rand=rand)


def test_early_refresh_without_a_timed_origin_assumes_one_percent_of_the_ttl():
    call = Call("e", "k", 60_000, (), Strategy.CACHE_ASIDE)
    rand = math.exp(-1)
    assert refresh_due(EarlyRefresh(), 600, call, None, rand)
    assert not refresh_due(EarlyRefresh(), 601, call, None, rand)


def test_stale_while_revalidate_refreshes_inside_its_window_only():
    call = Call("e", "k", 60_000, (), Strategy.CACHE_ASIDE)
    assert refresh_due(StaleWhileRevalidate(5), 5_000, call, None, 0.5)
    assert not refresh_due(StaleWhileRevalidate(5), 5_001, call, None, 0.5)


@pytest.mark.parametrize("bad", [lambda: EarlyRefresh(0), lambda: StaleWhileRevalidate(-1)])
def test_refresh_policies_are_checked(bad):
    with pytest.raises(UsageError):
        bad()


# --- decorator params ------------------------------------------------------------------------


def _signature(fn):
    return inspect.signature(fn)


def test_positional_and_keyword_calls_give_the_same_params():
    def get_user(id, fields=None, *, lang="en"):
        pass

    sig, skip = _signature(get_user), frozenset({"self"})
    assert call_params(sig, (1,), {}, skip) == {"id": 1, "fields": None, "lang": "en"}
    assert call_params(sig, (), {"id": 1}, skip) == call_params(sig, (1,), {}, skip)


def test_self_is_left_out_and_star_args_are_kept():
    class Client:
        def search(self, *terms, **filters):
            pass

    sig = _signature(Client.search)
    params = call_params(sig, (object(), "a", "b"), {"limit": 5}, frozenset({"self"}))
    assert params == {"terms": ["a", "b"], "limit": 5}


# --- connecting ------------------------------------------------------------------------------


def test_a_url_connects_with_the_librarys_short_timeouts():
    settings, client = resolve("redis://127.0.0.1:1/0", want_async=False)
    assert client is None
    assert (settings.connect_timeout, settings.timeout, settings.retries) == (
        URL_CONNECT_TIMEOUT_SECONDS,
        URL_TIMEOUT_SECONDS,
        URL_RETRIES,
    )


def test_settings_are_used_as_given():
    given_settings = Settings(url="redis://h:1/0", timeout=9.0)
    assert resolve(given_settings, want_async=True) == (given_settings, None)


def test_the_wrong_kind_of_client_names_the_right_cache():
    import redis
    import redis.asyncio

    with pytest.raises(UsageError, match="AsyncAPICache"):
        resolve(redis.asyncio.Redis(port=1), want_async=False)
    with pytest.raises(UsageError, match="use APICache"):
        resolve(redis.Redis(port=1), want_async=True)
    with pytest.raises(UsageError, match="not a int"):
        resolve(42, want_async=False)  # an int is not a client


def test_an_applications_client_is_named_without_its_password():
    import redis

    settings = describe_client(redis.Redis(host="10.0.0.5", port=6380, db=2, password="hunter2"))
    assert settings.masked_url() == "redis://10.0.0.5:6380/2"
    assert settings.password == "hunter2"  # known, so error messages can scrub it
