"""The producer side of an invalidate run: finds the selected entries, batch by batch, and
hands them to the deleter (see `cachectl.ops.invalidate` for how a run goes)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachectl.batches import batched
from cachectl.errors import (
    RedisError,
    RedisPermissionError,
    UsageError,
)
from cachectl.layout import Layout
from cachectl.ops.invalidate.results import InvalidateOptions, InvalidateResult, closest_set_names
from cachectl.ops.prune import (
    primary_run_ids,
    server_time_ms,
)
from cachectl.ops.selection import Filters, KeySource, ScanSource, Selection, SetSource

if TYPE_CHECKING:
    from cachectl.store import Pacer, Store


TAKE_ATTEMPTS = 3  # a tag set that other runs keep taking first: give up after this many tries


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
        for members in batched(
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
        for members in batched(
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
