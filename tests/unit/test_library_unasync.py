"""client.py (APICache) is generated from aio.py (AsyncAPICache): held here to what aio.py makes."""

from __future__ import annotations

import re

import pytest

from cachectl.library import unasync


def test_client_py_is_what_aio_py_generates():
    # Fails after an edit of aio.py (or of client.py by hand): run python -m cachectl.library.unasync
    assert unasync.TARGET.read_text() == unasync.generate(unasync.SOURCE.read_text())


def test_the_sync_twin_has_no_async_left():
    made = unasync.generate(unasync.SOURCE.read_text())
    made = made.replace("io_async.py has the same names for asyncio", "")
    for word in ("async", "await", "asyncio", "AsyncAPICache", "io_async", "aclose"):
        assert not re.search(rf"\b{word}\b", made), word


def test_a_swap_that_no_longer_matches_aio_py_fails_loudly(monkeypatch):
    monkeypatch.setattr(unasync, "TEXTS", [*unasync.TEXTS, ("text aio.py lacks", "anything")])
    with pytest.raises(ValueError, match="0 times, not once"):
        unasync.generate(unasync.SOURCE.read_text())
