"""`cachectl prune`: take out what points at entries that no longer exist.

Tag and dependency sets only grow while applications write (docs/keyspace.md), and the write and
access logs keep a member for every entry ever written; once entries expire, those members
dangle. Prune removes them, lets Redis delete the sets left empty, and trims the response-time
log to its last hour.

Removing a member races with applications writing: between our EXISTS (gone) and our SREM, an
application may re-create the entry (SET, then SADD). So after each SREM the removed members
are checked once more and any whose entry is back is put back: with SET-then-SADD writers no
live entry ends up missing from its set. Everything runs in pipelined batches, paced, over
every primary of a cluster, a SCAN or SSCAN page at a time.

A server that restarts during a run may come back with members the run had removed (an RDB or
AOF file loaded, a lagging replica promoted), and SCAN's cursor means nothing to it. So the run
compares the deployment's epoch (`Store.epoch`: every primary's run_id where INFO is allowed,
and the connections made again to each, which a restart forces) at the start and the end of a
pass over everything (sets, logs, response times); when it changed, it makes another whole pass, and only a pass that saw no
restart ends the run as done (the same check as `invalidate`'s).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import CachectlError, RedisError
from cachectl.keytext import show_bytes
from cachectl.layout import Layout

if TYPE_CHECKING:
    import threading

    from cachectl.signals import StopFlag
    from cachectl.store import Pacer, Store

INDEX_KINDS = ("tag", "dependency")
RESPONSE_TIMES_KEPT_MS = 3_600_000  # docs/keyspace.md: the response-time log keeps the last hour
PROBE_NAME = "__cachectl_prune_probe__"
PASSES = 3  # passes over everything that each saw a server restart: the run gives up
RESTART_NOTE = (
    "a server restarted during the run (a primary's run_id changed, or its connections were "
    "broken and made again) and may have come back with members already removed, or lost "
    "SCAN's place: went through everything again"
)


# --- shared with invalidate: index upkeep ------------------------------------------------


def raise_refusals(replies: list) -> list:
    """send_many puts a refused command's error in its place; a refusal here stops the job."""
    for reply in replies:
        if isinstance(reply, CachectlError):
            raise reply
    return replies


def set_member_pages(
    store: Store, set_keys: Sequence[bytes], count: int, pacer: Pacer | None = None
) -> Iterator[tuple[bytes, list[bytes]]]:
    """(set, members) a SSCAN page at a time; the first page of every set in one pipelined
    round trip, since most index sets are small. The pacer is charged the members read."""
    if not set_keys:
        return
    firsts = store.pipelined("SSCAN", set_keys, 0, "COUNT", count)
    if pacer:
        pacer.take(sum(len(members) for _, members in firsts))
    for key, (cursor, members) in zip(set_keys, firsts):
        yield key, members
        while int(cursor) != 0:
            cursor, members = store.execute("SSCAN", key, cursor, "COUNT", count)
            if pacer:
                pacer.take(len(members))
            yield key, members


def drop_dangling(
    store: Store,
    pairs: Sequence[tuple[bytes, bytes]],
    *,
    zset_score_ms: int | None = None,
    dry_run: bool = False,
) -> dict[bytes, int]:
    """Removes each (container, member) pair whose member key no longer exists; returns the
    members removed (or, with dry_run, that would be) per container.

    Containers are sets (SREM) or, given `zset_score_ms`, sorted sets (ZREM). A member whose
    key is back after the removal is put back (SADD, or ZADD GT at `zset_score_ms`).
    """
    if not pairs:
        return {}
    live = store.exists_many([m for _, m in pairs])
    gone: dict[bytes, list[bytes]] = defaultdict(list)
    for (container, member), exists in zip(pairs, live):
        if not exists:
            gone[container].append(member)
    if dry_run or not gone:
        return {c: len(ms) for c, ms in gone.items()}
    remove = "ZREM" if zset_score_ms is not None else "SREM"
    replies = raise_refusals(store.send_many([(remove, c, *ms) for c, ms in gone.items()]))
    removed = dict(zip(gone, replies))
    removed_pairs = [(c, m) for c, ms in gone.items() for m in ms]
    back: dict[bytes, list[bytes]] = defaultdict(list)
    for (container, member), exists in zip(
        removed_pairs, store.exists_many([m for _, m in removed_pairs])
    ):
        if exists:
            back[container].append(member)
    if back:
        if zset_score_ms is None:
            commands = [("SADD", c, *ms) for c, ms in back.items()]
        else:
            commands = [
                ("ZADD", c, "GT", *[x for m in ms for x in (zset_score_ms, m)])
                for c, ms in back.items()
            ]
        for container, added in zip(back, raise_refusals(store.send_many(commands))):
            removed[container] -= added
    return removed


def server_time_ms(store: Store) -> int:
    seconds, micros = store.execute("TIME")
    return int(seconds) * 1000 + int(micros) // 1000


# --- prune -----------------------------------------------------------------------------------


def permission_probes(layout: Layout, *, dry_run: bool = False) -> list[tuple]:
    """Every command a prune sends (a dry run: its reads), aimed at keys and members that do
    not exist, for cachectl.ops.permissions. SADD, which puts back a member whose entry came
    back meanwhile, has no form that changes nothing: it adds the probe entry to the probe
    set, and SREM (probed just before) takes it out again, which deletes the set. The run's
    record in `history` is left out: the run goes on without it."""
    entry = layout.entry(PROBE_NAME)
    probes: list[tuple] = [("TIME",), ("SCAN", 0, "TYPE", "set", "COUNT", 1), ("EXISTS", entry)]
    for container in (layout.tag(PROBE_NAME), layout.dependency(PROBE_NAME)):
        probes += [("SSCAN", container, 0, "COUNT", 1), ("EXISTS", container)]
        if not dry_run:
            probes += [("SREM", container, entry), ("SADD", container, entry)]
            probes.append(("SREM", container, entry))
    for log in (layout.entries_log(), layout.access_log()):
        probes.append(("ZSCAN", log, 0, "COUNT", 1))
        if not dry_run:
            probes += [("ZREM", log, entry), ("ZADD", log, "XX", "GT", 0, entry)]
    log = layout.response_times()
    if dry_run:
        probes.append(("ZCOUNT", log, "-inf", "(0"))
    else:
        probes += [("ZRANGE", log, "-inf", "(0", "BYSCORE", "LIMIT", 0, 1), ("ZREM", log, entry)]
    return probes


@dataclass
class PruneProgress:
    phase: str  # "sets" | "logs" | "response times" | "done"
    sets_scanned: int
    members_checked: int
    removed: int
    elapsed_seconds: float
    attempt: int = 1  # the pass over everything: more than 1 after a server restart


@dataclass
class PruneResult:
    """What a run did. After a server restart the run goes through everything again (see
    `passes`): the counts then add up every pass, so a member that the restart brought back and
    that was removed again is counted each time; a dry run's counts are of its last pass."""

    dry_run: bool = False
    sets_scanned: int = 0
    members_checked: int = 0
    members_removed: int = 0  # from tag and dependency sets
    sets_deleted: int = 0  # emptied, so Redis deleted them
    sets_updated: int = 0
    entries_log_removed: int = 0
    access_log_removed: int = 0
    response_times_removed: int = 0
    # Sets an interrupted `invalidate` left half done: rerunning that command finishes them.
    pending_invalidations: list[str] = field(default_factory=list)
    passes: int = 1  # over everything: more than 1 when a server restarted during a pass
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    duration_seconds: float = 0.0
    failure: CachectlError | None = None

    @property
    def changed(self) -> bool:
        return not self.dry_run and bool(
            self.members_removed
            or self.entries_log_removed
            or self.access_log_removed
            or self.response_times_removed
        )

    def to_dict(self) -> dict:
        out = asdict(self)
        out["duration_seconds"] = round(self.duration_seconds, 3)
        out["failure"] = self.failure.to_dict() if self.failure else None
        return out


COUNTS = (
    "sets_scanned",
    "members_checked",
    "members_removed",
    "sets_deleted",
    "sets_updated",
    "entries_log_removed",
    "access_log_removed",
    "response_times_removed",
)


@dataclass
class PruneOptions:
    scan_count: int = 1000
    batch_size: int = 1000
    rate: float | None = None  # members (and SCAN's keys) looked at per second
    dry_run: bool = False


def prune(
    store: Store,
    options: PruneOptions,
    *,
    on_progress: Callable[[PruneProgress], None] | None = None,
    stop: StopFlag | threading.Event | None = None,
) -> PruneResult:
    """Removes dangling index members, trims the logs; see the module docstring.

    A command the ACL user may not send is found before anything changes (`failure`, nothing
    done); a Redis error after the retries is returned in `failure` with what was done so far;
    a set `stop` event ends the run after the current batch (`interrupted`). A server restart
    during a pass makes the run go through everything again; one during each of PASSES passes
    ends it with a `failure` saying what may be left.
    """
    from cachectl.ops.permissions import check_probes
    from cachectl.store import BLIND_NOTE, Pacer

    layout = Layout(store.settings.layout)
    run = _Run(
        store,
        layout,
        options,
        PruneResult(dry_run=options.dry_run),
        Pacer(options.rate) if options.rate else None,
        on_progress,
        stop,
    )
    result = run.result
    try:
        # Refused part way, a prune would have changed part of the indexes and could never
        # finish by being run again: every command it sends is tried first.
        check_probes(store, permission_probes(layout, dry_run=options.dry_run))
        # A server that restarted may be back with members this run removed (an RDB file, a
        # lagging replica promoted), and SCAN's cursor means nothing to it: a pass that saw a
        # restart proves nothing, and the run goes through everything again.
        epoch = store.epoch()
        if epoch.blind:
            result.notes.append(BLIND_NOTE)
        for attempt in range(1, PASSES + 1):
            result.passes = attempt
            run.one_pass()
            if result.interrupted:
                break
            now = store.epoch()
            if now == epoch:
                break
            epoch = now
            if attempt < PASSES and RESTART_NOTE not in result.notes:
                result.notes.append(RESTART_NOTE)
        else:
            result.failure = RedisError(
                f"servers restarted during each of {PASSES} passes: dangling members may be "
                "left in tag and dependency sets and in the write and access logs, and response "
                "times older than an hour in their log",
                hint="rerun once the servers are stable",
            )
    except RedisError as err:
        result.failure = err
    run.progress("done")
    return result


class _Run:
    """One prune: its passes over the sets, then the logs, then the response times."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        options: PruneOptions,
        result: PruneResult,
        pacer: Pacer | None,
        on_progress: Callable[[PruneProgress], None] | None,
        stop: StopFlag | threading.Event | None,
    ):
        self.store = store
        self.layout = layout
        self.options = options
        self.result = result
        self.pacer = pacer
        self.on_progress = on_progress
        self.stop = stop
        self.started = time.monotonic()

    def progress(self, phase: str) -> None:
        result = self.result
        result.duration_seconds = time.monotonic() - self.started
        if self.on_progress:
            self.on_progress(
                PruneProgress(
                    phase,
                    result.sets_scanned,
                    result.members_checked,
                    _removed(result),
                    result.duration_seconds,
                    result.passes,
                )
            )

    def stopped(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.result.interrupted = True
        return self.result.interrupted

    def one_pass(self) -> None:
        """Everything once: a pass after a restart finds again what is left, and what the
        restart brought back. A dry run counts afresh, so its counts are of one pass."""
        result = self.result
        result.pending_invalidations = []
        if self.options.dry_run:
            for name in COUNTS:
                setattr(result, name, 0)
        now_ms = server_time_ms(self.store)
        self._sets()
        if not self.stopped():
            self._logs(now_ms)
        if not self.stopped():
            result.response_times_removed += _trim_response_times(
                self.store,
                self.layout.response_times(),
                now_ms - RESPONSE_TIMES_KEPT_MS,
                self.options,
                self.pacer,
                self.stopped,
            )
            self.progress("response times")

    def _sets(self) -> None:
        store, layout, options, result = self.store, self.layout, self.options, self.result
        touched: set[bytes] = set()
        seen_in_set: dict[bytes, int] = defaultdict(int)
        gone_in_set: dict[bytes, int] = defaultdict(int)
        for _, keys in store.scan_nodes(type="set", count=options.scan_count, pacer=self.pacer):
            kinds = [layout.kind(k) for k in keys]
            # A pending set is left whole for the rerun of its `invalidate` to finish.
            sets = [k for k, kind in zip(keys, kinds) if kind in INDEX_KINDS]
            result.sets_scanned += len(sets)
            result.pending_invalidations += [
                show_bytes(k)  # escaped as every command prints keys
                for k, kind in zip(keys, kinds)
                if kind == "pending_set"
            ]
            for pairs in _pair_batches(
                set_member_pages(store, sets, options.scan_count, self.pacer),
                options.batch_size,
            ):
                if self.stopped():
                    break
                for container, _ in pairs:
                    seen_in_set[container] += 1
                removed = drop_dangling(store, pairs, dry_run=options.dry_run)
                for container, n in removed.items():
                    gone_in_set[container] += n
                    result.members_removed += n
                    if n:
                        touched.add(container)
                result.members_checked += len(pairs)
                self.progress("sets")
            if self.stopped():
                break
        if options.dry_run:
            emptied = {s for s in touched if gone_in_set[s] >= seen_in_set[s]}
        elif touched:
            ordered = sorted(touched)
            emptied = {s for s, e in zip(ordered, store.exists_many(ordered)) if not e}
        else:
            emptied = set()
        result.sets_deleted += len(emptied)
        result.sets_updated += len(touched) - len(emptied)

    def _logs(self, now_ms: int) -> None:
        result, options = self.result, self.options
        for log, field_name in (
            (self.layout.entries_log(), "entries_log_removed"),
            (self.layout.access_log(), "access_log_removed"),
        ):
            if self.stopped():
                return
            for pairs in _pair_batches(
                _zset_pages(self.store, log, options.scan_count), options.batch_size
            ):
                if self.stopped():
                    return
                if self.pacer:
                    self.pacer.take(len(pairs))
                removed = drop_dangling(
                    self.store, pairs, zset_score_ms=now_ms, dry_run=options.dry_run
                )
                setattr(result, field_name, getattr(result, field_name) + sum(removed.values()))
                result.members_checked += len(pairs)
                self.progress("logs")


def _removed(result: PruneResult) -> int:
    return (
        result.members_removed
        + result.entries_log_removed
        + result.access_log_removed
        + result.response_times_removed
    )


def _pair_batches(
    pages: Iterable[tuple[bytes, list[bytes]]], size: int
) -> Iterator[list[tuple[bytes, bytes]]]:
    batch: list[tuple[bytes, bytes]] = []
    for container, members in pages:
        batch.extend((container, m) for m in members)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _zset_pages(store: Store, key: str, count: int) -> Iterator[tuple[bytes, list[bytes]]]:
    cursor = 0
    while True:
        cursor, pairs = store.execute("ZSCAN", key, cursor, "COUNT", count)
        yield key.encode(), [member for member, _ in pairs]
        if int(cursor) == 0:
            return


def _trim_response_times(
    store: Store,
    key: str,
    cutoff_ms: int,
    options: PruneOptions,
    pacer: Pacer | None,
    stopped: Callable[[], bool],
) -> int:
    """Removes members scored before `cutoff_ms`, a page at a time: one ZREMRANGEBYSCORE
    over millions of members would stall every client while it runs."""
    if options.dry_run:
        return int(store.execute("ZCOUNT", key, "-inf", f"({cutoff_ms}"))
    removed = 0
    while not stopped():
        old = store.execute(
            "ZRANGE", key, "-inf", f"({cutoff_ms}", "BYSCORE", "LIMIT", 0, options.batch_size
        )
        if not old:
            break
        if pacer:
            pacer.take(len(old))
        removed += int(store.execute("ZREM", key, *old))
    return removed
