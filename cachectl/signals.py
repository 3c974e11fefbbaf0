"""SIGTERM handled like Ctrl-C while a long-running loop runs.

`cachectl warm --every`, `stats --every`, `history record` and `check --every` run until they
are stopped. A cancelled CI job, `docker stop` and systemd stop them with SIGTERM, whose default
action kills the process at once: no last report, exit status 143. Inside
`sigterm_as_interrupt()` SIGTERM raises KeyboardInterrupt instead, so they end the way Ctrl-C
ends them; later SIGTERMs are then ignored while the process finishes its clean stop.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class StopFlag:
    """A stop request that a signal handler sets and a loop polls.

    Not `threading.Event`: its set() takes a lock, and a second signal landing while the first
    handler is inside set() runs the handler again on the same thread, whose set() then waits
    forever on the lock its own thread holds (two SIGTERMs back to back, as a process group
    signalled and a parent forwarding it send them, hung `invalidate`). Writing and reading one
    attribute needs no lock, so the handler can be re-entered at any point."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


def _raise_interrupt(signum, frame) -> None:
    # Stopping from now on: a second SIGTERM (a process group signalled and a parent forwarding
    # it) is ignored, so it cannot cut the clean stop and its report short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only: Python delivers
    signals there; elsewhere the block changes nothing)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        # Left ignored once a SIGTERM came (the process is on its way out); else as it was.
        if signal.getsignal(signal.SIGTERM) is _raise_interrupt:
            signal.signal(signal.SIGTERM, previous)


@contextmanager
def stop_on_signals() -> Iterator[StopFlag]:
    """For a job that stops after its current batch and reports (invalidate, prune, a warm dry
    run): within the block, the first Ctrl-C sets the flag and a second one raises
    KeyboardInterrupt at once; SIGTERM (a cancelled CI job, `docker stop`) sets it too, and once
    it has, later SIGTERMs are ignored until the process exits, so a forwarded second one cannot
    kill the report. The handlers may be re-entered by a signal that lands while they run: the
    flag is a StopFlag, not a threading.Event, for that. Main thread only (elsewhere no signal
    lands, and the flag just stays unset)."""
    stop = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    terminated = False

    def on_sigint(signum, frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    def on_sigterm(signum, frame) -> None:
        nonlocal terminated
        terminated = True
        stop.set()

    previous_int = signal.signal(signal.SIGINT, on_sigint)
    previous_term = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield stop
    finally:
        # None: a handler not set from Python; the interpreter's own defaults stand in for it.
        signal.signal(signal.SIGINT, previous_int or signal.default_int_handler)
        signal.signal(
            signal.SIGTERM, signal.SIG_IGN if terminated else previous_term or signal.SIG_DFL
        )
