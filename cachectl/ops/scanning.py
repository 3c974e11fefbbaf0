"""Sized SCAN pages: every primary's keys, a SCAN page at a time, with each kept key's TYPE,
PTTL and MEMORY USAGE (or only those asked for), read by a server-side script a whole page per
call (one round trip per page instead of one command per key), or by pipelining when scripts are
not allowed; with nothing to read per key, plain SCAN pages. `keys`, `inspect`, `tags` and
`memory` read the keyspace through here.

Nothing here holds the whole keyspace: every result is a generator of pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import CachectlError, RedisError, RedisPermissionError
from cachectl.keytext import show_bytes

if TYPE_CHECKING:
    from cachectl.store import NodeRef, Pacer, Store

KEY_TYPES = ("string", "list", "set", "zset", "hash", "stream")

# --- sized SCAN pages ------------------------------------------------------------------------

# What can be read of each key kept: its TYPE, PTTL and MEMORY USAGE. Each costs the server
# one command per key (a redis.call in the script, about 1.5 to 2 us each): reading all three
# takes two to three times the SCAN itself, so a listing reads only what it shows.
READ_TYPE, READ_TTL, READ_SIZE = "t", "p", "m"
ALL_READS = READ_TYPE + READ_TTL + READ_SIZE
_READ_COMMANDS = {READ_TYPE: "TYPE", READ_TTL: "PTTL", READ_SIZE: "MEMORY USAGE"}

# One SCAN page of this node, with the asked figures of every key kept. Run per node with no
# KEYS: every key it touches came from this node's own SCAN, so it is local even in a cluster (a
# script may only touch keys the node serves; declaring them in KEYS is impossible before the
# SCAN has run). Without a shebang Redis 7 lets such a script touch keys of several slots. It
# writes nothing, and each call handles COUNT keys, so it never holds the server long.
# ARGV: cursor, count, match ('' = all), type ('' = any), reads (letters of ALL_READS), n, then
# n prefixes a key must start with to be kept (none = every key). Reply: cursor, keys scanned,
# then for each key kept: the key, then its type, pttl, bytes as `reads` asks, in that order
# (bytes -1 if the key vanished).
SCAN_SIZED_LUA = """
local args = {'SCAN', ARGV[1], 'COUNT', ARGV[2]}
if ARGV[3] ~= '' then args[#args + 1] = 'MATCH'; args[#args + 1] = ARGV[3] end
if ARGV[4] ~= '' then args[#args + 1] = 'TYPE'; args[#args + 1] = ARGV[4] end
local page = redis.call(unpack(args))
local keys = page[2]
local out = {page[1], #keys}
local n = 2
local reads = ARGV[5]
local read_type = string.find(reads, 't', 1, true) ~= nil
local read_ttl = string.find(reads, 'p', 1, true) ~= nil
local read_size = string.find(reads, 'm', 1, true) ~= nil
local last = 6 + tonumber(ARGV[6])
-- Most keys of other applications are told apart by their first byte alone.
local first = {}
for j = 7, last do first[string.byte(ARGV[j], 1)] = true end
local keep = last == 6
for i = 1, #keys do
  local key = keys[i]
  if not keep and first[string.byte(key, 1)] then
    for j = 7, last do
      local prefix = ARGV[j]
      if string.sub(key, 1, #prefix) == prefix then
        keep = true
        break
      end
    end
  end
  if keep then
    n = n + 1
    out[n] = key
    if read_type then n = n + 1; out[n] = redis.call('TYPE', key)['ok'] end
    if read_ttl then n = n + 1; out[n] = redis.call('PTTL', key) end
    if read_size then n = n + 1; out[n] = redis.call('MEMORY', 'USAGE', key) or -1 end
  end
  keep = last == 6
end
return out
"""

_TYPE_NAMES = {name.encode(): name for name in (*KEY_TYPES, "none")}

# The command on each line of the script that sends one: Redis names the line of a command it
# refused a script (`... on @user_script:33`), not the command.
_SCRIPT_COMMANDS = {
    number: "SCAN" if "unpack(args)" in line else " ".join(re.findall(r"'([A-Z]+)'", line))
    for number, line in enumerate(SCAN_SIZED_LUA.split("\n"), 1)
    if "redis.call(" in line
}
_SCRIPT_LINE = re.compile(r"@user_script:\s*(\d+)")
# How a script's refused call is worded: Redis 7, then Valkey 8 (which also names the command).
_SCRIPT_REFUSED = ("the user executing the script can't", "acl failure in script")
_SCRIPT_KEY_REFUSED = ("access at least one of the keys", "no permissions to access a key")


def type_name(reply: bytes | str) -> str:
    if isinstance(reply, str):
        return reply
    return _TYPE_NAMES.get(reply) or reply.decode("utf-8", "replace")


@dataclass
class SizedPage:
    """One SCAN reply of one node: how many keys it held, and the kept ones with their figures.

    `pttls` as PTTL gives them (-1 no expiry, -2 gone); `sizes` MEMORY USAGE in bytes (-1 gone).
    A figure the scan was not asked to read is None (the whole list).
    """

    node: NodeRef
    scanned: int
    keys: list[bytes]
    types: list[str] | None
    pttls: list[int] | None
    sizes: list[int] | None


@dataclass
class ScanPlan:
    """What `scan_sized` walks: the MATCH and TYPE given to SCAN, the prefixes a key must start
    with to be kept, which figures to read of each kept key (letters of ALL_READS), and for a
    sample, how many keys to read from each node at most."""

    match: str | bytes | None = None
    type: str | None = None
    prefixes: tuple[bytes, ...] = ()
    per_node_limit: dict[str, int] | None = None
    count: int | None = None
    reads: str = ALL_READS


@dataclass
class ScanState:
    """How far a scan got, for a report that covers only part of the keyspace."""

    nodes_total: int = 0
    nodes_done: int = 0
    keys_scanned: int = 0
    # "script", "pipeline" (scripts refused), "scan" (nothing read per key), "members" (keys
    # named by a set, read by pipelining)
    method: str = "script"
    scanned_by_node: dict[str, int] = field(default_factory=dict)


def scan_sized(
    store: Store,
    plan: ScanPlan,
    state: ScanState | None = None,
    pacer: Pacer | None = None,
) -> Iterator[SizedPage]:
    """Every primary's keys, a SCAN page at a time, with the asked figures of the kept ones.

    The request for the next page goes out as soon as a reply brings its cursor, before the
    caller works on the page just read, so Redis reads one page while this process handles the
    last one. SCAN's guarantees hold: a key present throughout is seen at least once (maybe
    twice); keys written or removed meanwhile may or may not be. A lost connection is retried
    with the store's backoff from the cursor reached; if the scan cannot go on, the RedisError
    says how far it got (and `state` holds it).
    """
    state = state if state is not None else ScanState()
    if not plan.reads:
        state.method = "scan"
    count = plan.count or store.settings.scan_count
    nodes = store.primaries()
    state.nodes_total = len(nodes)
    for node in nodes:
        limit = None if plan.per_node_limit is None else plan.per_node_limit.get(node.name, 0)
        if limit == 0:
            state.nodes_done += 1
            continue
        pages = _NodeReader(store, node, plan, count, state).pages(pacer)
        scanned = 0
        try:
            for page in pages:
                page.node = node
                scanned += page.scanned
                state.keys_scanned += page.scanned
                state.scanned_by_node[node.name] = scanned
                yield page
                if limit is not None and scanned >= limit:
                    break
        except CachectlError as error:
            error.message += (
                f" (the scan stopped on {node.name} after {state.nodes_done} of "
                f"{state.nodes_total} nodes and {state.keys_scanned} keys)"
            )
            error.details.update(
                node=node.name,
                nodes_done=state.nodes_done,
                nodes_total=state.nodes_total,
                keys_scanned=state.keys_scanned,
            )
            raise
        finally:
            pages.close()
        state.nodes_done += 1


class _NodeReader:
    """One node's pages, each next request sent ahead on one connection (`Store.pages`): by the
    script, or with nothing to read per key by plain SCAN; when scripts are refused (an ACL
    without EVAL, a managed Redis without scripting), by SCAN and a pipeline of TYPE, PTTL and
    MEMORY USAGE per page: the same figures, more slowly."""

    def __init__(self, store: Store, node: NodeRef, plan: ScanPlan, count: int, state: ScanState):
        self.store = store
        self.node = node
        self.plan = plan
        self.count = count
        self.state = state
        self.reads = "".join(r for r in ALL_READS if r in plan.reads)

    def pages(self, pacer: Pacer | None) -> Iterator[SizedPage]:
        if self.state.method == "scan":
            yield from self._sent_ahead_pages(pacer, "SCAN")
            return
        if self.state.method == "script":
            replies = self._replies(pacer, "EVAL")
            try:
                first = next(replies)
            except CachectlError as error:
                replies.close()
                if not _scripts_refused(error):
                    raise
                self.state.method = "pipeline"
            else:
                yield from self._sent_ahead_pages(pacer, "EVAL", replies, first)
                return
        yield from self._pipelined_pages(pacer)

    # -- by script, or plain SCAN, the next request sent ahead ------------------------------

    def _request(self, cursor: bytes | int, command: str) -> tuple:
        plan = self.plan
        if command == "SCAN":
            return (
                "SCAN", cursor, "COUNT", self.count,
                *(("MATCH", plan.match) if plan.match else ()),
                *(("TYPE", plan.type) if plan.type else ()),
            )  # fmt: skip
        # EVAL rather than EVALSHA: Redis caches the compiled script either way, and a server
        # that restarts mid-scan (and forgot it) needs no NOSCRIPT dance.
        return (
            "EVAL", SCAN_SIZED_LUA, 0, cursor, self.count, plan.match or "", plan.type or "",
            self.reads, len(plan.prefixes), *plan.prefixes,
        )  # fmt: skip

    def _replies(self, pacer: Pacer | None, command: str) -> Iterator[list]:
        """The node's replies to `command`, page after page, the pacer charged COUNT for each
        request, and for the script a refusal of a command it runs named as that command's own
        refusal is (Redis says only "can't run this command")."""
        charged_first = False

        def following(reply: list) -> tuple | None:
            nonlocal charged_first
            if pacer and not charged_first:
                pacer.take(self.count)  # the first request, once it was answered
            charged_first = True
            cursor = reply[0]
            if int(cursor) == 0:
                return None
            if pacer:
                pacer.take(self.count)
            return self._request(cursor, command)

        replies = self.store.pages(self.node, self._request(0, command), following, command)
        try:
            while True:
                try:
                    reply = next(replies)
                except StopIteration:
                    return
                except RedisError as error:
                    refused = (
                        _script_refusal(self.store, error, self.reads)
                        if command == "EVAL"
                        else None
                    )
                    if refused is None:
                        raise
                    raise refused from error
                yield reply
        finally:
            replies.close()

    def _sent_ahead_pages(
        self,
        pacer: Pacer | None,
        command: str,
        replies: Iterator[list] | None = None,
        first: list | None = None,
    ) -> Iterator[SizedPage]:
        page_of = self._scan_page if command == "SCAN" else self._script_page
        if replies is None:
            replies = self._replies(pacer, command)
        try:
            if first is not None:
                yield page_of(first)
            for reply in replies:
                yield page_of(reply)
        finally:
            replies.close()

    def _scan_page(self, reply: list) -> SizedPage:
        keys = reply[1]
        prefixes = self.plan.prefixes
        kept = [k for k in keys if k.startswith(prefixes)] if prefixes else keys
        return SizedPage(None, len(keys), kept, None, None, None)

    def _script_page(self, reply: list) -> SizedPage:
        reads = self.reads
        stride = 1 + len(reads)
        columns = {r: reply[3 + i :: stride] for i, r in enumerate(reads)}
        types = columns.get(READ_TYPE)
        return SizedPage(
            None,
            int(reply[1]),
            reply[2::stride],
            None if types is None else [type_name(t) for t in types],
            columns.get(READ_TTL),
            columns.get(READ_SIZE),
        )

    # -- by pipeline -------------------------------------------------------------------------

    def _pipelined_pages(self, pacer: Pacer | None) -> Iterator[SizedPage]:
        plan = self.plan
        reads = self.reads
        prefixes = tuple(plan.prefixes)
        commands = [_READ_COMMANDS[r] for r in reads]
        cursor = 0
        while True:
            if pacer:
                pacer.take(self.count)
            cursor, keys = self.store.scan_page(
                self.node, cursor, match=plan.match, count=self.count, type=plan.type
            )
            kept = [k for k in keys if k.startswith(prefixes)] if prefixes else keys
            columns: dict[str, list] = {r: [] for r in reads}
            if kept:
                replies = self.store.send_many_to(
                    self.node,
                    [(c, key) for key in kept for c in commands],
                    _READ_COMMANDS[reads[-1]],
                )
                for i, reply in enumerate(replies):
                    if isinstance(reply, Exception):
                        # The refused command and key named, whichever of the page's it was.
                        command = _READ_COMMANDS[reads[i % len(reads)]]
                        raise refusal(self.store, reply, command, kept[i // len(reads)])
                columns = {r: replies[i :: len(reads)] for i, r in enumerate(reads)}
            types = columns.get(READ_TYPE)
            sizes = columns.get(READ_SIZE)
            yield SizedPage(
                None,
                len(keys),
                kept,
                None if types is None else [type_name(t) for t in types],
                columns.get(READ_TTL),
                None if sizes is None else [-1 if s is None else s for s in sizes],
            )
            if int(cursor) == 0:
                return


def refusal(store: Store, exc: Exception, command: str, key: bytes | str) -> CachectlError:
    """A command's error reply as the store words it; an ACL refusal that comes from its key
    patterns, not the command, also names the key (the user may run the command elsewhere)."""
    error = store.translate(exc, command)
    if isinstance(error, RedisPermissionError) and "key" in str(exc).lower():
        error.message += f" on {show_bytes(key)} (the ACL's key patterns exclude it)"
    return error


def _script_refusal(store: Store, error: RedisError, reads: str) -> RedisPermissionError | None:
    """The refusal of the command the ACL kept the script from running, as the store words one
    sent on its own ("the ACL user 'u' may not run PTTL"), or None when `error` is not that.

    Redis (6.2 to 8 at least) does not name the command, only the script line, which names one
    here; without a line, the commands this script runs are listed. Valkey 8 words the refusal
    otherwise and names the command too, with the same line. Naming it from the line rather than
    falling back to pipelining: no second round trip, no change of read method mid-scan, and the
    same words for a refusal met on any page.
    """
    text = error.message.lower()
    if not any(marker in text for marker in _SCRIPT_REFUSED):
        return None
    line = _SCRIPT_LINE.search(error.message)
    command = _SCRIPT_COMMANDS.get(int(line[1])) if line else None
    if command is not None:
        refused = store.permission_refused("refused inside a script", command)
    else:
        sent = ["SCAN", *(_READ_COMMANDS[r] for r in reads)]
        refused = store.permission_refused(
            f"it may run EVAL but not one of the commands the scan's script runs: {', '.join(sent)}"
        )
    if any(marker in text for marker in _SCRIPT_KEY_REFUSED):
        # A key pattern of the ACL, not the command: the key is one the scan found.
        refused.message += (
            " on some of the keys the scan found (the ACL's key patterns exclude them)"
        )
    return refused


def _scripts_refused(error: CachectlError) -> bool:
    if isinstance(error, RedisPermissionError):
        return (error.details.get("command") or "").startswith(("EVAL", "SCRIPT"))
    text = error.message.lower()
    return (
        isinstance(error, RedisError)
        and "unknown command" in text
        and ("eval" in text or "script" in text)
    )


# --- describing keys named elsewhere (set members) -------------------------------------------


def describe_keys(
    store: Store, keys: list[bytes], sizes: bool = True
) -> tuple[list[str], list[int], list[int] | None]:
    """TYPE, PTTL and (with `sizes`) MEMORY USAGE of each key in one pipelined round trip (routed
    by slot in a cluster); a key gone meanwhile reads as type "none", PTTL -2, size -1."""
    if not keys:
        return [], [], [] if sizes else None
    commands = []
    for key in keys:
        commands += [("TYPE", key), ("PTTL", key)]
        if sizes:
            commands.append(("MEMORY", "USAGE", key))
    replies = store.send_many(commands)
    for reply in replies:
        if isinstance(reply, CachectlError):
            raise reply
    stride = 3 if sizes else 2
    types = [type_name(t) for t in replies[0::stride]]
    sized = [-1 if s is None else s for s in replies[2::3]] if sizes else None
    return types, replies[1::stride], sized
