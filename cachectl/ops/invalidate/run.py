"""The invalidate runs: the permission probes, the preview and the run itself, which drives
the finder and the deleter (see `cachectl.ops.invalidate` for how a run goes)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from cachectl.errors import (
    RedisError,
    UsageError,
)
from cachectl.keytext import show_bytes
from cachectl.layout import Layout
from cachectl.ops.invalidate.deleter import _Deleter, _pacer
from cachectl.ops.invalidate.finder import _DONE, _Batch, _Finder
from cachectl.ops.invalidate.results import InvalidateOptions, InvalidateProgress, InvalidateResult
from cachectl.ops.permissions import check_probes
from cachectl.ops.selection import Filters, ScanSource, Selection, SetSource

if TYPE_CHECKING:
    from cachectl.signals import StopFlag
    from cachectl.store import Store


PROBE_NAME = "__cachectl_invalidate_probe__"
QUEUE_BATCHES = 8  # how far scanning may run ahead of deleting
PASSES = 3  # passes over the selection that each saw a server restart: the run gives up
INDEX_CLEANUP = ("auto", "sweep", "skip")


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
