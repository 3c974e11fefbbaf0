"""A server killed in the middle of an invalidation: retried with backoff when it comes back,
reported honestly when it does not, and finished by a rerun either way. The servers keep an
append-only file, so what was written survives the kill as it would in production."""

from __future__ import annotations

import threading
import time

import pytest

from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.invalidate import InvalidateOptions, invalidate
from cachectl.ops.selection import Filters, SelectionSpec, resolve_selection
from cachectl.store import Store

LAYOUT = Layout()
DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]


def load(client, n_matching: int, n_other: int, tag: str | None = None) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(n_matching):
        key = LAYOUT.entry("k", {"id": i})
        pipe.set(key, "v")
        if tag:
            pipe.sadd(LAYOUT.tag(tag), key)
    for i in range(n_other):
        pipe.set(LAYOUT.entry("other", {"id": i}), "v")
    pipe.execute()


def wait_for_deletions(client, n_matching: int, timeout: float = 30) -> None:
    """Until the run has deleted something: the kill then lands mid-run, not before it."""
    keys = [LAYOUT.entry("k", {"id": i}) for i in range(n_matching)]
    deadline = time.monotonic() + timeout
    while client.exists(*keys) == n_matching:
        assert time.monotonic() < deadline, "the run never started deleting"
        time.sleep(0.02)


def run_in_thread(store, selection, options):
    box = {}
    thread = threading.Thread(
        target=lambda: box.setdefault("result", invalidate(store, selection, Filters(), options))
    )
    thread.start()
    return thread, box


@pytest.mark.parametrize(
    "spec", [{"patterns": ["api_cache:k:*"]}, {"tags": ["t"]}], ids=["pattern", "tag"]
)
def test_restart_mid_run_is_ridden_out_and_nothing_is_missed(make_redis, spec):
    server = make_redis(extra_args=DURABLE)
    client = server.client()
    load(client, 6000, 2000, tag="t")
    selection = resolve_selection(LAYOUT, SelectionSpec(**spec))
    with Store(Settings(url=server.url, retries=12)) as store:
        thread, box = run_in_thread(
            store, selection, InvalidateOptions(batch_size=100, scan_count=100, rate=2000)
        )
        wait_for_deletions(client, 6000)
        server.kill()
        time.sleep(0.3)  # down for a moment, as a restart is
        server.restart()
        thread.join(timeout=60)
    result = box["result"]
    assert result.failure is None, result.failure
    client = server.client()
    assert list(client.scan_iter("api_cache:k:*", count=1000)) == []
    assert len(list(client.scan_iter("api_cache:other:*", count=1000))) == 2000
    if "tags" in spec:
        assert list(client.scan_iter("tag:*")) == []
    assert any("restarted" in note for note in result.notes)


def test_server_that_stays_down_is_reported_and_a_rerun_finishes(make_redis):
    server = make_redis(extra_args=DURABLE)
    watcher = server.client()
    load(watcher, 3000, 500, tag="t")
    tag_key = LAYOUT.tag("t").encode()
    selection = resolve_selection(LAYOUT, SelectionSpec(tags=["t"]))
    with Store(Settings(url=server.url, retries=1, connect_timeout=1)) as store:
        thread, box = run_in_thread(
            store, selection, InvalidateOptions(batch_size=50, scan_count=50, rate=1000)
        )
        wait_for_deletions(watcher, 3000)
        server.kill()
        thread.join(timeout=60)
    first = box["result"]
    assert first.failure is not None and first.failure.exit_code == 4
    assert first.changed and 0 < first.deleted < 3000
    assert first.pending_sets == [LAYOUT.pending_set(tag_key).decode()]

    server.restart()
    client = server.client()
    left = [k for k in (LAYOUT.entry("k", {"id": i}) for i in range(3000)) if client.exists(k)]
    assert 3000 - len(left) >= first.deleted  # the summary never claims more than happened
    with Store(Settings(url=server.url)) as store:
        second = invalidate(store, selection, Filters(), InvalidateOptions())
    assert second.failure is None and second.pending_sets == []
    assert second.deleted == len(left)
    assert list(client.scan_iter("api_cache:k:*", count=1000)) == []
    assert len(list(client.scan_iter("api_cache:other:*", count=1000))) == 500
    assert client.keys("tag:*") == []


# --- a restart that brings the data back -----------------------------------------------------
# The server keeps no append-only file here: it comes back with the snapshot SAVEd before the
# run, as one loaded from an RDB file (or a lagging replica promoted) does. Every entry the run
# deleted before the restart is then there again. The restart is done from the run's own
# progress callback, so it lands at a known point without any sleeping.


def restart_when(server, should_restart):
    """An on_progress callback that kills the server and restarts it (from its snapshot) at
    each progress report `should_restart(progress, restarts_so_far)` says yes to."""
    restarts = []

    def on_progress(progress):
        if should_restart(progress, len(restarts)):
            restarts.append(progress.deleted)
            server.kill()
            server.restart()

    on_progress.restarts = restarts
    return on_progress


def snapshot_loaded(make_redis, n_matching: int, n_other: int):
    server = make_redis()
    client = server.client()
    load(client, n_matching, n_other, tag="t")
    client.save()
    return server, client


@pytest.mark.parametrize(
    "spec", [{"patterns": ["api_cache:k:*"]}, {"tags": ["t"]}], ids=["pattern", "tag"]
)
@pytest.mark.parametrize(
    "when",
    [
        pytest.param(lambda p, n: n == 0 and p.deleted > 0, id="after-the-first-batch"),
        pytest.param(lambda p, n: n == 0 and p.deleted >= 3000, id="after-every-deletion"),
    ],
)
def test_restart_that_brings_the_data_back_is_deleted_again(make_redis, spec, when):
    server, _ = snapshot_loaded(make_redis, 3000, 500)
    selection = resolve_selection(LAYOUT, SelectionSpec(**spec))
    on_progress = restart_when(server, when)
    with Store(Settings(url=server.url, retries=12)) as store:
        result = invalidate(
            store,
            selection,
            Filters(),
            InvalidateOptions(batch_size=100, scan_count=100),
            on_progress=on_progress,
        )
    assert on_progress.restarts, "the server was never restarted"
    assert result.failure is None, result.failure
    client = server.client()
    assert list(client.scan_iter("api_cache:k:*", count=1000)) == []
    assert len(list(client.scan_iter("api_cache:other:*", count=1000))) == 500
    if "tags" in spec:
        assert list(client.scan_iter("tag:*")) == []
    assert any("restarted" in note for note in result.notes)
    # The entries are counted once; the ones the restart brought back are counted apart.
    assert result.matched == 3000 == result.deleted + result.already_gone
    assert result.deleted_again > 0


def test_restarts_in_every_pass_end_the_run_with_what_is_left_named(make_redis):
    server, _ = snapshot_loaded(make_redis, 1000, 100)
    selection = resolve_selection(LAYOUT, SelectionSpec(patterns=["api_cache:k:*"], tags=["t"]))

    def once_per_attempt(progress, restarts):
        return progress.deleted > 0 and restarts < progress.attempt

    on_progress = restart_when(server, once_per_attempt)
    with Store(Settings(url=server.url, retries=12)) as store:
        result = invalidate(
            store,
            selection,
            Filters(),
            InvalidateOptions(batch_size=100, scan_count=100),
            on_progress=on_progress,
        )
    assert result.failure is not None
    assert result.failure.exit_code != 0
    message = result.failure.message
    assert "restarted" in message
    assert "pattern api_cache:k:*" in message and "tag t" in message
    assert result.changed  # the CLI then exits 6: partial
    assert server.client().exists(*[LAYOUT.entry("k", {"id": i}) for i in range(1000)]) > 0


# --- a user who may not send INFO ------------------------------------------------------------
# INFO is in @dangerous, which many ACLs deny: the run_id cannot be read. A restart still breaks
# every connection to the server, and the run sees the connections made again.

ADMIN_PASSWORD = "admin-pass"
NOINFO = ("noinfo", "noinfo-pass")


def noinfo_snapshot_loaded(make_redis, n_matching: int, n_other: int):
    user, password = NOINFO
    server = make_redis(
        password=ADMIN_PASSWORD, acl_users=[f"{user} on >{password} ~* &* +@all -info"]
    )
    client = server.client()
    load(client, n_matching, n_other, tag="t")
    client.save()
    return server, f"redis://{user}:{password}@{server.host}:{server.port}/0"


@pytest.mark.parametrize(
    "spec", [{"patterns": ["api_cache:k:*"]}, {"tags": ["t"]}], ids=["pattern", "tag"]
)
def test_restart_is_seen_by_a_user_who_may_not_send_info(make_redis, spec):
    server, url = noinfo_snapshot_loaded(make_redis, 3000, 500)
    selection = resolve_selection(LAYOUT, SelectionSpec(**spec))
    on_progress = restart_when(server, lambda p, n: n == 0 and p.deleted > 0)
    with Store(Settings(url=url, retries=12)) as store:
        result = invalidate(
            store,
            selection,
            Filters(),
            InvalidateOptions(batch_size=100, scan_count=100),
            on_progress=on_progress,
        )
    assert on_progress.restarts, "the server was never restarted"
    assert result.failure is None, result.failure
    client = server.client()
    assert list(client.scan_iter("api_cache:k:*", count=1000)) == []
    assert len(list(client.scan_iter("api_cache:other:*", count=1000))) == 500
    assert any("restarted" in note for note in result.notes)


def test_a_client_passed_in_and_no_info_says_restarts_cannot_be_seen(make_redis):
    import redis

    _, url = noinfo_snapshot_loaded(make_redis, 10, 0)
    selection = resolve_selection(LAYOUT, SelectionSpec(patterns=["api_cache:k:*"]))
    with redis.Redis.from_url(url) as own:
        store = Store(Settings(url=url), client=own)
        result = invalidate(store, selection, Filters(), InvalidateOptions())
    assert result.failure is None and result.deleted == 10
    assert any("cannot be detected" in note for note in result.notes)


# --- a dry run through a restart --------------------------------------------------------------
# A dry run has no progress callback: the restart is done by the reader of its keys, after it
# has read some, so it lands mid-scan.


def preview_restarting(server, store, spec, after: int):
    from cachectl.ops.invalidate import InvalidateResult, preview

    selection = resolve_selection(LAYOUT, SelectionSpec(**spec))
    result = InvalidateResult()
    listed = []
    for key in preview(
        store, selection, Filters(), InvalidateOptions(batch_size=50, scan_count=50), result
    ):
        listed.append(key)
        if len(listed) == after:
            server.kill()
            server.restart()
    return result, listed


@pytest.mark.parametrize("info", [True, False], ids=["info", "no-info"])
def test_dry_run_through_a_restart_counts_a_clean_pass(make_redis, info):
    if info:
        server, _ = snapshot_loaded(make_redis, 3000, 500)
        url = server.url
    else:
        server, url = noinfo_snapshot_loaded(make_redis, 3000, 500)
    with Store(Settings(url=url, retries=12)) as store:
        result, listed = preview_restarting(server, store, {"patterns": ["api_cache:k:*"]}, 500)
    assert result.matched == 3000
    assert set(listed) == {LAYOUT.entry("k", {"id": i}).encode() for i in range(3000)}
    assert len(listed) == 3000  # a later pass lists only what no pass listed before
    assert any("restarted during the dry run" in note for note in result.notes)
