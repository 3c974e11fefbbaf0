"""How a cache call uses the origin and the cache, and when an entry is refreshed before it
expires."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from cachectl.errors import UsageError


class Strategy(str, Enum):
    """How `cache_api_call` uses the origin and the cache.

    cache_aside: answer from the cache; on a miss call the origin and store its answer.
    write_through: call the origin every time and store every answer.
    write_behind: answer from the cache; on a miss call the origin, answer at once and leave the
    write to a background queue (flushed by `flush()`, on close and at interpreter exit).
    """

    CACHE_ASIDE = "cache_aside"
    WRITE_THROUGH = "write_through"
    WRITE_BEHIND = "write_behind"


@dataclass(frozen=True)
class EarlyRefresh:
    """Probabilistic early refresh ("XFetch", Vattani et al. 2015): on a hit, one caller is picked
    at random to call the origin before the entry expires, more likely the nearer expiry is and
    the longer the origin takes. The picked caller waits for the origin; the others keep getting
    the cached value. `beta` > 1 refreshes earlier, < 1 later."""

    beta: float = 1.0

    def __post_init__(self) -> None:
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta > 0):
            raise UsageError(f"EarlyRefresh beta must be a positive number, not {self.beta!r}")

    def due(self, remaining_ms: float, recompute_ms: float, rand: float) -> bool:
        """Whether to refresh now: recompute time x beta x -ln(rand) reaches the time left.
        `rand` is uniform in (0, 1]."""
        return recompute_ms * self.beta * -math.log(max(rand, 1e-300)) >= remaining_ms


@dataclass(frozen=True)
class StaleWhileRevalidate:
    """In the last `window` seconds of an entry's life, callers keep getting the cached value
    while one caller (the one that takes the lock) refreshes it in the background.

    The entry's TTL stays the key's TTL (docs/keyspace.md), so the "stale" period is its life's end,
    not a time after it: an entry nobody asks for in its window still expires."""

    window: float

    def __post_init__(self) -> None:
        if not (
            isinstance(self.window, (int, float)) and math.isfinite(self.window) and self.window > 0
        ):
            raise UsageError(
                f"StaleWhileRevalidate window must be a positive number of seconds, "
                f"not {self.window!r}"
            )


RefreshPolicy = EarlyRefresh | StaleWhileRevalidate
