"""`cachectl invalidate`: delete exactly the selected cache entries, fast and gently.

How a run goes:
- A producer thread finds the entries (exact keys, then tag and dependency sets, then SCAN
  MATCH over every primary), keeps only cache entries, drops repeats and applies the filters
  (pipelined PTTL, OBJECT IDLETIME, ZMSCORE on the write log, MEMORY USAGE). The main thread
  deletes what it hands over (a bounded queue between them), so scanning and deleting overlap:
  UNLINK in pipelined batches grouped by slot, with the keys' ZREM from the write and access
  logs in the same round trip.
- A whole tag or dependency set is taken atomically: RENAMENX to a pending name in the same hash
  slot, so a write that lands during the run goes to a fresh set. Nobody writes to the pending
  set; it is read a SSCAN page at a time (no SMEMBERS stall), its entries deleted in batches,
  and it is UNLINKed only after the last of them. A crash or Ctrl-C leaves it whole, and a rerun
  of the same command finds it (its name is fixed) and goes through it first; entries already
  deleted then count as already gone.
- With filters, a set is not taken whole: its matching entries are deleted and then SREMed
  from it (only those still gone: see `prune.drop_dangling`).
- Entries found by a pattern or an endpoint scan are then swept out of every tag and dependency
  set that names them, unless the caller skips it; after exact keys or sets only when asked
  (`index_cleanup="sweep"`). The sets are found by a `SCAN ... TYPE set` walk afterwards;
  members that the scans select and whose entry is gone go too, so the rerun of an interrupted
  run also finishes the cleanup its first run did not get to.
- A server that restarts during a run may come back with data (an RDB or AOF file loaded, a
  replica that lags promoted) holding entries the run had already deleted, and SCAN's cursor
  means nothing to it (its hash seed changes). So a run compares every primary's run_id at the
  start and the end of its pass over the selection; when one changed, it goes through the whole
  selection again, with its de-duplication started afresh, and only a pass that saw no restart
  ends the run as done. A tag whose pending set vanished with the restart is taken again from
  its live set.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from typing import TYPE_CHECKING

from cachectl.errors import (
    CachectlError,
    NotFoundError,
    RedisError,
    RedisPermissionError,
    UsageError,
)
from cachectl.keytext import show_bytes
from cachectl.layout import Layout
from cachectl.ops.permissions import check_probes
from cachectl.ops.prune import (
    INDEX_KINDS,
    drop_dangling,
    primary_run_ids,
    server_time_ms,
    set_member_pages,
)
from cachectl.ops.selection import Filters, KeySource, ScanSource, Selection, SetSource

if TYPE_CHECKING:
    from cachectl.signals import StopFlag
    from cachectl.store import Pacer, Store

PROBE_NAME = "__cachectl_invalidate_probe__"
QUEUE_BATCHES = 8  # how far scanning may run ahead of deleting
PASSES = 3  # passes over the selection that each saw a server restart: the run gives up
TAKE_ATTEMPTS = 3  # a tag set that other runs keep taking first: give up after this many tries
INDEX_CLEANUP = ("auto", "sweep", "skip")
# A missing set's closest existing names come from a sample of the sets: at most this many
# SCAN calls (of --count keys each), and of names.
CLOSEST_SCAN_CALLS = 20
CLOSEST_NAMES_SAMPLED = 10_000


# --- results ---------------------------------------------------------------------------------


@dataclass
class InvalidateProgress:
    phase: str  # "deleting" | "cleaning indexes"
    scanned: int  # keys SCAN walked over (estimated from COUNT) plus set members read
    scan_total: int | None  # keys in the database, for a bar; None without a scan
    matched: int
    deleted: int  # including entries a restarted server brought back and deleted again
    elapsed_seconds: float
    attempt: int = 1  # the pass over the selection: more than 1 after a server restart


@dataclass
class InvalidateResult:
    """What a run did. `matched` counts distinct selected entries after filters;
    matched = deleted + already_gone (+ what an interruption or failure left undone)."""

    selection: list[str] = field(default_factory=list)
    filters: dict = field(default_factory=dict)
    dry_run: bool = False
    matched: int = 0
    deleted: int = 0
    already_gone: int = 0  # selected, but expired or deleted by someone else first
    deleted_again: int = 0  # deleted, brought back by a server restart, deleted again
    not_entries_skipped: int = 0  # keys a --force pattern or a set named that are not entries
    sets_deleted: int = 0
    sets_updated: int = 0
    log_members_removed: int = 0
    index_cleanup: str = "not needed"  # "swept" | "skipped" | "not needed" | "not finished"
    # Entries deleted while the cleanup was skipped: each may be left as a dangling member of
    # other tag and dependency sets (which ones only a walk of the keyspace can tell).
    unswept_entries: int = 0
    scanned: int = 0
    pending_sets: list[str] = field(default_factory=list)  # left half done: rerun to finish
    # Named tag and dependency sets that do not exist: {"kind", "name", "key", "closest"}.
    missing_sets: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False
    duration_seconds: float = 0.0
    failure: CachectlError | None = None

    @property
    def changed(self) -> bool:
        """Whether the run changed anything (a failure then exits 6, not 4)."""
        return bool(
            self.deleted
            or self.deleted_again
            or self.sets_deleted
            or self.sets_updated
            or self.pending_sets
            or self.log_members_removed
        )

    @property
    def nothing_matched(self) -> bool:
        """No selected entry existed: nothing was (or would be) deleted."""
        if self.dry_run:
            return self.matched == 0
        return self.deleted + self.deleted_again == 0

    def strict_problem(self) -> NotFoundError | None:
        """What --strict turns into exit 5 (not found): a named set that does not exist, or a
        selection that matched nothing. None when neither."""
        if self.missing_sets:
            first, more = self.missing_sets[0], len(self.missing_sets) - 1
            also = f" (nor {more} more named set{'s' if more > 1 else ''})" if more else ""
            return NotFoundError(
                missing_set_text(first) + also,
                hint="--strict makes a missing set an error",
                details={"missing_sets": self.missing_sets},
            )
        if self.nothing_matched:
            done = "nothing would be deleted" if self.dry_run else "nothing was deleted"
            return NotFoundError(
                f"nothing matched {'; '.join(self.selection)}: {done}",
                hint="--strict makes a selection that matches nothing an error",
            )
        return None

    @property
    def keys_per_second(self) -> float:
        return self.deleted / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["duration_seconds"] = round(self.duration_seconds, 3)
        out["keys_per_second"] = round(self.keys_per_second, 1)
        out["failure"] = self.failure.to_dict() if self.failure else None
        return out


def missing_set_text(missing: dict) -> str:
    """One line on a named set that does not exist (an entry of `missing_sets`)."""
    kind = missing["kind"]
    text = f"{kind} set {missing['key']} does not exist: nothing is cached under it"
    if missing["closest"]:
        text += f"; closest existing {kind} names: {', '.join(missing['closest'])}"
    return text


def closest_set_names(
    store: Store, layout: Layout, kind: str, name: str, pacer: Pacer | None = None
) -> list[str]:
    """Up to 3 existing tag (or dependency) names closest to `name`, from a bounded sample of
    the sets (CLOSEST_SCAN_CALLS SCANs): a hint, so a Redis error means no names."""
    import difflib

    prefix = (layout.config.tag_prefix if kind == "tag" else layout.config.dependency_prefix) + ":"
    pattern = layout.tag_pattern() if kind == "tag" else layout.dependency_pattern()
    names: list[str] = []
    try:
        for calls, (_node, keys) in enumerate(
            store.scan_nodes(match=pattern, type="set", pacer=pacer), start=1
        ):
            names += [
                k[len(prefix) :].decode("utf-8", "backslashreplace")
                for k in keys
                if not layout.is_pending_set(k)
            ]
            if calls >= CLOSEST_SCAN_CALLS or len(names) >= CLOSEST_NAMES_SAMPLED:
                break
    except RedisError:
        return []
    return difflib.get_close_matches(name, list(dict.fromkeys(names)), n=3, cutoff=0.6)


@dataclass
class InvalidateOptions:
    scan_count: int = 1000
    batch_size: int = 1000
    rate: float | None = None  # keys per second, for SCAN's walk and for deletes alike
    index_cleanup: str = "auto"  # auto | sweep | skip: see _Deleter.cleanup_wanted


# --- what travels from the finder to the deleter -------------------------------------------


@dataclass
class _Batch:
    keys: list[bytes]  # entries to delete
    forget_in: bytes | None = None  # a set to remove the deleted `keys` from (filtered sets)


@dataclass
class _SetDrained:
    pending: bytes
    # Set by the deleter once the pending set is gone: only then can the live set take its name.
    gone: threading.Event = field(default_factory=threading.Event)
    # Set with `gone` when a server restarted before the pending set could go: the pending set
    # may be whole again, and is left for the next pass.
    kept: bool = False


_DONE = object()


class _Finder:
    """Finds the selected entries, batch by batch (the producer side)."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        selection: Selection,
        filters: Filters,
        options: InvalidateOptions,
        result: InvalidateResult,
        *,
        take_sets: bool,
        pacer: Pacer | None,
        stop: threading.Event,
    ):
        self.store = store
        self.layout = layout
        self.selection = selection
        self.filters = filters
        self.options = options
        self.result = result
        self.take_sets = take_sets
        self.pacer = pacer
        self.stop = stop
        # Every entry selected in this pass; the deleter reads it (to sweep) once the finder is
        # done. `earlier` holds those of the passes before (see start_again).
        self.seen: set[bytes] = set()
        self.earlier: set[bytes] = set()
        self.attempt = 1
        self.pass_run_ids: dict | None = None  # each primary's run_id when this pass began
        self.renamed: list[bytes] = []
        self.leftover: set[bytes] = set()  # sets an earlier run left a pending set of
        self.scan_total: int | None = None
        self._now_ms: int | None = None

    def start_again(self, run_ids: dict | None) -> None:
        """Readies another pass over the whole selection after a server restart: the restart
        may have brought back entries this run deleted, so nothing selected before is skipped
        (they are counted once, in `matched`, and as `deleted_again` when deleted again)."""
        if self.earlier:
            self.earlier |= self.seen
        else:
            self.earlier = self.seen
        self.seen = set()
        self.attempt += 1
        self.pass_run_ids = run_ids
        self._now_ms = None

    def selected(self, key: bytes) -> bool:
        """Whether the run selected `key`, in any pass."""
        return key in self.seen or key in self.earlier

    def all_selected(self) -> Iterator[bytes]:
        yield from self.earlier
        yield from (k for k in self.seen if k not in self.earlier)

    def batches(self) -> Iterator[_Batch | _SetDrained]:
        for source in self.selection.sources:
            if self.stop.is_set():
                return
            if isinstance(source, KeySource):
                yield from self._chunked(self._select(list(source.keys)))
            elif isinstance(source, SetSource):
                yield from self._set(source)
            else:
                yield from self._scan(source)

    # -- selecting ----------------------------------------------------------------------

    def _select(
        self, keys: list[bytes], endpoint: str | None = None, *, all_entries: bool = False
    ) -> list[bytes]:
        """The keys that are entries (of `endpoint`), not selected before, and pass the filters.
        `all_entries`: the caller knows every key is an entry (see _only_entries_match)."""
        layout = self.layout
        if endpoint is not None:
            keys = [k for k in keys if layout.is_entry_of(k, endpoint)]
        entries = keys if all_entries else [k for k in keys if layout.is_entry(k)]
        self.result.not_entries_skipped += len(keys) - len(entries)
        if entries and self.filters.active:
            entries = self._filter(entries)
        # Repeats (from another source, or SCAN's own) are rare: the set operations in C find
        # there are none at a third of the cost of a loop, which matters at a million keys.
        seen = self.seen
        if seen.isdisjoint(entries):
            before = len(seen)
            seen.update(entries)
            fresh = entries if len(seen) - before == len(entries) else list(dict.fromkeys(entries))
        else:
            fresh = []
            for key in entries:
                if key not in seen:
                    seen.add(key)
                    fresh.append(key)
        earlier = self.earlier
        self.result.matched += len(fresh) - (sum(k in earlier for k in fresh) if earlier else 0)
        return fresh

    def _filter(self, keys: list[bytes]) -> list[bytes]:
        f, store = self.filters, self.store
        keep = [True] * len(keys)

        def narrow(values: list, test: Callable) -> None:
            for i, value in enumerate(values):
                keep[i] = keep[i] and value is not None and test(value)

        if f.ttl_below_seconds is not None or f.ttl_above_seconds is not None:
            below = None if f.ttl_below_seconds is None else f.ttl_below_seconds * 1000
            above = None if f.ttl_above_seconds is None else f.ttl_above_seconds * 1000

            def ttl_ok(pttl: int) -> bool:
                if pttl == -2:
                    return False  # gone meanwhile
                if pttl == -1:  # no expiry: longer than any TTL
                    return below is None
                return (below is None or pttl < below) and (above is None or pttl > above)

            narrow(store.ttls(keys, ms=True), ttl_ok)
        if f.idle_above_seconds is not None:
            narrow(self._idle_times(keys), lambda idle: idle > f.idle_above_seconds)
        if f.older_than_seconds is not None:
            if self._now_ms is None:
                self._now_ms = server_time_ms(store)
            cutoff = self._now_ms - f.older_than_seconds * 1000
            # Not in the write log: its age is unknown, so it is not selected.
            scores = store.execute("ZMSCORE", self.layout.entries_log(), *keys)
            narrow(scores, lambda score: float(score) < cutoff)
        if f.larger_than_bytes is not None:
            narrow(store.memory_usage(keys), lambda size: size > f.larger_than_bytes)
        return [k for k, ok in zip(keys, keep) if ok]

    def _idle_times(self, keys: list[bytes]) -> list:
        try:
            return self.store.pipelined("OBJECT IDLETIME", keys)
        except RedisPermissionError:
            raise
        except RedisError as err:
            if "lfu" in err.message.lower():
                raise UsageError(
                    "--idle-above cannot be used on this server: its maxmemory-policy is an LFU "
                    "one (allkeys-lfu or volatile-lfu), under which Redis does not track idle "
                    "time and refuses OBJECT IDLETIME",
                    hint="select by age of the last write with --older-than instead",
                ) from err
            raise

    def _chunked(self, keys: list[bytes]) -> Iterator[_Batch]:
        size = self.options.batch_size
        for i in range(0, len(keys), size):
            yield _Batch(keys[i : i + size])

    # -- sets ---------------------------------------------------------------------------

    def _set(self, source: SetSource) -> Iterator[_Batch | _SetDrained]:
        store = self.store
        pending = self.layout.pending_set(source.set_key)
        if not self.take_sets:
            # A dry run or a filtered run reads without taking; a pending set an earlier
            # run left still holds entries of this tag.
            found = False
            for key in (source.set_key, pending):
                if self._is_set(key):
                    found = True
                    yield from self._members(key, None if self.result.dry_run else key)
            if not found:
                self._missing(source)
            return
        if self.attempt > 1 and source.set_key not in self.leftover and self._is_set(pending):
            # A pass after a server restart, and the set this run took came back with it: it is
            # finished, and the live set (writes made during the run) left alone, as the first
            # pass would have. A pending set that vanished with the restart lost the take: the
            # live set is then taken again, below.
            self.renamed.append(pending)
            yield from self._drain_until_gone(pending)
            return
        found = False
        for attempt in range(TAKE_ATTEMPTS):
            # A pending set an earlier run left (stopped part way), or another run's: finish it
            # first, and wait until it is gone, since RENAMENX cannot take its name before then.
            if self._is_set(pending):
                found = True
                if attempt == 0 and self.attempt == 1:
                    self.leftover.add(source.set_key)
                self.renamed.append(pending)
                if not (yield from self._drain_until_gone(pending)):
                    return  # stopped
            if not self._is_set(source.set_key):
                if attempt == 0 and not found:
                    self._missing(source)
                return
            try:
                taken = store.execute("RENAMENX", source.set_key, pending)
            except RedisPermissionError:
                raise
            except RedisError:
                # "no such key": another run took the set between TYPE and RENAMENX; it left
                # the pending set for us to help finish (or has finished it).
                if store.execute("EXISTS", source.set_key):
                    raise
                taken = 0
            if taken:
                self.renamed.append(pending)
                yield from self._drain(pending)
                return
            # 0: a pending set stands again (another run took the set meanwhile): go round.
        raise RedisError(
            f"{source.set_key.decode('utf-8', 'backslashreplace')} could not be taken: other "
            "invalidations of it kept running alongside this one",
            hint="rerun the same command once they are done",
        )

    def _missing(self, source: SetSource) -> None:
        """Notes a named set that does not exist (once: not again in a pass after a restart)."""
        if self.attempt > 1:
            return
        self.result.missing_sets.append(
            {
                "kind": source.kind,
                "name": source.name,
                "key": source.set_key.decode("utf-8", "backslashreplace"),
                "closest": closest_set_names(
                    self.store, self.layout, source.kind, source.name, self.pacer
                ),
            }
        )

    def _drain_until_gone(self, pending: bytes) -> Generator[_Batch | _SetDrained, None, bool]:
        """Drains `pending`, then waits for the deleter to have deleted it. False if the run
        was stopped first."""
        drained = None
        for item in self._drain(pending):
            yield item
            if isinstance(item, _SetDrained):
                drained = item
        if drained is None:
            return False
        while not drained.gone.wait(0.05):
            if self.stop.is_set():
                return False
        return not drained.kept

    def _is_set(self, key: bytes) -> bool:
        """Whether `key` is a set; a key of another type where a set belongs is left alone."""
        kind = self.store.types([key])[0]
        if kind not in ("set", "none"):
            self.result.notes.append(
                f"{key.decode('utf-8', 'backslashreplace')} is a {kind}, not a set: left alone"
            )
        return kind == "set"

    def _drain(self, pending: bytes) -> Iterator[_Batch | _SetDrained]:
        """Every member of a pending set, then the word that it may go. Nobody writes to a
        pending set, so one SSCAN pass sees every member, unless the server restarted under
        the cursor (its hash seed changes): the deleter then keeps the set (see
        _Deleter._finish) and the run makes another pass."""
        for members in _chunks(
            self.store.sscan(pending, self.options.scan_count), self.options.batch_size
        ):
            if self.pacer:
                self.pacer.take(len(members))
            self.result.scanned += len(members)
            yield _Batch(self._select(members))
            if self.stop.is_set():
                return
        yield _SetDrained(pending)

    def _members(self, set_key: bytes, forget_in: bytes | None) -> Iterator[_Batch]:
        for members in _chunks(
            self.store.sscan(set_key, self.options.scan_count), self.options.batch_size
        ):
            if self.pacer:
                self.pacer.take(len(members))
            self.result.scanned += len(members)
            keys = self._select(members)
            if keys:
                yield _Batch(keys, forget_in=forget_in)
            if self.stop.is_set():
                return

    # -- scans --------------------------------------------------------------------------

    def _scan(self, source: ScanSource) -> Iterator[_Batch]:
        count = self.options.scan_count
        all_entries = _only_entries_match(self.layout, source.pattern)
        if self.scan_total is None:
            self.scan_total = self.store.dbsize()
        # A server that restarts under the cursor makes it meaningless: the run's next pass
        # (see `invalidate`) scans again.
        buffer: list[bytes] = []
        for _node, keys in self.store.scan_nodes(
            match=source.pattern, count=count, pacer=self.pacer
        ):
            self.result.scanned += count
            buffer += self._select(keys, source.endpoint, all_entries=all_entries)
            if len(buffer) >= self.options.batch_size:
                yield _Batch(buffer)
                buffer = []
            if self.stop.is_set():
                break
        if buffer:
            yield _Batch(buffer)

    def run_ids(self) -> dict | None:
        """Each primary's run_id, or None when INFO is not allowed (no restart detection)."""
        return primary_run_ids(self.store)


def _only_entries_match(layout: Layout, pattern: bytes) -> bool:
    """Whether every key SCAN MATCH `pattern` can return is an entry, so the per-key check
    (a third of the finder's time on a million keys) can be skipped: the pattern stays within
    the entry prefix, and no other kind of key lives under that prefix (a layout may nest one,
    such as entries under `shop:` and tags under `shop:tags:`)."""
    others = [p for p in layout.owned_patterns() if p != layout.entry_pattern()]
    return layout.pattern_within_entries(pattern) and not any(
        layout.pattern_within_entries(p) for p in others
    )


def _scan_selects(layout: Layout, selection: Selection) -> Callable[[bytes], bool] | None:
    """Whether a key is an entry one of the selection's scans would select (the filters
    aside); None without scans."""
    from cachectl.layout_parse import glob_to_regex

    tests = [
        (glob_to_regex(s.pattern).match, s.endpoint)
        for s in selection.sources
        if isinstance(s, ScanSource)
    ]
    if not tests:
        return None

    def selects(key: bytes) -> bool:
        return any(
            match(key) is not None
            and (layout.is_entry(key) if endpoint is None else layout.is_entry_of(key, endpoint))
            for match, endpoint in tests
        )

    return selects


def _chunks(items, size: int) -> Iterator[list]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# --- the runs --------------------------------------------------------------------------------


def check_permissions(
    store: Store,
    layout: Layout,
    selection: Selection,
    filters: Filters | None = None,
    options: InvalidateOptions | None = None,
) -> None:
    """Fails before anything changes if the ACL user may not run a command the run sends, on
    the kinds of key it sends it to (an ACL can allow a command on some key patterns only).

    Each probe names keys that do not exist in the run's own prefixes (or the logs, with a
    member that does not exist), so it changes nothing; a refusal for any other reason (such
    as "no such key") means the ACL let the command through.
    """
    check_probes(store, permission_probes(layout, selection, filters, options))


def permission_probes(
    layout: Layout,
    selection: Selection,
    filters: Filters | None = None,
    options: InvalidateOptions | None = None,
) -> list[tuple]:
    """Every command a run of `selection` sends, aimed at keys that do not exist. (INFO and
    the run's record in `history` are left out: the run goes on without them.)"""
    entry = layout.entry(PROBE_NAME)
    logs = [layout.entries_log(), layout.access_log()]
    probes: list[tuple] = [("UNLINK", entry)]
    for log in logs:  # _Deleter._delete: EXISTS once, then ZREM with every batch
        probes += [("EXISTS", log), ("ZREM", log, entry)]
    take_sets = filters is None or not filters.active
    kinds = {s.kind for s in selection.sources if isinstance(s, SetSource)}
    cleanup = options.index_cleanup if options is not None else "auto"
    if cleanup == "sweep" or (cleanup == "auto" and selection.has_scans):
        # The sweep: SCAN TYPE set, then SSCAN, EXISTS and SREM on every tag and dependency set.
        kinds |= {"tag", "dependency"}
        probes.append(("SCAN", 0, "TYPE", "set", "COUNT", 1))
    for kind in sorted(kinds):
        container = (layout.tag if kind == "tag" else layout.dependency)(PROBE_NAME).encode()
        pending = layout.pending_set(container)
        probes += [
            ("TYPE", container),
            ("SSCAN", container, 0, "COUNT", 1),
            ("SREM", container, entry),
            ("EXISTS", container),
        ]
        if take_sets:
            probes += [
                ("TYPE", pending),
                ("SSCAN", pending, 0, "COUNT", 1),
                ("RENAMENX", container, pending),
                ("UNLINK", pending),
            ]
    for source in selection.sources:
        if isinstance(source, ScanSource):
            probes += [("DBSIZE",), ("SCAN", 0, "MATCH", source.pattern, "COUNT", 1)]
            break
    if filters is not None:
        if filters.ttl_below_seconds is not None or filters.ttl_above_seconds is not None:
            probes.append(("PTTL", entry))
        if filters.idle_above_seconds is not None:
            probes.append(("OBJECT", "IDLETIME", entry))
        if filters.older_than_seconds is not None:
            probes += [("TIME",), ("ZMSCORE", logs[0], entry)]
        if filters.larger_than_bytes is not None:
            probes.append(("MEMORY", "USAGE", entry))
    return probes


def preview(
    store: Store,
    selection: Selection,
    filters: Filters,
    options: InvalidateOptions,
    result: InvalidateResult | None = None,
) -> Iterator[bytes]:
    """The entries a run would delete, as found (deleting nothing, taking no set). Counts go
    to `result` (pass one in to read them after the iterator is exhausted)."""
    layout = Layout(store.settings.layout)
    result = result if result is not None else InvalidateResult()
    result.dry_run = True
    result.selection = selection.describe()
    result.filters = filters.to_dict()
    started = time.monotonic()
    finder = _Finder(
        store,
        layout,
        selection,
        filters,
        options,
        result,
        take_sets=False,
        pacer=_pacer(options),
        stop=threading.Event(),
    )
    for item in finder.batches():
        if isinstance(item, _Batch):
            yield from item.keys
    result.duration_seconds = time.monotonic() - started


def invalidate(
    store: Store,
    selection: Selection,
    filters: Filters,
    options: InvalidateOptions,
    *,
    on_progress: Callable[[InvalidateProgress], None] | None = None,
    stop: StopFlag | threading.Event | None = None,
) -> InvalidateResult:
    """Deletes the selected entries; see the module docstring.

    A Redis error that outlasts the retries ends the run: it is returned in `failure` along with
    what was done. A set `stop` event ends it after the current batch (`interrupted`). Either
    way a rerun of the same selection finishes the job. So does it when servers restarted
    during each of PASSES passes over the selection (`failure` then says so).
    """
    if options.index_cleanup not in INDEX_CLEANUP:
        raise UsageError(f"--index-cleanup must be one of {', '.join(INDEX_CLEANUP)}")
    layout = Layout(store.settings.layout)
    stop = stop or threading.Event()
    result = InvalidateResult(
        selection=selection.describe(), filters=filters.to_dict(), notes=list(selection.notes)
    )
    started = time.monotonic()
    finder = _Finder(
        store,
        layout,
        selection,
        filters,
        options,
        result,
        take_sets=not filters.active,
        pacer=_pacer(options),
        stop=threading.Event(),
    )
    deleter = _Deleter(store, layout, options, result, finder)

    def report(phase: str) -> None:
        result.duration_seconds = time.monotonic() - started
        if on_progress:
            on_progress(
                InvalidateProgress(
                    phase,
                    result.scanned,
                    finder.scan_total,
                    result.matched,
                    result.deleted + result.deleted_again,
                    result.duration_seconds,
                    finder.attempt,
                )
            )

    try:
        # Connects, and makes the per-node clients, before two threads share the store.
        store.for_each_primary()
        finder.pass_run_ids = finder.run_ids()
        for _ in range(PASSES):
            _one_pass(finder, deleter, selection, stop, report)
            if result.interrupted:
                break
            now = finder.run_ids()
            if finder.pass_run_ids is None or now == finder.pass_run_ids:
                break
            result.notes.append(
                "a server restarted during the run (its run_id changed) and may have come "
                "back with entries already deleted: went through the whole selection again"
            )
            finder.start_again(now)
            deleter.start_again()
        else:
            result.failure = _restarts_failure(result, deleter)
    except RedisError as err:
        result.failure = err
    result.pending_sets = [show_bytes(p) for p in deleter.unfinished()]  # escaped as keys print
    if (
        (result.interrupted or result.failure)
        and result.index_cleanup == "not needed"
        and deleter.cleanup_wanted(selection)
    ):
        result.index_cleanup = "not finished"
    elif result.index_cleanup == "not needed" and result.deleted:
        # Stopped before the sweep was skipped: the same holds.
        result.index_cleanup = "skipped"
        result.unswept_entries = result.deleted
    report("done")
    return result


def _restarts_failure(result: InvalidateResult, deleter: _Deleter) -> RedisError:
    """A run whose every pass saw a server restart cannot tell what is left: it names what."""
    left = "; ".join(result.selection)
    pending = [p.decode("utf-8", "backslashreplace") for p in deleter.unfinished()]
    also = f" (and the pending set(s) {', '.join(pending)})" if pending else ""
    return RedisError(
        f"servers restarted during each of {PASSES} passes over the selection: entries of "
        f"{left}{also} may be left, brought back by a restart",
        hint="rerun the same command once the servers are stable",
    )


def _one_pass(
    finder: _Finder,
    deleter: _Deleter,
    selection: Selection,
    stop: StopFlag | threading.Event,
    report: Callable[[str], None],
) -> None:
    """One pass over the whole selection: the finder's thread hands batches to this one, which
    deletes them, then the index cleanup. Ctrl-C sets `result.interrupted`; a Redis error is
    raised."""
    result = finder.result
    halt = threading.Event()  # the finder's own stop: Ctrl-C, or the deleter failing
    finder.stop = halt
    handoff: queue.Queue = queue.Queue(maxsize=QUEUE_BATCHES)

    def produce() -> None:
        try:
            for item in finder.batches():
                while not halt.is_set():
                    try:
                        handoff.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        pass
                if halt.is_set():
                    return
            handoff.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 -- handed to the main thread to raise
            handoff.put(exc)

    producer = threading.Thread(target=produce, name="cachectl-invalidate-finder", daemon=True)
    producer.start()
    try:
        while True:
            if stop.is_set():
                result.interrupted = True
                break
            try:
                item = handoff.get(timeout=0.1)
            except queue.Empty:
                report("deleting")
                continue
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            deleter.handle(item)
            report("deleting")
        if not result.interrupted:
            deleter.catch_up_logs()
            deleter.sweep_indexes(selection, stop, lambda: report("cleaning indexes"))
            if stop.is_set():
                result.interrupted = True
    finally:
        halt.set()
        # Whatever the finder has in hand is dropped; it must not block on a full queue.
        while producer.is_alive():
            try:
                handoff.get_nowait()
            except queue.Empty:
                producer.join(timeout=0.1)


def _pacer(options: InvalidateOptions) -> Pacer | None:
    if options.rate is None:
        return None
    from cachectl.store import Pacer

    return Pacer(options.rate)


class _Deleter:
    """Deletes what the finder hands over (the main-thread side), and sweeps the indexes."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        options: InvalidateOptions,
        result: InvalidateResult,
        finder: _Finder,
    ):
        self.store = store
        self.layout = layout
        self.options = options
        self.result = result
        self.finder = finder
        self.pacer = _pacer(options)
        self.all_logs = (layout.entries_log(), layout.access_log())
        self.logs: list[str] | None = None  # the logs that exist, known at the first delete
        self.drained: set[bytes] = set()
        self.forgot_in: set[bytes] = set()

    def start_again(self) -> None:
        """Before another pass (see _Finder.start_again): a set drained before the restart may
        be back, and the indexes want cleaning again."""
        self.drained.clear()
        self.result.index_cleanup = "not needed"

    def handle(self, item: _Batch | _SetDrained) -> None:
        if isinstance(item, _SetDrained):
            self._finish(item)
            return
        if item.keys:
            self._delete(item.keys)
        if item.forget_in is not None and item.keys:
            drop_dangling(self.store, [(item.forget_in, k) for k in item.keys])
            self.forgot_in.add(item.forget_in)

    def _delete(self, keys: list[bytes]) -> None:
        if self.pacer:
            self.pacer.take(len(keys))
        if self.logs is None:
            # A ZREM per log per batch doubles or triples what is sent; a log that does not
            # exist needs none (catch_up_logs covers one created during the run).
            exists = self.store.exists_many(self.all_logs)
            self.logs = [log for log, e in zip(self.all_logs, exists) if e]
        earlier = self.finder.earlier
        if earlier and not earlier.isdisjoint(keys):
            # A pass after a restart: entries deleted before it and brought back are counted
            # apart, so that `matched` = `deleted` + `already_gone` still holds.
            again = [k for k in keys if k in earlier]
            removed = self._unlink(again)
            self.result.deleted_again += removed
            keys = [k for k in keys if k not in earlier]
            if not keys:
                return
        removed = self._unlink(keys)
        self.result.deleted += removed
        self.result.already_gone += max(0, len(keys) - removed)

    def _unlink(self, keys: list[bytes]) -> int:
        removed, log_replies = self.store.unlink_batch(
            keys, *[("ZREM", log, *keys) for log in self.logs]
        )
        if removed < len(keys):
            removed += self._unlink_each(keys)
        self.result.log_members_removed += sum(int(r) for r in log_replies)
        return removed

    def _unlink_each(self, keys: list[bytes]) -> int:
        """UNLINK says how many keys of a batch it removed, not which: after a shortfall each key
        is unlinked on its own, so one still there (written again, or missed) is deleted now
        rather than counted `already_gone`; a 0 from its own UNLINK means it was not there."""
        return sum(int(r) for r in self.store.pipelined("UNLINK", keys))

    def catch_up_logs(self) -> None:
        """Removes the deleted entries from a log that appeared after the first delete."""
        if self.logs is None:
            return
        late = [log for log in self.all_logs if log not in self.logs]
        for log, exists in zip(late, self.store.exists_many(late)):
            if exists:
                for keys in _chunks(self.finder.all_selected(), self.options.batch_size):
                    self.result.log_members_removed += int(self.store.execute("ZREM", log, *keys))

    def _finish(self, drained: _SetDrained) -> None:
        """Every member of the pending set has been dealt with (the finder read it whole, and
        batches are handled in order): the set itself can go. A big set is freed by Redis in
        the background (UNLINK), so this never stalls the server.

        Unless a server restarted since the pass began: the set may have come back whole, and
        the SSCAN that read it may have missed members (its cursor means nothing to a restarted
        server). It is then kept, for the next pass to read again."""
        finder = self.finder
        if finder.pass_run_ids is not None and finder.run_ids() != finder.pass_run_ids:
            drained.kept = True
            drained.gone.set()
            return
        self.store.execute("UNLINK", drained.pending)
        self.drained.add(drained.pending)
        self.result.sets_deleted += 1
        drained.gone.set()

    def unfinished(self) -> list[bytes]:
        return [p for p in dict.fromkeys(self.finder.renamed) if p not in self.drained]

    def cleanup_wanted(self, selection: Selection) -> bool:
        """`auto` sweeps after a selection that itself walked the keyspace (a pattern, an
        endpoint), which the sweep's own walk at most doubles; never after exact keys or sets,
        where a walk of the whole keyspace would dwarf the job."""
        mode = self.options.index_cleanup
        return mode == "sweep" or (mode == "auto" and selection.has_scans)

    def sweep_indexes(
        self, selection: Selection, stop: StopFlag | threading.Event, report: Callable[[], None]
    ) -> None:
        """Removes the deleted entries from every tag and dependency set that names them.

        The sets are found by a `SCAN ... TYPE set` walk after the run, when the deleted keys
        are no longer there to walk over: run alongside it, the same walk cost the server
        about twice as much (it walked the keys being deleted too) and made the run slower."""
        result = self.result
        if self.forgot_in:
            existing = self.store.exists_many(sorted(self.forgot_in))
            result.sets_updated += sum(existing)
            result.sets_deleted += len(existing) - sum(existing)
        if self.options.index_cleanup == "skip" or not self.cleanup_wanted(selection):
            # `auto` after exact keys or sets: the entries deleted may still be named by other
            # tag and dependency sets; the summary says so, and what removes them.
            result.unswept_entries = result.deleted
            if self.options.index_cleanup == "skip" or result.deleted:
                result.index_cleanup = "skipped"
            return
        finder = self.finder
        # Entries an earlier, interrupted run of the same scan deleted are no longer found, so
        # not in `deleted`: members its scans select are looked at too (drop_dangling removes
        # only those whose entry is gone), so that a rerun finishes the index cleanup as well.
        earlier = _scan_selects(self.layout, selection)
        if not (finder.seen or finder.earlier or earlier):
            return
        touched: set[bytes] = set()
        pairs: list[tuple[bytes, bytes]] = []

        def flush() -> None:
            for container, n in drop_dangling(self.store, pairs).items():
                if n:
                    touched.add(container)
            pairs.clear()
            report()

        count = self.options.scan_count
        for _, keys in self.store.scan_nodes(type="set", count=count, pacer=self.pacer):
            sets = [
                k for k in keys if self.layout.kind(k) in INDEX_KINDS and k not in self.forgot_in
            ]
            for set_key, members in set_member_pages(self.store, sets, count, self.pacer):
                pairs += [
                    (set_key, m)
                    for m in members
                    if finder.selected(m) or (earlier is not None and earlier(m))
                ]
                if len(pairs) >= self.options.batch_size:
                    flush()
            if stop.is_set():
                result.index_cleanup = "not finished"
                return
        flush()
        if touched:
            ordered = sorted(touched)
            existing = self.store.exists_many(ordered)
            result.sets_updated += sum(existing)
            result.sets_deleted += len(existing) - sum(existing)
        result.index_cleanup = "swept"


__all__ = [
    "InvalidateOptions",
    "InvalidateProgress",
    "InvalidateResult",
    "check_permissions",
    "closest_set_names",
    "invalidate",
    "missing_set_text",
    "permission_probes",
    "preview",
]
