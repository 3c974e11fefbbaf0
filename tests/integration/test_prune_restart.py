"""A server restarted in the middle of a prune. It may come back with the data it had before
the run (an RDB file loaded, a lagging replica promoted): every member pruned before the restart
dangles again. Or with its data kept: SCAN's cursor then means nothing to it, and a pass that
went on with it would miss sets. Either way the run goes through everything again, and only a
pass that saw no restart ends it as done.

The restart is done from the run's own progress callback, at a known point, without sleeping
(as in test_invalidate_restart.py)."""

from __future__ import annotations

import time

import pytest

from cachectl.config import Settings
from cachectl.layout import Layout
from cachectl.ops.prune import PruneOptions, prune
from cachectl.store import Store

LAYOUT = Layout()
N_SETS = 120  # enough that SCAN, 10 keys a call, takes many pages
DANGLING_PER_SET = 6
HOUR_MS = 3_600_000


def live(i: int) -> str:
    return LAYOUT.entry("live", {"id": i})


def gone(i: int, j: int) -> str:
    return LAYOUT.entry("gone", {"set": i, "id": j})


def tag(i: int) -> str:
    return LAYOUT.tag(f"t{i}") if i % 3 else LAYOUT.dependency(f"r{i}")


def load(client) -> None:
    """Tag and dependency sets with dangling members and, in even sets, a live one (so prune
    empties the odd sets, and Redis deletes them); both logs
    with the same; response times older and younger than an hour; keys outside the cache."""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for i in range(N_SETS):
        members = [gone(i, j) for j in range(DANGLING_PER_SET)]
        if i % 2 == 0:
            pipe.set(live(i), "{}")
            members.append(live(i))
            pipe.zadd(LAYOUT.entries_log(), {live(i): 1_000})
            pipe.zadd(LAYOUT.access_log(), {live(i): 1_000})
        pipe.sadd(tag(i), *members)
        pipe.zadd(LAYOUT.entries_log(), {m: 2_000 for m in members if m != live(i)})
        pipe.zadd(LAYOUT.access_log(), {m: 2_000 for m in members if m != live(i)})
    pipe.zadd(
        LAYOUT.response_times(),
        {f"old-{i}": now_ms - 2 * HOUR_MS + i for i in range(200)}
        | {f"recent-{i}": now_ms - 60_000 for i in range(5)},
    )
    for i in range(50):
        pipe.set(f"session:{i}", "s")
    pipe.execute()


def left(client) -> dict[str, int]:
    """What a finished prune leaves nothing of, and what it must keep."""
    logs = (LAYOUT.entries_log(), LAYOUT.access_log())
    return {
        "dangling set members": sum(
            len([m for m in client.smembers(tag(i)) if b":gone:" in m]) for i in range(N_SETS)
        ),
        "dangling log members": sum(
            len([m for m in client.zrange(log, 0, -1) if b":gone:" in m]) for log in logs
        ),
        "old response times": client.zcount(
            LAYOUT.response_times(), "-inf", int(time.time() * 1000) - HOUR_MS
        ),
    }


def kept(client) -> dict:
    return {
        "live set members": [client.sismember(tag(i), live(i)) for i in range(0, N_SETS, 2)],
        "logged": [
            client.zscore(log, live(i))
            for log in (LAYOUT.entries_log(), LAYOUT.access_log())
            for i in range(0, N_SETS, 2)
        ],
        "recent response times": [
            client.zscore(LAYOUT.response_times(), f"recent-{i}") for i in range(5)
        ],
        "sessions": client.mget([f"session:{i}" for i in range(50)]),
        "entries": client.mget([live(i) for i in range(0, N_SETS, 2)]),
    }


NOTHING_LEFT = {"dangling set members": 0, "dangling log members": 0, "old response times": 0}
OPTIONS = PruneOptions(batch_size=20, scan_count=10)


def restart_when(server, should_restart, *, keep_data: bool):
    """An on_progress callback that restarts the server at each progress report
    `should_restart(progress, restarts_so_far)` says yes to: from the snapshot SAVEd before the
    run, or (keep_data) from one SAVEd at that moment."""
    restarts = []

    def on_progress(progress):
        if should_restart(progress, len(restarts)):
            restarts.append(progress.phase)
            if keep_data:
                with server.client() as client:
                    client.save()
            server.kill()
            server.restart()

    on_progress.restarts = restarts
    return on_progress


@pytest.fixture
def snapshot_loaded(make_redis):
    """A server holding the data, SAVEd: a restart comes back with it as it was before the run."""
    server = make_redis()
    with server.client() as client:
        load(client)
        client.save()
        before = kept(client)
    return server, before


WHEN = [
    pytest.param(lambda p, n: n == 0 and p.phase == "sets" and p.removed > 0, id="during-the-sets"),
    pytest.param(lambda p, n: n == 0 and p.phase == "logs", id="during-the-logs"),
    pytest.param(lambda p, n: n == 0 and p.phase == "response times", id="after-everything"),
]


@pytest.mark.parametrize("keep_data", [False, True], ids=["rolled-back", "data-kept"])
@pytest.mark.parametrize("when", WHEN)
def test_restart_mid_prune_is_pruned_again_and_nothing_is_left(snapshot_loaded, when, keep_data):
    server, before = snapshot_loaded
    on_progress = restart_when(server, when, keep_data=keep_data)
    with Store(Settings(url=server.url, retries=12)) as store:
        result = prune(store, OPTIONS, on_progress=on_progress)
    assert on_progress.restarts, "the server was never restarted"
    assert result.failure is None, result.failure
    with server.client() as client:
        assert left(client) == NOTHING_LEFT
        assert kept(client) == before
    assert result.passes == 2
    assert any("restarted" in note for note in result.notes)


def test_dry_run_through_a_restart_counts_as_one_without(snapshot_loaded):
    server, _ = snapshot_loaded
    with Store(Settings(url=server.url, retries=12)) as store:
        quiet = prune(store, PruneOptions(batch_size=20, scan_count=10, dry_run=True))
        on_progress = restart_when(
            server, lambda p, n: n == 0 and p.members_checked > 100, keep_data=True
        )
        restarted = prune(
            store, PruneOptions(batch_size=20, scan_count=10, dry_run=True), on_progress=on_progress
        )
    assert on_progress.restarts
    assert restarted.failure is None and restarted.passes == 2
    counts = ("sets_scanned", "members_checked", "members_removed", "sets_deleted")
    counts += ("sets_updated", "entries_log_removed", "access_log_removed")
    counts += ("response_times_removed",)
    assert {c: getattr(restarted, c) for c in counts} == {c: getattr(quiet, c) for c in counts}


def test_restarts_in_every_pass_end_the_run_saying_what_may_be_left(snapshot_loaded):
    server, _ = snapshot_loaded

    def once_per_pass(progress, restarts):
        return progress.removed > 0 and restarts < progress.attempt

    on_progress = restart_when(server, once_per_pass, keep_data=False)
    with Store(Settings(url=server.url, retries=12)) as store:
        result = prune(store, OPTIONS, on_progress=on_progress)
    assert len(on_progress.restarts) == 3
    assert result.failure is not None and result.failure.exit_code != 0
    message = result.failure.message
    assert "restarted" in message and "3 passes" in message
    assert "dangling members" in message
    assert result.changed  # the CLI then exits 6: partial, rerun to finish
    with server.client() as client:
        assert left(client) != NOTHING_LEFT


def test_restart_is_seen_by_a_user_who_may_not_send_info(make_redis):
    """INFO is in @dangerous, which many ACLs deny: the restart is seen by the connections it
    broke, which the run made again."""
    server = make_redis(
        password="admin-pass", acl_users=["noinfo on >noinfo-pass ~* &* +@all -info"]
    )
    with server.client() as client:
        load(client)
        client.save()
        before = kept(client)
    url = f"redis://noinfo:noinfo-pass@{server.host}:{server.port}/0"
    on_progress = restart_when(server, WHEN[0].values[0], keep_data=False)
    with Store(Settings(url=url, retries=12)) as store:
        result = prune(store, OPTIONS, on_progress=on_progress)
    assert on_progress.restarts, "the server was never restarted"
    assert result.failure is None, result.failure
    with server.client() as client:
        assert left(client) == NOTHING_LEFT
        assert kept(client) == before
    assert result.passes == 2
    assert any("restarted" in note for note in result.notes)
