"""SIGTERM handled like Ctrl-C while a long-running loop runs.

`cachectl warm --every`, `stats --watch`, `history record` and `check --every` run until they
are stopped. A cancelled CI job, `docker stop` and systemd stop them with SIGTERM, whose default
action kills the process at once: no last report, exit status 143. Inside
`sigterm_as_interrupt()` SIGTERM raises KeyboardInterrupt instead, so they end the way Ctrl-C
ends them.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def _raise_interrupt(signum, frame) -> None:
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
        signal.signal(signal.SIGTERM, previous)
