"""Writing warmed entries: each with its TTL, its tag and dependency memberships and its write-log
record, all or nothing per entry, many entries per pipelined round trip.

What "all or nothing" means:
- Single server: one MULTI/EXEC per entry (SADD to each set, the sets' TTLs, ZADD to the write
  log, SET with PX), many of them in one pipeline. A connection lost before EXEC discards the
  entry whole. Runtime errors (a tag key holding a string) cannot split an entry either: set
  keys are checked with TYPE first and an entry whose set has the wrong type is not written.
- Cluster: an entry, its sets and the write log live in different slots and a MULTI cannot
  span them. Each entry is written in two steps: first its pointers (SADD to its sets, their
  TTLs, the write-log record), then, only when all of those succeeded, the entry itself (SET
  with PX, atomic with its TTL). An entry the applications can read is therefore always in its
  tag and dependency sets, so invalidating by tag never misses it; a failure in between leaves
  at most a set member whose entry does not exist yet, which readers and prune already treat as
  a dangling member. Both steps are idempotent, and a failed entry is retried whole.

The sets' TTLs: a set that did not exist gets the entry's TTL (PEXPIRE NX); an existing one is
only ever lengthened (PEXPIRE GT), so it lives at least as long as its longest-lived member written
here. A set that exists without a TTL keeps none (GT treats no TTL as infinite): someone chose
to keep it, and giving it our TTL could drop it before the members others wrote. A set's TTL is
the entry's plus a margin, so the set never expires before the entry: a second on a single
server (where both are written at once), and in a cluster also the longest the SET of step two
can take after step one (every retry with its timeout).

Runs in a worker thread (the sync Store); the event loop keeps fetching meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cachectl.errors import CachectlError, RedisError
from cachectl.layout import js_stringify

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.manifest import PlannedRequest
    from cachectl.store import Store


INDEX_TTL_MARGIN_MS = 1000


@dataclass(slots=True)
class ToWrite:
    request: PlannedRequest
    value: Any  # the parsed JSON answer


class WrongType(RedisError):
    """A key the entry must be added to holds another type (a tag key that is a string)."""

    code = "redis.wrong_type"


class EntryWriter:
    def __init__(self, store: Store, layout: Layout):
        from cachectl.store import BACKOFF_CAP_SECONDS

        self.store = store
        self.layout = layout
        self.log_key = layout.entries_log()
        self.cluster = store.is_cluster
        settings = store.settings
        self.grace_ms = INDEX_TTL_MARGIN_MS + (
            int((settings.retries + 1) * (settings.timeout + BACKOFF_CAP_SECONDS) * 1000)
            if self.cluster
            else 0
        )

    def write(self, items: Sequence[ToWrite]) -> list[tuple[int, CachectlError | None]]:
        """Writes a batch; per item (bytes stored, None) or (0, the error that kept it out).

        A lost connection (after the store's own retries) raises: nothing of the batch may be
        counted as stored then, though some of it may be (writing it again is harmless).
        """
        values = [js_stringify(item.value).encode() for item in items]
        sets = [self._sets_of(item.request) for item in items]
        kinds = self._types({key for keys in sets for key in keys} | {self.log_key})
        now_ms = int(time.time() * 1000)
        results: list[tuple[int, CachectlError | None]] = [(0, None)] * len(items)
        pointers: list[tuple[int, list[tuple]]] = []
        for i, (item, keys) in enumerate(zip(items, sets)):
            expected = {**dict.fromkeys(keys, "set"), self.log_key: "zset"}
            wrong = next((k for k, t in expected.items() if kinds[k] not in ("none", t)), None)
            if wrong is not None:
                results[i] = (0, WrongType(
                    f"{wrong} holds a {kinds[wrong]}, not a {_TYPE_NAMES[expected[wrong]]}: "
                    "the entry was not written"
                ))
                continue
            pointers.append((i, self._pointer_commands(item.request, keys, kinds, now_ms)))

        if not self.cluster:
            groups = [
                commands + [self._set_command(items[i].request, values[i])] for i, commands in pointers
            ]
            for (i, _), replies in zip(pointers, self.store.transactions(groups)):
                results[i] = _result(replies, len(values[i]))
            return results

        flat = [command for _, commands in pointers for command in commands]
        replies = self.store.send_many(flat)
        ready, at = [], 0
        for i, commands in pointers:
            mine = replies[at : at + len(commands)]
            at += len(commands)
            error = next((r for r in mine if isinstance(r, CachectlError)), None)
            if error is None:
                ready.append(i)
            else:
                results[i] = (0, error)
        set_replies = self.store.send_many([self._set_command(items[i].request, values[i]) for i in ready])
        for i, reply in zip(ready, set_replies):
            results[i] = _result([reply], len(values[i]))
        return results

    def _sets_of(self, request: PlannedRequest) -> list[str]:
        keys = [self.layout.tag(t) for t in request.tags]
        keys += [self.layout.dependency(d) for d in request.depends_on]
        return list(dict.fromkeys(keys))

    def _types(self, keys: set[str]) -> dict[str, str]:
        keys = sorted(keys)
        return dict(zip(keys, self.store.types(keys)))

    def _pointer_commands(self, request: PlannedRequest, sets: list[str], kinds: dict, now_ms: int) -> list[tuple]:
        set_ttl = request.endpoint.ttl_ms + self.grace_ms
        commands: list[tuple] = []
        for key in sets:
            commands.append(("SADD", key, request.key))
            if kinds[key] == "none":
                commands.append(("PEXPIRE", key, set_ttl, "NX"))
            commands.append(("PEXPIRE", key, set_ttl, "GT"))
        commands.append(("ZADD", self.log_key, now_ms, request.key))
        return commands

    @staticmethod
    def _set_command(request: PlannedRequest, value: bytes) -> tuple:
        return ("SET", request.key, value, "PX", request.endpoint.ttl_ms)


_TYPE_NAMES = {"set": "set", "zset": "sorted set"}


def _result(replies: Any, size: int) -> tuple[int, CachectlError | None]:
    if isinstance(replies, CachectlError):
        return 0, replies
    error = next((r for r in replies if isinstance(r, CachectlError)), None)
    return (0, error) if error is not None else (size, None)
