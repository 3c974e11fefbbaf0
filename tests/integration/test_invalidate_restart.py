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
