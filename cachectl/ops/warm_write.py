"""Writing warmed entries: each with its TTL, its tag and dependency memberships and its write-log
record, all or nothing per entry, many entries per pipelined round trip.

The write-order rule (the same as the library's, `cachectl.library.core.write_commands`):
**the entry first, then its index writes (SADD to each tag and dependency set, the sets' TTLs,
ZADD to the write log); an entry whose index writes fail is deleted again.**

Why this order. Invalidation by tag takes a set whole (RENAMENX to a pending name, then deletes
its members; the library's SSCAN, UNLINK and SREM works the same way for this purpose):
- entry first: an invalidation that reads the set before the SADD does not see the entry, and
  the SADD then lands in the (fresh) set, so the entry stays findable and the next invalidation
  of the tag removes it. One that reads the set after the SADD deletes it. Either way no entry
  exists outside its sets.
- sets first (what this writer did in a cluster before): the SADD lands, the invalidation takes
  the set and finds nothing to delete, then the SET creates the entry, in no set at all: an
  orphan no invalidation by tag or dependency will ever find, holding data fetched before the
  invalidation, until its TTL ends. tests/integration/test_warm_write_order.py shows it.

Neither order can keep a warm that fetched before an invalidation from storing what it fetched
(nothing short of a version check could); the rule guarantees that whatever it stores can be
invalidated afterwards.

How it is applied:
- Single server: one MULTI/EXEC per entry (SET with PX, then the SADDs, the sets' TTLs and the
  ZADD), many of them in one pipeline, so each entry lands whole. A connection lost before EXEC
  or a command refused while queued (NOPERM) discards the entry whole. A runtime error inside
  EXEC (a tag key that became a string after the TYPE check) does not roll back: the SET stands,
  so the entry is deleted again as below.
- Cluster: an entry, its sets and the write log live in different slots and a MULTI cannot span
  them, so each batch takes two round trips: every SET, then the index writes of the entries
  whose SET succeeded.
- Either way, an entry whose index writes got an error is UNLINKed (and ZREMed from the write
  log) in one more round trip, and reported failed. If a lost connection raises between the two
  cluster steps, the batch's entries are deleted the same way (best effort: Redis may be down);
  the caller retries the batch whole, and every step is idempotent.
- Set keys are checked with TYPE first: an entry whose set holds another type is not written.

The sets' TTLs: a set that did not exist gets the entry's TTL (PEXPIRE NX); an existing one is
only ever lengthened (PEXPIRE GT), so it lives at least as long as its longest-lived member
written here. A set that exists without a TTL keeps none (GT treats no TTL as infinite): the
applications' own writes leave sets without one, and giving it our TTL could drop it before the
members others wrote. A set's TTL is the entry's plus a second: its PEXPIRE runs after the
entry's SET, so the set never expires before the entry.

Runs in a worker thread (the sync Store); the event loop keeps fetching meanwhile.
"""

from __future__ import annotations

import copy
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
    text: bytes | None = None  # js_stringify(value) as UTF-8 when already known (the fetch path's)


class WrongType(RedisError):
    """A key the entry must be added to holds another type (a tag key that is a string)."""

    code = "redis.wrong_type"


class EntryWriter:
    def __init__(self, store: Store, layout: Layout):
        self.store = store
        self.layout = layout
        self.log_key = layout.entries_log()
        self.cluster = store.is_cluster

    def write(self, items: Sequence[ToWrite]) -> list[tuple[int, CachectlError | None]]:
        """Writes a batch; per item (bytes stored, None) or (0, the error that kept it out).

        A lost connection (after the store's own retries) raises: nothing of the batch may be
        counted as stored then, though some of it may be (writing it again is harmless).
        """
        values = [
            item.text if item.text is not None else js_stringify(item.value).encode()
            for item in items
        ]
        sets = [self._sets_of(item.request) for item in items]
        kinds = self._types({key for keys in sets for key in keys} | {self.log_key})
        now_ms = int(time.time() * 1000)
        results: list[tuple[int, CachectlError | None]] = [(0, None)] * len(items)
        writes: list[tuple[int, tuple, list[tuple]]] = []  # (item, its SET, its index writes)
        for i, (item, keys) in enumerate(zip(items, sets)):
            expected = {**dict.fromkeys(keys, "set"), self.log_key: "zset"}
            wrong = next((k for k, t in expected.items() if kinds[k] not in ("none", t)), None)
            if wrong is not None:
                results[i] = (
                    0,
                    WrongType(
                        f"{wrong} holds a {kinds[wrong]}, not a {_TYPE_NAMES[expected[wrong]]}: "
                        "the entry was not written"
                    ),
                )
                continue
            entry = self._set_command(item.request, values[i])
            writes.append((i, entry, self._index_commands(item.request, keys, kinds, now_ms)))

        # Items whose entry may be in Redis while an index write of theirs failed.
        undo: list[int] = []
        if not writes:
            return results
        if not self.cluster:
            groups = [[entry, *index] for _, entry, index in writes]
            for (i, _, _), replies in zip(writes, self.store.transactions(groups)):
                if isinstance(replies, CachectlError):  # discarded whole
                    results[i] = (0, replies)
                    continue
                error = _first_error(replies)
                results[i] = (len(values[i]), None) if error is None else (0, error)
                if error is not None and not isinstance(replies[0], CachectlError):
                    undo.append(i)
        else:
            set_replies = self.store.send_many([entry for _, entry, _ in writes])
            landed = []
            for (i, _, index), reply in zip(writes, set_replies):
                if isinstance(reply, CachectlError):
                    results[i] = (0, reply)
                else:
                    landed.append((i, index))
            index_commands = [c for _, index in landed for c in index]
            try:
                index_replies = self.store.send_many(index_commands) if index_commands else []
            except CachectlError:
                self._delete([items[i].request.key for i, _ in landed], quietly=True)
                raise
            at = 0
            for i, index in landed:
                error = _first_error(index_replies[at : at + len(index)])
                at += len(index)
                results[i] = (len(values[i]), None) if error is None else (0, error)
                if error is not None:
                    undo.append(i)
        if undo:
            self._undo(items, undo, results)
        return results

    def _undo(self, items: Sequence[ToWrite], undo: list[int], results: list) -> None:
        """Deletes the entries whose index writes failed: none may outlive that untagged."""
        keys = [items[i].request.key for i in undo]
        failure = self._delete(keys, quietly=False)
        for i in undo:
            error = results[i][1]
            if failure is not None:
                error = copy.copy(error)
                error.message = (
                    f"{error.message}; deleting the entry again failed too ({failure.message}): "
                    "it may stay outside its tag and dependency sets until its TTL ends"
                )
                error.args = (error.message,)
            results[i] = (0, error)

    def _delete(self, keys: list[str], *, quietly: bool) -> CachectlError | None:
        commands = [("UNLINK", key) for key in keys] + [("ZREM", self.log_key, key) for key in keys]
        try:
            replies = self.store.send_many(commands)
        except CachectlError as exc:
            return None if quietly else exc
        return next((r for r in replies if isinstance(r, CachectlError)), None)

    def _sets_of(self, request: PlannedRequest) -> list[str]:
        keys = [self.layout.tag(t) for t in request.tags]
        keys += [self.layout.dependency(d) for d in request.depends_on]
        return list(dict.fromkeys(keys))

    def _types(self, keys: set[str]) -> dict[str, str]:
        keys = sorted(keys)
        return dict(zip(keys, self.store.types(keys)))

    def _index_commands(
        self, request: PlannedRequest, sets: list[str], kinds: dict, now_ms: int
    ) -> list[tuple]:
        set_ttl = request.endpoint.ttl_ms + INDEX_TTL_MARGIN_MS
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


def _first_error(replies: Sequence[Any]) -> CachectlError | None:
    return next((r for r in replies if isinstance(r, CachectlError)), None)
