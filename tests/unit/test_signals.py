"""The stop handlers survive a storm of signals.

A SIGTERM that lands while the handler of the previous one is still running re-enters the
handler on the same thread. With a threading.Event as the stop flag, the inner set() waited
forever on the lock the outer set() held: two SIGTERMs back to back (a process group signalled
and a parent forwarding it) hung `cachectl invalidate`. Each test runs a child under a stream of
signals sent as fast as another process can send them, and requires it to finish on its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent("""
    import sys, time
    from {module} import {context}

    with {context}() as stop:
        print("ready", flush=True)
        end = time.monotonic() + 1.0
        try:
            while time.monotonic() < end:
                {poll}
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    print("finished", {report}, flush=True)
""")

KILLER = textwrap.dedent("""
    import os, signal, sys
    pid = int(sys.argv[1])
    while True:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            break
""")


def run_under_storm(child_source: str) -> list[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", child_source],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        killer = subprocess.Popen([sys.executable, "-c", KILLER, str(child.pid)])
        try:
            try:
                out, err = child.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail("the child hung under a storm of SIGTERMs (a handler deadlocked)")
        finally:
            killer.kill()
            killer.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    return out.split()


def test_invalidate_stop_flag_survives_a_storm_of_sigterms():
    words = run_under_storm(
        CHILD.format(
            module="cachectl.signals",
            context="stop_on_signals",
            poll="stop.is_set()",
            report="stop.is_set()",
        )
    )
    assert words == ["finished", "True"]


def test_sigterm_as_interrupt_survives_a_storm_of_sigterms():
    # The first SIGTERM interrupts the loop once; the rest are ignored while it finishes.
    words = run_under_storm(
        CHILD.format(
            module="cachectl.signals", context="sigterm_as_interrupt", poll="pass", report="0"
        )
    )
    assert words == ["interrupted", "finished", "0"]


def test_stop_flag_is_set_once_set():
    from cachectl.signals import StopFlag

    flag = StopFlag()
    assert not flag.is_set()
    flag.set()
    flag.set()
    assert flag.is_set()
