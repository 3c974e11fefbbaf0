"""What the store decides without talking to Redis: how fast a paced job may go (`Pacer`),
which failures are worth a retry (`worth_retrying`, the one policy of the sync Store and the
asyncio library), and what two looks at a deployment must agree on for a pass over it to stand
(`Epoch`). Re-exported by `cachectl.store`."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis.exceptions as rx
from redis.retry import Retry

from cachectl.errors import ConfigError

# Full-jitter exponential backoff: the n-th retry waits up to 0.2 * 2**n s, capped at 2 s. With the
# default 3 retries a server that restarts within a few seconds is ridden out, and one that stays
# down is reported within seconds rather than minutes.
BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 2.0


class Pacer:
    """A token bucket that holds work to `rate_per_s` units a second; None never waits.

    The bucket holds one second's worth and starts full, so a paced job may do that much at once
    before it settles to the rate. `take(n)` may overdraw: a batch bigger than the bucket waits
    off its whole debt, which keeps the long-run rate whatever the batch size.
    """

    def __init__(
        self,
        rate_per_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate_per_s is not None and rate_per_s <= 0:
            raise ConfigError(f"the rate must be a positive number per second, not {rate_per_s}")
        self.rate = rate_per_s
        self._clock = clock
        self._sleep = sleep
        self._tokens = rate_per_s or 0.0
        self._last = clock()

    def take(self, n: float = 1) -> None:
        if self.rate is None:
            return
        now = self._clock()
        refilled = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._tokens = refilled - n
        self._last = now
        if self._tokens < 0:
            # The debt refills while we sleep; the next take() counts that time from _last.
            self._sleep(-self._tokens / self.rate)


def worth_retrying(error: Exception) -> bool:
    """Whether a failed connection or command may succeed if tried again: the one retry policy
    of the sync Store and the asyncio library alike.

    redis-py raises a refused password and a failed certificate check as ConnectionErrors, which
    plain Retry would retry (and a 3 a.m. user would wait for) before saying no.
    """
    if isinstance(error, (rx.AuthenticationError, rx.AuthorizationError)):
        return False
    return not isinstance(error.__context__, ssl.SSLCertVerificationError)


class _Retry(Retry):
    """redis-py's Retry, except that no retry is wasted on an answer that cannot change
    (`worth_retrying`)."""

    def call_with_retry(self, do, fail, is_retryable=None, with_failure_count=False):
        def retryable(error: Exception) -> bool:
            if not worth_retrying(error):
                return False
            return is_retryable is None or is_retryable(error)

        return super().call_with_retry(do, fail, retryable, with_failure_count)


@dataclass(frozen=True)
class Epoch:
    """A deployment's identity as far as a run can see it: two equal epochs, one taken before a
    pass and one after, mean no primary restarted or failed over in between.

    `run_ids`: each primary's INFO run_id (None when the ACL user may not send INFO). A restart
    also breaks every connection to the server, so `reconnects` (connections found broken, and
    so made again, per node: store_wire.Reconnects) grows with one, INFO or not; it grows after
    a network blip too (an extra pass, never a wrong answer). None when the store cannot count
    them (a client the application passed in).
    """

    primaries: tuple[str, ...]
    run_ids: dict[str, str | None] | None
    reconnects: dict[str, int] | None

    @property
    def blind(self) -> bool:
        """Neither run_ids nor reconnections: a restart cannot be seen."""
        return self.run_ids is None and self.reconnects is None


BLIND_NOTE = (
    "a server restart during the run cannot be detected (the ACL user may not send INFO and "
    "the Redis client was passed in, so its reconnections are not counted): what the run "
    "removed may have come back, had one restarted"
)
