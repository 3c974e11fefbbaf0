"""The cache's background worker: queued entry writes (the write-behind strategy) and the
bookkeeping push, off the caller's path.

A normal shutdown loses nothing: `close()` (and leaving a `with` block) waits for every queued
write, the sync worker is also closed at interpreter exit, and the asyncio worker writes what is
left when its task is cancelled, which `asyncio.run()` does to every task before it returns.
A write that still fails after `attempts` tries is counted and reported by the next
`flush()`/`close()` as a PartialFailure; a crash (SIGKILL, power loss) loses what was queued.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable

from cachectl.errors import PartialFailure
from cachectl.library.core import Warnings, Write

log = logging.getLogger("cachectl.library")

RETRY_PAUSES_SECONDS = (0.1, 0.5)  # between the attempts at one batch


class _Counts:
    """Queue state shared by both workers; the caller guards it (a lock or the event loop)."""

    def __init__(self) -> None:
        self.queue: deque[Write] = deque()
        self.pending: dict[str, Write] = {}
        self.queued = 0  # writes ever queued
        self.finished = 0  # writes written or given up on
        self.lost = 0  # given up on since the last report
        self.lost_reason = ""

    def add(self, write: Write) -> None:
        self.queue.append(write)
        self.pending[write.key] = write
        self.queued += 1

    def take(self, n: int) -> list[Write]:
        return [self.queue.popleft() for _ in range(min(n, len(self.queue)))]

    def finish(self, batch: list[Write], error: Exception | None) -> None:
        for write in batch:
            # A later write of the same key may be queued: it stays the pending one.
            if self.pending.get(write.key) is write:
                del self.pending[write.key]
        self.finished += len(batch)
        if error is not None:
            self.lost += len(batch)
            self.lost_reason = str(error)

    def report_lost(self) -> None:
        if self.lost:
            lost, reason = self.lost, self.lost_reason
            self.lost, self.lost_reason = 0, ""
            raise PartialFailure(
                f"{lost} queued cache write{'s' if lost != 1 else ''} could not be written: "
                f"{reason}",
                details={"lost_writes": lost},
            )


class BackgroundWriter:
    """One daemon thread per cache, started on first use. It writes queued entries in batches
    (`write_batch(writes)`) and calls `push_bookkeeping()` every `interval` seconds; a push that
    raises is told through `warn` (the owner's rate-limited warnings).

    The queue holds at most `max_queue` writes; a caller that finds it full waits for room
    rather than drop a write.
    """

    def __init__(
        self,
        write_batch: Callable[[list[Write]], None],
        push_bookkeeping: Callable[[], None],
        *,
        interval: float,
        batch_size: int = 500,
        max_queue: int = 10_000,
        attempts: int = 3,
        exit_timeout: float = 10.0,
        pause: Callable[[float], None] = time.sleep,
        warn: Callable[[str], object] | None = None,
    ):
        self._write_batch = write_batch
        self._push_bookkeeping = push_bookkeeping
        self._warn = warn or Warnings().warn
        self._interval = interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._attempts = attempts
        self._pause = pause
        self.exit_timeout = exit_timeout
        self._cond = threading.Condition()
        self._state = _Counts()
        self._thread: threading.Thread | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def start(self) -> None:
        with self._cond:
            self._start()

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stopping = False
            self._thread = threading.Thread(
                target=self._run, name="cachectl-background", daemon=True
            )
            self._thread.start()
            _OPEN.add(self)

    def enqueue(self, write: Write) -> None:
        with self._cond:
            while len(self._state.queue) >= self._max_queue:
                self._cond.wait()
            self._state.add(write)
            self._start()
            self._cond.notify_all()

    def pending(self, key: str) -> Write | None:
        """The queued write of `key` not yet in Redis, so the writer reads its own writes."""
        return self._state.pending.get(key)

    @property
    def queued(self) -> int:
        return len(self._state.queue)

    def flush(self, timeout: float | None = None) -> None:
        """Waits until every write queued before the call is in Redis (or given up on), then
        pushes the bookkeeping (a failed push is logged). Raises PartialFailure if writes were
        lost since the last report, or if the queue did not drain within `timeout` seconds."""
        with self._cond:
            target = self._state.queued
            if self._state.finished < target:
                self._start()
                self._cond.notify_all()
                drained = self._cond.wait_for(lambda: self._state.finished >= target, timeout)
            else:
                drained = True
            left = target - self._state.finished
        self._push_quietly()
        with self._cond:
            self._state.report_lost()
        if not drained:
            raise PartialFailure(
                f"{left} queued cache write{'s' if left != 1 else ''} still not written "
                f"after {timeout:g}s",
                details={"queued_writes": left},
            )

    def close(self, timeout: float | None = None) -> None:
        try:
            self.flush(timeout)
        finally:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
                thread = self._thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout)
            _OPEN.discard(self)

    def _run(self) -> None:
        last_push = time.monotonic()
        while True:
            with self._cond:
                if not self._state.queue and not self._stopping:
                    self._cond.wait(self._interval)
                batch = self._state.take(self._batch_size)
                stopping = self._stopping and not self._state.queue
                if batch:
                    self._cond.notify_all()  # room in the queue for a waiting enqueue()
            if batch:
                error = self._write_with_retries(batch)
                with self._cond:
                    self._state.finish(batch, error)
                    self._cond.notify_all()
            if stopping or time.monotonic() - last_push >= self._interval:
                last_push = time.monotonic()
                self._push_quietly()
            if stopping:
                return

    def _push_quietly(self) -> None:
        # Counters are worth a warning, not an error: losing some never loses a cache write.
        # The warning goes through the owner's limiter: with Redis down it would come at every
        # push otherwise.
        try:
            self._push_bookkeeping()
        except Exception as exc:  # noqa: BLE001 -- the worker must outlive a bad push
            self._warn(f"could not write the cache counters: {exc}")

    def _write_with_retries(self, batch: list[Write]) -> Exception | None:
        for attempt in range(self._attempts):
            try:
                self._write_batch(batch)
                return None
            except Exception as exc:  # noqa: BLE001 -- the worker must outlive a failed batch
                if attempt + 1 == self._attempts:
                    log.error("cachectl: %d queued cache writes lost: %s", len(batch), exc)
                    return exc
                self._pause(RETRY_PAUSES_SECONDS[min(attempt, len(RETRY_PAUSES_SECONDS) - 1)])
        return None


_OPEN: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()


@atexit.register
def _close_open_writers() -> None:
    # Daemon threads still run while atexit handlers do, so the worker can finish its queue.
    for writer in list(_OPEN):
        try:
            writer.close(writer.exit_timeout)
        except Exception as exc:  # noqa: BLE001 -- one writer's failure must not stop the others
            log.error("cachectl: at exit: %s", exc)


class AsyncBackgroundWriter:
    """The asyncio twin of BackgroundWriter: one task on the cache's event loop."""

    def __init__(
        self,
        write_batch: Callable[[list[Write]], Awaitable[None]],
        push_bookkeeping: Callable[[], Awaitable[None]],
        *,
        interval: float,
        batch_size: int = 500,
        max_queue: int = 10_000,
        attempts: int = 3,
        exit_timeout: float = 10.0,
        warn: Callable[[str], object] | None = None,
    ):
        # exit_timeout is BackgroundWriter's: here the end of asyncio.run() cancels the task,
        # which writes what is queued before the loop closes.
        del exit_timeout
        self._write_batch = write_batch
        self._push_bookkeeping = push_bookkeeping
        self._warn = warn or Warnings().warn
        self._interval = interval
        self._batch_size = batch_size
        self._max_queue = max_queue
        self._attempts = attempts
        self._state = _Counts()
        self._task: asyncio.Task | None = None
        # Made by start(), before anything waits on them.
        self._changed: asyncio.Condition
        self._wake: asyncio.Event

    @property
    def running(self) -> bool:
        task = self._task
        return task is not None and not task.done()

    def start(self) -> None:
        if self._task is None or self._task.done():
            # Made here, in the running loop: asyncio's primitives bind to the loop they meet.
            self._changed = asyncio.Condition()
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="cachectl-background"
            )

    async def enqueue(self, write: Write) -> None:
        self.start()
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._state.queue) < self._max_queue)
            self._state.add(write)
        self._wake.set()

    def pending(self, key: str) -> Write | None:
        return self._state.pending.get(key)

    @property
    def queued(self) -> int:
        return len(self._state.queue)

    async def flush(self, timeout: float | None = None) -> None:
        target = self._state.queued
        left = 0
        if self._state.finished < target:
            self.start()
            self._wake.set()
            try:
                async with self._changed:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self._state.finished >= target), timeout
                    )
            except asyncio.TimeoutError:
                left = target - self._state.finished
        await self._push_quietly()
        self._state.report_lost()
        if left:
            raise PartialFailure(
                f"{left} queued cache write{'s' if left != 1 else ''} still not written "
                f"after {timeout:g}s",
                details={"queued_writes": left},
            )

    async def close(self, timeout: float | None = None) -> None:
        try:
            await self.flush(timeout)
        finally:
            task, self._task = self._task, None
            if task is not None and not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_push = loop.time()
        try:
            while True:
                try:
                    await asyncio.wait_for(self._wake.wait(), self._interval)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                await self._write_queued()
                if loop.time() - last_push >= self._interval:
                    last_push = loop.time()
                    await self._push_quietly()
        except asyncio.CancelledError:
            # asyncio.run() cancels every task before it closes the loop: finish the queue first.
            await self._write_queued()
            await self._push_quietly()
            raise

    async def _write_queued(self) -> None:
        while batch := self._state.take(self._batch_size):
            async with self._changed:
                self._changed.notify_all()  # room in the queue for a waiting enqueue()
            error = await self._write_with_retries(batch)
            self._state.finish(batch, error)
            async with self._changed:
                self._changed.notify_all()

    async def _push_quietly(self) -> None:
        # Counters are worth a warning, not an error: losing some never loses a cache write.
        # The warning goes through the owner's limiter: with Redis down it would come at every
        # push otherwise.
        try:
            await self._push_bookkeeping()
        except Exception as exc:  # noqa: BLE001 -- the worker must outlive a bad push
            self._warn(f"could not write the cache counters: {exc}")

    async def _write_with_retries(self, batch: list[Write]) -> Exception | None:
        for attempt in range(self._attempts):
            try:
                await self._write_batch(batch)
                return None
            except Exception as exc:  # noqa: BLE001 -- the worker must outlive a failed batch
                if attempt + 1 == self._attempts:
                    log.error("cachectl: %d queued cache writes lost: %s", len(batch), exc)
                    return exc
                await asyncio.sleep(
                    RETRY_PAUSES_SECONDS[min(attempt, len(RETRY_PAUSES_SECONDS) - 1)]
                )
        return None
