"""Whether the ACL user may send every command a job sends, asked before the job changes
anything: a job refused half way has changed part of what it was asked to and cannot finish
by being run again.

A job lists its probes: the commands it sends, each aimed at keys that do not exist in the
job's own prefixes (or at a member that does not exist), so that sending it changes nothing.
Redis checks the ACL (the command, then its keys) before it runs a command: a refusal for any
other reason (such as "no such key") means the ACL let the command through. A command with no
form that changes nothing (SADD) is probed by a pair: the command, then the probe that undoes
it, listed after a probe of the undoing command itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cachectl.errors import RedisError, RedisPermissionError
from cachectl.keytext import show_bytes

if TYPE_CHECKING:
    from cachectl.store import Store

_KEYLESS = ("SCAN", "DBSIZE", "TIME")


def check_probes(store: Store, probes: Iterable[tuple]) -> None:
    """Sends each probe in order; raises the first refusal by the ACL (RedisPermissionError,
    exit 4, naming the command, and the key when the ACL's key patterns exclude it), or any
    error that is no plain refusal (unreachable, timeout)."""
    for command in probes:
        try:
            store.execute(*command)
        except RedisPermissionError as err:
            cause = str(err.__cause__ or "").lower()
            if "key" in cause and command[0] not in _KEYLESS:  # a key the user may not touch
                key = command[1] if command[0] not in ("OBJECT", "MEMORY") else command[2]
                shown = show_bytes(key) if isinstance(key, bytes) else key
                raise RedisPermissionError(
                    f"{err.message} on {shown} (the ACL's key patterns exclude it)",
                    command=err.command,
                    hint=err.hint,
                ) from err
            raise
        except RedisError as err:
            # A plain refusal ("no such key") passed the ACL; anything more specific (no
            # permission, unreachable, timeout) is the answer.
            if type(err) is not RedisError:
                raise
