"""Writes client.py (APICache) from aio.py (AsyncAPICache): one implementation, two clients.

    python -m cachectl.library.unasync          # rewrite client.py
    python -m cachectl.library.unasync --check  # exit 1 if client.py is not what aio.py makes

As httpcore does it: the asyncio source is the one edited; the sync twin is aio.py without
`async`/`await`, with the io_async names swapped for io_sync's and the docstrings that differ
swapped for the sync ones. A test holds client.py to this output.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE / "aio.py"
TARGET = HERE / "client.py"

# Texts that differ beyond the async keywords, each (in aio.py, in client.py); each must be
# found exactly once, so an edit of aio.py that moves one fails loudly rather than half-applies.
TEXTS = [
    (
        '''"""AsyncAPICache: the asyncio twin of APICache, with the same keyspace, options and behaviour.

It belongs to one event loop (redis-py's asyncio connections do): make it inside the loop that
uses it. Close it with `await cache.aclose()` or `async with`; when `asyncio.run()` ends, the
background task writes what is still queued before the loop closes.
''',
        '''"""APICache: the cache an application reads and writes, in exactly the docs/keyspace.md layout, so
a Python service, a JavaScript service and cachectl share one cache.

A hit costs one GET. Its counters, access-log and response-time records are gathered in memory
and written together, one pipeline per `metrics_flush_interval` (and at close and exit), so they
never cost the caller a second round trip.
''',
    ),
    (
        '''    """The asyncio twin of `APICache`: the same arguments (with an asyncio redis-py client, if
    you pass your own), the same methods as coroutines, `aclose()` for close(). `fn`,
    `fallback` and `cache_if` may be plain or async callables."""
''',
        '''    """A Redis-backed cache of API responses, written as docs/keyspace.md says.

    connection: a Redis URL, cachectl `Settings`, or your own `redis.Redis` / `RedisCluster`
    (closing it stays yours). None reads cachectl's settings (CACHECTL_URL, cachectl.yaml).
    layout: a `Layout` or `LayoutConfig` (default: the settings' layout).
    default_ttl: seconds, for calls that give no ttl.
    strategy: "cache_aside" (default), "write_through" or "write_behind" (see `Strategy`).
    stampede: True (default), False, or `StampedeOptions(...)`.
    refresh: None, `EarlyRefresh(beta)` or `StaleWhileRevalidate(window)`: refresh entries before
    they expire.
    fail_open: when Redis fails, `cache_api_call` answers from the origin (logging a warning)
    instead of raising. get/set/delete always raise.
    metrics: write the hit/miss counters, the access log and the response-time log.
    metrics_flush_interval: seconds between pushes of those records; 0 writes them after every
    call (a second round trip per call).
    close_timeout: how long close() (and interpreter exit) waits for queued writes.
    """
''',
    ),
    ("This file is the one implementation", "aio.py is the one implementation"),
    ("client.py (APICache) is generated\nfrom it", "this file (APICache) is generated\nfrom it"),
    (
        (
            "What the asyncio side does its own way (tasks,\nconnecting, closing) is in "
            "io_async.py; io_sync.py has the same names for threads."
        ),
        (
            "What the sync side does its own way (threads,\nconnecting, closing) is in "
            "io_sync.py; io_async.py has the same names for asyncio."
        ),
    ),
    ("from cachectl.library.io_async import", "from cachectl.library.io_sync import"),
    ("_want_async = True", "_want_async = False"),
    ("cache_if: Callable[[Any], Any]", "cache_if: Callable[[Any], bool]"),
]

# Whole words, after TEXTS.
NAMES = {
    "AsyncAPICache": "APICache",
    "AsyncFlights": "Flights",
    "AsyncBackgroundWriter": "BackgroundWriter",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "aclose": "close",
}

HEADER = "# Generated from aio.py by `python -m cachectl.library.unasync`: edit aio.py, not this.\n"


def generate(source: str) -> str:
    for asynchronous, synchronous in TEXTS:
        found = source.count(asynchronous)
        if found != 1:
            raise ValueError(f"unasync: {asynchronous[:60]!r} is in aio.py {found} times, not once")
        source = source.replace(asynchronous, synchronous)
    source = re.sub(r"\b(" + "|".join(NAMES) + r")\b", lambda m: NAMES[m.group()], source)
    source = re.sub(r"\basync (def|with|for)\b", r"\1", source)
    source = re.sub(r"\bawait ", "", source)
    return HEADER + _rejoin(source)


def _rejoin(source: str) -> str:
    """Joins a signature that ruff split only because of its `async `, as ruff format would."""

    def join(match: re.Match) -> str:
        joined = f"{match.group(1)}({match.group(2).strip()}){match.group(3)}"
        return joined if len(joined) <= 100 else match.group()

    return re.sub(
        r"^( *def \w+)\(\n +([^\n]*[^,\n])\n *\)([^\n]*:)$", join, source, flags=re.MULTILINE
    )


def main(argv: list[str]) -> int:
    made = generate(SOURCE.read_text())
    if "--check" in argv:
        if TARGET.read_text() != made:
            print(f"{TARGET} is out of date: run python -m cachectl.library.unasync")
            return 1
        return 0
    TARGET.write_text(made)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
