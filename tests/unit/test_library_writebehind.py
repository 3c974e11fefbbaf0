"""The background worker on its own: queued writes are written in order, waited for by flush,
retried, reported when lost, and written at exit; the asyncio twin likewise."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading

import pytest

from cachectl.errors import PartialFailure
from cachectl.library.core import Write
from cachectl.library.writebehind import AsyncBackgroundWriter, BackgroundWriter


def write(i: int, key: str | None = None) -> Write:
    return Write(key or f"api_cache:e:id:{i}", str(i), 60_000)


class Sink:
    """A write_batch that records what it got; it can be held shut or made to fail."""

    def __init__(self, failures: int = 0):
        self.written: list[str] = []
        self.batches = 0
        self.failures = failures
        self.gate = threading.Event()
        self.gate.set()

    def __call__(self, batch: list[Write]) -> None:
        self.gate.wait(10)
        self.batches += 1
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis went away")
        self.written += [w.text for w in batch]


def writer(sink, **kw) -> BackgroundWriter:
    return BackgroundWriter(sink, lambda: None, interval=0.05, pause=lambda s: None, **kw)


def test_flush_returns_once_every_queued_write_is_written_in_order():
    sink = Sink()
    w = writer(sink)
    for i in range(1200):
        w.enqueue(write(i))
    w.flush(timeout=10)
    assert sink.written == [str(i) for i in range(1200)]
    assert sink.batches >= 3  # 500 a batch
    w.close(timeout=5)


def test_a_queued_write_is_visible_as_pending_until_written():
    sink = Sink()
    sink.gate.clear()
    w = writer(sink)
    w.enqueue(write(1, "k"))
    w.enqueue(write(2, "k"))
    assert w.pending("k").text == "2"  # the latest write of the key
    sink.gate.set()
    w.flush(timeout=5)
    assert w.pending("k") is None
    w.close(timeout=5)


def test_a_failed_batch_is_retried_before_it_counts_as_lost():
    sink = Sink(failures=2)
    w = writer(sink, attempts=3)
    w.enqueue(write(1))
    w.flush(timeout=5)
    assert sink.written == ["1"] and sink.batches == 3
    w.close(timeout=5)


def test_lost_writes_are_reported_once_by_the_next_flush():
    sink = Sink(failures=10)
    w = writer(sink, attempts=2)
    for i in range(3):
        w.enqueue(write(i))
    with pytest.raises(PartialFailure, match="3 queued cache writes could not be written") as err:
        w.flush(timeout=5)
    assert err.value.details == {"lost_writes": 3}
    assert w.pending("api_cache:e:id:0") is None
    w.flush(timeout=5)  # reported already
    w.close(timeout=5)


def test_a_full_queue_holds_the_caller_rather_than_drop_a_write():
    sink = Sink()
    sink.gate.clear()
    w = writer(sink, max_queue=2, batch_size=1)
    w.enqueue(write(0))  # taken by the worker, which waits at the gate
    w.enqueue(write(1))
    w.enqueue(write(2))
    third = threading.Thread(target=w.enqueue, args=(write(3),))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # waiting for room
    sink.gate.set()
    third.join(5)
    w.flush(timeout=5)
    assert sink.written == ["0", "1", "2", "3"]
    w.close(timeout=5)


def test_flush_says_how_many_writes_did_not_make_it_in_time():
    sink = Sink()
    sink.gate.clear()
    w = writer(sink)
    w.enqueue(write(1))
    with pytest.raises(PartialFailure, match="1 queued cache write still not written after 0.2s"):
        w.flush(timeout=0.2)
    sink.gate.set()
    w.close(timeout=5)


def test_the_bookkeeping_is_pushed_by_flush_and_every_interval():
    pushes = []
    w = BackgroundWriter(Sink(), lambda: pushes.append(1), interval=0.05)
    w.flush()
    assert pushes == [1]
    w.start()
    threading.Event().wait(0.3)
    assert len(pushes) >= 3
    w.close(timeout=5)
    assert not w.running


def _failing_push():
    raise ConnectionError("redis went away")


def test_a_failing_push_is_told_through_the_owners_warnings_not_logged_at_each_push(caplog):
    told = []
    w = BackgroundWriter(Sink(), _failing_push, interval=3600, warn=told.append)
    with caplog.at_level("WARNING", logger="cachectl.library"):
        for _ in range(3):
            w.flush()
        w.close(timeout=5)
    assert told[0] == "could not write the cache counters: redis went away"
    assert caplog.records == []  # the owner's limiter decides what reaches the log


def test_queued_writes_are_written_at_interpreter_exit(tmp_path):
    out = tmp_path / "written.txt"
    script = textwrap.dedent(f"""
        import time
        from cachectl.library.core import Write
        from cachectl.library.writebehind import BackgroundWriter

        def slow_write(batch):
            time.sleep(0.05)
            with open({str(out)!r}, "a") as f:
                f.writelines(w.text + "\\n" for w in batch)

        w = BackgroundWriter(slow_write, lambda: None, interval=1.0, batch_size=10)
        for i in range(100):
            w.enqueue(Write(f"k{{i}}", str(i), 1000))
        # no close(): the interpreter exits with writes still queued
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert out.read_text().split() == [str(i) for i in range(100)]


# --- asyncio ---------------------------------------------------------------------------------


class AsyncSink:
    def __init__(self, failures: int = 0):
        self.written: list[str] = []
        self.failures = failures

    async def __call__(self, batch: list[Write]) -> None:
        await asyncio.sleep(0.01)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("redis went away")
        self.written += [w.text for w in batch]


async def _no_push() -> None:
    return None


def test_async_flush_waits_for_every_queued_write():
    async def main():
        sink = AsyncSink()
        w = AsyncBackgroundWriter(sink, _no_push, interval=0.05)
        for i in range(700):
            await w.enqueue(write(i))
        await w.flush(timeout=5)
        assert sink.written == [str(i) for i in range(700)]
        await w.close(timeout=5)

    asyncio.run(main())


def test_async_lost_writes_are_reported():
    async def main():
        w = AsyncBackgroundWriter(AsyncSink(failures=5), _no_push, interval=0.05, attempts=2)
        await w.enqueue(write(1))
        with pytest.raises(PartialFailure, match="1 queued cache write could not be written"):
            await w.flush(timeout=5)
        await w.close(timeout=5)

    asyncio.run(main())


def test_async_a_failing_push_is_told_through_the_owners_warnings(caplog):
    told = []

    async def failing_push():
        raise ConnectionError("redis went away")

    async def main():
        w = AsyncBackgroundWriter(AsyncSink(), failing_push, interval=3600, warn=told.append)
        for _ in range(3):
            await w.flush()
        await w.close(timeout=5)

    with caplog.at_level("WARNING", logger="cachectl.library"):
        asyncio.run(main())
    assert told[0] == "could not write the cache counters: redis went away"
    assert caplog.records == []


def test_async_queue_is_written_when_asyncio_run_ends_without_close():
    sink = AsyncSink()

    async def main():
        w = AsyncBackgroundWriter(sink, _no_push, interval=10)
        for i in range(50):
            await w.enqueue(write(i))
        # return at once: asyncio.run cancels the worker, which writes the queue first

    asyncio.run(main())
    assert sink.written == [str(i) for i in range(50)]
