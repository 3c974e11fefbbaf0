"""`cachectl keys`: the cache's entries, streamed, each with its type, TTL, size, endpoint and params.

Also the read primitives `inspect`, `tags` and `memory` share:
- `scan_sized`: SCAN over every primary with each kept key's TYPE, PTTL and MEMORY USAGE (or
  only those asked for), read by a server-side script a whole page per call (one round trip per
  page instead of one command per key), or by pipelining when scripts are not allowed; with
  nothing to read per key, plain SCAN pages;
- `EntryParser`: entry keys read back into endpoint and params, fast for the common case;
- `show_bytes` / `unshow_bytes`: keys and values shown safely whatever bytes they hold.

Nothing here holds the whole keyspace: every result is a generator of pages or rows.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any

from cachectl.errors import (
    CachectlError,
    PartialFailure,
    RedisError,
    RedisPermissionError,
    UsageError,
)

# The key escaping, imported from here by the readers too (it lives in cachectl.keytext).
from cachectl.keytext import _NEEDS_ESCAPES, safe_text, show_bytes, unshow_bytes  # noqa: F401
from cachectl.layout import NO_PARAMS, Layout, js_sort_key

if TYPE_CHECKING:
    from cachectl.store import NodeRef, Pacer, Store

KEY_TYPES = ("string", "list", "set", "zset", "hash", "stream")

# --- showing bytes: the one escaping of keys lives in cachectl/keytext.py -----------------------

# --- parsing entry keys ----------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# The strict reader's scanner itself, as raw_decode calls it (one Python frame less per value: a
# million keys pass through here): (value, end) from a position, StopIteration when no value
# starts there, ValueError for a bad one.
_scan_json_value = json.scanner.make_scanner(json.JSONDecoder(parse_constant=_reject_constant))


class EntryParser:
    """Entry keys read back into endpoint and params, as `Layout.parse_entry` reads them.

    `parse_entry` tries every split of a key and both encodings; listing a million keys through
    it costs seconds. Most keys are read by its first attempt (endpoint up to the first `:`, the
    params in the configured `json` encoding), which this reads directly with the same strict
    JSON reader, value by value; anything else goes to `parse_entry` itself. Tests hold that both
    give the same answer.
    """

    def __init__(self, layout: Layout):
        self.layout = layout
        self._root_length = len(layout.entry_root)
        self._fast = not layout.versioned and layout.config.param_encoding == "json"

    def parse(self, key: bytes, text: str | None = None) -> Parsed:
        """(endpoint, params, params as JSON text or None) of an entry key; params is None when
        unreadable, and everything None when `key` is not an entry. `text` is the key decoded
        as UTF-8, when it decodes."""
        if self._fast and text is not None:
            parsed = _parse_json_params(text[self._root_length :])
            if parsed is not None:
                return parsed
        if text is None:
            return self._parse_undecodable(key)
        slow = self.layout.parse_entry(key)
        return (None, None, None) if slow is None else (slow.endpoint, slow.params, None)

    def endpoint(self, key: bytes, text: str | None = None) -> str | None:
        """The endpoint alone, as `parse` reads it, a little faster."""
        if self._fast and text is not None:
            endpoint = _parse_json_params(text[self._root_length :], build=False)
            if endpoint is not None:
                return endpoint[0]
        if text is None:
            return self._parse_undecodable(key)[0]
        slow = self.layout.parse_entry(key)
        return None if slow is None else slow.endpoint

    def _parse_undecodable(self, key: bytes) -> Parsed:
        """A key that is not UTF-8, read with its stray bytes kept (not replaced by U+FFFD, which
        would make two endpoints one): every name and text in the answer is escaped as
        `show_bytes` escapes the key itself, so `\\xff` in an endpoint is the byte 0xff."""
        slow = self.layout.parse_entry(key.decode("utf-8", "surrogateescape"))
        if slow is None:
            return None, None, None
        return show_bytes(slow.endpoint), _escaped_texts(slow.params), None


Parsed = tuple[str | None, dict | None, str | None]


def _escaped_texts(value: Any) -> Any:
    if isinstance(value, str):
        return show_bytes(value)
    if isinstance(value, dict):
        return {show_bytes(k): _escaped_texts(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped_texts(v) for v in value]
    return value


_json_str = json.encoder.encode_basestring  # C; json.dumps(s, ensure_ascii=False) without the rest


def _parse_json_params(rest: str, build: bool = True) -> Parsed | None:
    """(endpoint, params, params as JSON text) of `rest` split at its first `:`, the params in
    the `json` encoding, or None when they do not read so (`parse_entry` then decides)."""
    endpoint, sep, raw = rest.partition(":")
    if not sep:
        return None
    if raw == NO_PARAMS:
        return endpoint, {}, "{}"
    scan = _scan_json_value
    if "|" not in raw:
        # One param, the most common shape: no order to check.
        name, sep, value = raw.partition(":")
        if not sep:
            return None
        try:
            parsed, end = scan(value, 0)
        except (StopIteration, ValueError):
            return None
        if end != len(value):
            return None
        if not build:
            return endpoint, None, None
        return endpoint, {name: parsed}, "{" + _json_str(name) + ":" + value + "}"
    params: dict[str, Any] = {}
    members = []
    last = None
    ascii_names = raw.isascii()
    for piece in raw.split("|"):
        # A "|" inside a string value cuts it short: the piece then fails to read as one whole
        # JSON value and the key goes to parse_entry.
        name, sep, value = piece.partition(":")
        if not sep:
            return None
        try:
            parsed, end = scan(value, 0)
        except (StopIteration, ValueError):
            return None
        if end != len(value):
            return None
        if last is not None:
            # ASCII names sort by UTF-16 code units exactly as Python compares them.
            ordered = name > last if ascii_names else js_sort_key(name) > js_sort_key(last)
            if not ordered:
                return None
        if build:
            params[name] = parsed
            # The value's text is JSON already (JSON.stringify wrote it): not written again.
            members.append(_json_str(name) + ":" + value)
        last = name
    return endpoint, params, ("{" + ",".join(members) + "}") if build else None


def owned_prefixes(layout: Layout) -> tuple[bytes, ...]:
    """The literal start of every key the cache owns (the logs' whole names among them), read
    from the layout's own SCAN patterns: enough for a server-side script to tell the cache's
    keys from the rest; `Layout.kind` still says which is which."""
    prefixes = []
    for pattern in layout.owned_patterns():
        trailing_backslashes = len(pattern[:-1]) - len(pattern[:-1].rstrip("\\"))
        if pattern.endswith("*") and trailing_backslashes % 2 == 0:
            pattern = pattern[:-1]
        prefixes.append(re.sub(r"\\(.)", r"\1", pattern, flags=re.DOTALL).encode())
    return tuple(prefixes)


def entry_prefix_is_shared(layout: Layout) -> bool:
    """Whether a key that is not an entry can start with the entry prefix (a layout whose tag or
    metrics prefix nests inside it); if not, the prefix alone says a key is an entry."""
    root = layout.entry_root.encode()
    return any(p != root and p.startswith(root) for p in owned_prefixes(layout))


# --- Redis globs -----------------------------------------------------------------------------


def glob_to_regex(glob: bytes) -> re.Pattern[bytes]:
    """A compiled regex matching what Redis's stringmatchlen matches for `glob` (`*`, `?`,
    `[abc]`, `[^a-z]`, `\\x`), for keys that come from a set rather than a SCAN MATCH."""
    out = []
    i = 0
    while i < len(glob):
        c = glob[i : i + 1]
        if c == b"*":
            out.append(b".*")
        elif c == b"?":
            out.append(b".")
        elif c == b"\\" and i + 1 < len(glob):
            i += 1
            out.append(re.escape(glob[i : i + 1]))
        elif c == b"[":
            end, body = _glob_class(glob, i + 1)
            out.append(body)
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile(b"(?s:" + b"".join(out) + b")\\Z")


def _glob_class(glob: bytes, i: int) -> tuple[int, bytes]:
    """Reads a `[...]` class from `i` (just after `[`); returns where it ends and its regex.
    Like Redis, an unclosed class runs to the end of the pattern."""
    negate = glob[i : i + 1] == b"^"
    if negate:
        i += 1
    parts = []
    while i < len(glob) and glob[i : i + 1] != b"]":
        c = glob[i : i + 1]
        if c == b"\\" and i + 1 < len(glob):
            i += 1
            c = glob[i : i + 1]
        if glob[i + 1 : i + 2] == b"-" and i + 2 < len(glob) and glob[i + 2 : i + 3] != b"]":
            end = glob[i + 2 : i + 3]
            if end == b"\\" and i + 3 < len(glob):
                i += 1
                end = glob[i + 2 : i + 3]
            low, high = sorted((c, end))
            parts.append(re.escape(low) + b"-" + re.escape(high))
            i += 3
            continue
        parts.append(re.escape(c))
        i += 1
    body = b"".join(parts)
    if not body:
        # "[]" matches nothing in Redis; "[^]" anything.
        return i, b"." if negate else b"(?!)"
    return i, b"[" + (b"^" if negate else b"") + body + b"]"


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
    nodes = store.for_each_primary()
    state.nodes_total = len(nodes)
    for node, client in nodes:
        limit = None if plan.per_node_limit is None else plan.per_node_limit.get(node.name, 0)
        if limit == 0:
            state.nodes_done += 1
            continue
        reader = _NodeReader(store, client, plan, count, state)
        scanned = 0
        try:
            for page in reader.pages(pacer):
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
            reader.close()
        state.nodes_done += 1


class _NodeReader:
    """One node's pages, each next request sent ahead on one connection: by the script, or with
    nothing to read per key by plain SCAN; when scripts are refused (an ACL without EVAL, a
    managed Redis without scripting), by SCAN and a pipeline of TYPE, PTTL and MEMORY USAGE per
    page: the same figures, more slowly."""

    def __init__(self, store: Store, client: Any, plan: ScanPlan, count: int, state: ScanState):
        self.store = store
        self.client = client
        self.plan = plan
        self.count = count
        self.state = state
        self.reads = "".join(r for r in ALL_READS if r in plan.reads)
        self._conn = None
        self._sent = False

    def pages(self, pacer: Pacer | None) -> Iterator[SizedPage]:
        if self.state.method == "scan":
            yield from self._sent_ahead_pages(self._call(0, "SCAN"), pacer, "SCAN")
            return
        if self.state.method == "script":
            try:
                first = self._call(0, "EVAL")
            except CachectlError as error:
                if not _scripts_refused(error):
                    raise
                self.state.method = "pipeline"
            else:
                yield from self._sent_ahead_pages(first, pacer, "EVAL")
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

    def _call(self, cursor: bytes | int, command: str) -> list:
        with self._errors(command):
            self._conn = self.client.connection_pool.get_connection()
            return self._receive(self._request(cursor, command))

    @contextmanager
    def _errors(self, command: str) -> Iterator[None]:
        """The store's error translation, and for the script a refusal of a command it runs
        named as that command's own refusal is (Redis says only "can't run this command")."""
        try:
            with self.store.errors(command):
                yield
        except RedisError as error:
            refused = _script_refusal(self.store, error, self.reads) if command == "EVAL" else None
            if refused is None:
                raise
            raise refused from error

    def _sent_ahead_pages(
        self, reply: list, pacer: Pacer | None, command: str
    ) -> Iterator[SizedPage]:
        if pacer:
            pacer.take(self.count)
        page_of = self._scan_page if command == "SCAN" else self._script_page
        while True:
            cursor = reply[0]
            request = None
            if int(cursor) != 0:
                if pacer:
                    pacer.take(self.count)
                request = self._request(cursor, command)
                self._send(request)
            yield page_of(reply)
            if request is None:
                return
            with self._errors(command):
                reply = self._receive(request)

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

    def _send(self, request: tuple) -> None:
        try:
            self._conn.send_command(*request)
            self._sent = True
        except Exception:  # noqa: BLE001 -- _receive resends it, and reports what keeps failing
            self._conn.disconnect()
            self._sent = False

    def _receive(self, request: tuple) -> list:
        """The reply to `request` (sent ahead or not), resending it on a new connection after a
        connection error, with the store's retries and backoff."""
        conn = self._conn

        def attempt() -> list:
            if not self._sent:
                conn.send_command(*request)
                self._sent = True
            reply = conn.read_response()
            self._sent = False
            return reply

        def failed(_error: Exception) -> None:
            self._sent = False
            conn.disconnect()

        return conn.retry.call_with_retry(attempt, failed)

    def close(self) -> None:
        if self._conn is None:
            return
        if self._sent:
            # A request sent ahead is still unanswered: the connection cannot be reused as is.
            self._conn.disconnect()
        self.client.connection_pool.release(self._conn)
        self._conn = None

    # -- by pipeline -------------------------------------------------------------------------

    def _pipelined_pages(self, pacer: Pacer | None) -> Iterator[SizedPage]:
        plan = self.plan
        reads = self.reads
        prefixes = tuple(plan.prefixes)
        cursor = 0
        while True:
            if pacer:
                pacer.take(self.count)
            with self.store.errors("SCAN"):
                cursor, keys = self.client.scan(
                    cursor, match=plan.match, count=self.count, _type=plan.type
                )
            kept = [k for k in keys if k.startswith(prefixes)] if prefixes else keys
            columns: dict[str, list] = {r: [] for r in reads}
            if kept:
                with self.store.errors(_READ_COMMANDS[reads[-1]]):
                    pipe = self.client.pipeline(transaction=False)
                    for key in kept:
                        if READ_TYPE in reads:
                            pipe.type(key)
                        if READ_TTL in reads:
                            pipe.pttl(key)
                        if READ_SIZE in reads:
                            pipe.execute_command("MEMORY USAGE", key)
                    replies = pipe.execute(raise_on_error=False)
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
    import redis.exceptions as rx

    line = _SCRIPT_LINE.search(error.message)
    command = _SCRIPT_COMMANDS.get(int(line[1])) if line else None
    if command is not None:
        refused = store.translate(rx.NoPermissionError("refused inside a script"), command)
    else:
        sent = ["SCAN", *(_READ_COMMANDS[r] for r in reads)]
        refused = store.translate(
            rx.NoPermissionError(
                f"it may run EVAL but not one of the commands the scan's script runs: {', '.join(sent)}"
            )
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


# --- keys ------------------------------------------------------------------------------------

# What a listing row can show, as `--fields` names them; the key is always shown.
FIELDS = ("type", "ttl", "size", "endpoint", "params")
_JSON_NAMES = {
    "type": "type",
    "ttl": "ttl_seconds",
    "size": "size_bytes",
    "endpoint": "endpoint",
    "params": "params",
}


@dataclass(slots=True)
class KeyRow:
    """One cache entry. `shown` is the key as `show_bytes` shows it; `pttl_ms` -1 means no
    expiry; `size_bytes` is MEMORY USAGE; `params_json` the params as JSON text when the key
    already held them so (else None: encode `params`). A figure not read is None."""

    key: bytes
    shown: str
    type: str | None
    pttl_ms: int | None
    size_bytes: int | None
    endpoint: str | None
    params: dict | None
    params_json: str | None = None

    @property
    def ttl_seconds(self) -> float | None:
        return None if self.pttl_ms is None or self.pttl_ms < 0 else self.pttl_ms / 1000

    def to_dict(self, fields: tuple[str, ...] = FIELDS) -> dict:
        values = {
            "type": self.type,
            "ttl": self.ttl_seconds,
            "size": self.size_bytes,
            "endpoint": self.endpoint,
            "params": self.params,
        }
        return {"key": self.shown, **{_JSON_NAMES[f]: values[f] for f in FIELDS if f in fields}}


def parse_fields(text: str | None) -> tuple[str, ...]:
    """`--fields type,ttl`: the row fields asked for, in FIELDS order (`key` may be named; it is
    always shown)."""
    if text is None:
        return FIELDS
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    aliases = {v: k for k, v in _JSON_NAMES.items()}
    unknown = [n for n in names if n != "key" and n not in FIELDS and n not in aliases]
    if unknown:
        raise UsageError(
            f"unknown field {unknown[0]!r} in --fields; use any of: key, {', '.join(FIELDS)}"
        )
    asked = {aliases.get(n, n) for n in names}
    return tuple(f for f in FIELDS if f in asked)


@dataclass
class KeyQuery:
    """What `cachectl keys` lists. `pattern` is a SCAN MATCH glob over whole keys; `fields` the
    row fields to show (figures not shown are not read, unless a filter needs them)."""

    pattern: str | None = None
    endpoint: str | None = None
    tag: str | None = None
    depends_on: str | None = None
    type: str | None = None
    no_ttl: bool = False
    limit: int | None = None
    fields: tuple[str, ...] = FIELDS

    def check(self) -> None:
        if self.type is not None and self.type not in KEY_TYPES:
            raise UsageError(f"unknown type {self.type!r}; use one of: {', '.join(KEY_TYPES)}")
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be 1 or more")
        unknown = [f for f in self.fields if f not in FIELDS]
        if unknown:
            raise UsageError(f"unknown field {unknown[0]!r}; use any of: {', '.join(FIELDS)}")

    def reads(self) -> str:
        """The figures a SCAN listing reads per key: TYPE unless SCAN's TYPE filter already
        says it, PTTL for the ttl field or --no-ttl, MEMORY USAGE for the size field."""
        reads = ""
        if "type" in self.fields and self.type is None:
            reads += READ_TYPE
        if "ttl" in self.fields or self.no_ttl:
            reads += READ_TTL
        if "size" in self.fields:
            reads += READ_SIZE
        return reads


@dataclass
class KeyListing:
    """How a listing went, filled in as its rows stream; read it after the rows are consumed."""

    query: KeyQuery
    source: str = ""  # what was read: "scan MATCH api_cache:*" or "members of tag:x"
    rows: int = 0
    limit_reached: bool = False
    pattern_outside_entries: bool = False
    skipped_not_entries: int = 0
    state: ScanState = field(default_factory=ScanState)

    def notes(self) -> list[str]:
        """What people should know about how the listing went."""
        notes = []
        if self.limit_reached:
            notes.append(f"stopped at --limit {self.query.limit}")
        if self.skipped_not_entries:
            notes.append(f"{self.skipped_not_entries:,} keys that are not entries left out")
        if self.state.method == "pipeline":
            notes.append("scripts not allowed here: read by pipelining, which is slower")
        return notes

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "fields": ["key", *self.query.fields],
            "rows": self.rows,
            "limit_reached": self.limit_reached,
            "not_entries_left_out": self.skipped_not_entries,
            "keys_read": self.state.keys_scanned,
            "read_by": self.state.method,
            "nodes_scanned": self.state.nodes_done,
            "nodes_total": self.state.nodes_total,
        }


def list_keys(
    store: Store, layout: Layout, query: KeyQuery, pacer: Pacer | None = None
) -> tuple[KeyListing, Iterator[KeyRow]]:
    """The listing's summary (filled in as it goes) and its rows, as a generator.

    A scan that fails after it has read something raises PartialFailure (exit 6) saying how far
    it got, with the Redis error's code in its details under `cause`; one that fails before
    reading anything raises the Redis error itself."""
    query.check()
    listing = KeyListing(query)
    if query.pattern is not None:
        listing.pattern_outside_entries = not layout.pattern_within_entries(query.pattern)
    sets = _index_sets(store, layout, query)  # a missing set is an error before any row
    return listing, _rows(store, layout, query, listing, sets, pacer)


def _rows(
    store: Store,
    layout: Layout,
    query: KeyQuery,
    listing: KeyListing,
    sets: list[str],
    pacer: Pacer | None,
) -> Iterator[KeyRow]:
    parser = EntryParser(layout)
    root = layout.entry_root.encode()
    nested = entry_prefix_is_shared(layout)
    endpoint = query.endpoint
    want_params = "params" in query.fields
    want_endpoint = "endpoint" in query.fields
    known_type = query.type  # SCAN TYPE filtered by it: every key kept is of that type
    if sets:
        pages = _member_pages(store, sets, listing, sizes="size" in query.fields)
    else:
        match = query.pattern or (
            layout.endpoint_pattern(endpoint) if endpoint is not None else layout.entry_pattern()
        )
        listing.source = f"SCAN MATCH {match}"
        plan = ScanPlan(match=match, type=query.type, prefixes=(root,), reads=query.reads())
        pages = scan_sized(store, plan, listing.state, pacer)
    from_sets = query.tag is not None or query.depends_on is not None
    # A SCAN MATCH applies the pattern itself unless the keys come from somewhere else.
    pattern = (
        glob_to_regex(query.pattern.encode())
        if query.pattern is not None and (endpoint is not None or from_sets)
        else None
    )

    def wanted(key: bytes, type_: str | None, pttl: int | None) -> bool:
        if query.no_ttl and pttl != -1:
            return False
        if query.type is not None and type_ != query.type:
            return False
        if not key.startswith(root) or (nested and not layout.is_entry(key)):
            listing.skipped_not_entries += 1
            return False
        if endpoint is not None and not layout.is_entry_of(key, endpoint):
            return False
        return pattern is None or pattern.match(key) is not None

    # Without filters every key of an entry SCAN is an entry: the test per key is skipped. SCAN
    # applies --type itself, and a pattern within the entry prefix keeps only entries.
    filtered = bool(
        query.no_ttl
        or nested
        or endpoint is not None
        or pattern is not None
        or from_sets
        or listing.pattern_outside_entries
    )
    limit = query.limit
    rows = 0
    unsafe = _NEEDS_ESCAPES.search
    try:
        for page in pages:
            count = len(page.keys)
            types = page.types if page.types is not None else repeat(known_type, count)
            pttls = page.pttls if page.pttls is not None else repeat(None, count)
            sizes = page.sizes if page.sizes is not None else repeat(None, count)
            texts = _shown_as_they_are(page.keys)
            for key, type_, pttl, size, text in zip(page.keys, types, pttls, sizes, texts):
                if pttl == -2 or type_ == "none":
                    continue  # gone between the SCAN and the reading
                if filtered and not wanted(key, type_, pttl):
                    continue
                if text is not None:
                    shown = text
                else:
                    try:
                        text = key.decode()
                    except UnicodeDecodeError:
                        text = None
                    shown = text if text is not None and not unsafe(text) else show_bytes(key)
                if want_params:
                    name, params, params_json = parser.parse(key, text)
                elif want_endpoint:
                    name, params, params_json = parser.endpoint(key, text), None, None
                else:
                    name = params = params_json = None
                rows += 1
                yield KeyRow(
                    key,
                    shown,
                    type_,
                    pttl,
                    None if size is None or size < 0 else size,
                    name,
                    params,
                    params_json,
                )
                if limit is not None and rows >= limit:
                    listing.limit_reached = True
                    return
    except CachectlError as error:
        _hint_leaving_out(error, query, from_sets)
        if not rows and not listing.state.keys_scanned:
            raise  # nothing read: the error is the whole story
        raise PartialFailure(
            f"the listing is incomplete: {error.message}",
            hint=error.hint,
            details={**error.details, "cause": error.code},
        ) from error
    finally:
        listing.rows = rows
        close = getattr(pages, "close", None)
        if close:
            close()


def _hint_leaving_out(error: CachectlError, query: KeyQuery, from_sets: bool) -> None:
    """A figure the ACL refuses is read only because it is shown: the hint says how to list
    without it (members of a set are always read with TYPE and PTTL, which say they exist)."""
    if not isinstance(error, RedisPermissionError):
        return
    name = {"TYPE": "type", "PTTL": "ttl", "MEMORY USAGE": "size"}.get(error.command or "")
    if name not in query.fields or (from_sets and name != "size"):
        return
    if name == "ttl" and query.no_ttl:
        return  # --no-ttl needs the TTL too
    rest = ",".join(f for f in query.fields if f != name) or "key"
    error.hint = (
        f"{error.hint + '; ' if error.hint else ''}or leave the {name} out: --fields {rest}"
    )


_NEEDS_ESCAPES_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\\]")


def _shown_as_they_are(keys: list[bytes]) -> list[str] | repeat:
    """Each key as text when every key of the page is UTF-8 that `show_bytes` shows as it is
    (found by one decode and one search for the whole page, not one per key); else Nones, and
    each key is looked at on its own."""
    if keys:
        try:
            joined = b"\n".join(keys).decode()
        except UnicodeDecodeError:
            return repeat(None)
        if not _NEEDS_ESCAPES_BUT_NEWLINE.search(joined):
            texts = joined.split("\n")
            if len(texts) == len(keys):  # no key held a newline of its own
                return texts
    return repeat(None)


def _index_sets(store: Store, layout: Layout, query: KeyQuery) -> list[str]:
    """The tag and dependency sets a query reads, each checked to exist and be a set."""
    from cachectl.errors import NotFoundError

    sets = []
    if query.tag is not None:
        sets.append(("tag", query.tag, layout.tag(query.tag)))
    if query.depends_on is not None:
        sets.append(("dependency", query.depends_on, layout.dependency(query.depends_on)))
    for kind, name, key in sets:
        type_ = store.types([key])[0]
        if type_ == "none":
            raise NotFoundError(f"no {kind} set {show_bytes(key.encode())} ({kind} {name!r})")
        if type_ != "set":
            raise NotFoundError(
                f"{show_bytes(key.encode())} is a {type_}, not a set: it is not a {kind} set"
            )
    return [key for _, _, key in sets]


def _member_pages(
    store: Store, sets: list[str], listing: KeyListing, sizes: bool = True
) -> Iterator[SizedPage]:
    """The members of the first set, a page at a time, with their figures (TYPE and PTTL
    always: they say whether the member still exists); with a second set, only the members it
    holds too."""
    source, *others = sets
    listing.source = f"members of {source}"
    listing.state.method = "members"  # named by a set, not scanned: read by pipelining
    node = store.primaries()[0]

    def page_of(members: list[bytes]) -> SizedPage:
        for other in others:
            members = [m for m, k in zip(members, _sismember_each(store, other, members)) if k]
        types, pttls, sized = describe_keys(store, members, sizes=sizes)
        listing.state.keys_scanned += len(members)
        return SizedPage(node, len(members), members, types, pttls, sized)

    batch: list[bytes] = []
    for member in store.sscan(source):
        batch.append(member)
        if len(batch) >= store.settings.batch_size:
            yield page_of(batch)
            batch = []
    if batch:
        yield page_of(batch)


def _sismember_each(store: Store, key: str, members: list[bytes]) -> list[bool]:
    reply = store.execute("SMISMEMBER", key, *members) if members else []
    return [bool(r) for r in reply]
