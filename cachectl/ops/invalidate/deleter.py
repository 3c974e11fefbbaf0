"""The consumer side of an invalidate run: deletes what the finder hands over and sweeps the
tag and dependency sets (see `cachectl.ops.invalidate` for how a run goes)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from cachectl.batches import batched
from cachectl.layout import Layout
from cachectl.ops.invalidate.finder import _Batch, _Finder, _scan_selects, _SetDrained
from cachectl.ops.invalidate.results import InvalidateOptions, InvalidateResult
from cachectl.ops.prune import (
    INDEX_KINDS,
    drop_dangling,
    set_member_pages,
)
from cachectl.ops.selection import Selection

if TYPE_CHECKING:
    from cachectl.signals import StopFlag
    from cachectl.store import Pacer, Store


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
                for keys in batched(self.finder.all_selected(), self.options.batch_size):
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
