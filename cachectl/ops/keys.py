"""`cachectl keys`: the cache's entries, streamed, each with its type, TTL, size, endpoint and params.

The keys are read by `cachectl.ops.scanning` (sized SCAN pages), or named by a tag or dependency
set; entry keys are read back by `cachectl.layout_parse.EntryParser`; keys are shown by
`cachectl.keytext`. Nothing here holds the whole keyspace: the rows are a generator.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING

from cachectl.errors import CachectlError, PartialFailure, RedisPermissionError, UsageError
from cachectl.keytext import _NEEDS_ESCAPES, show_bytes
from cachectl.layout import Layout
from cachectl.layout_parse import EntryParser, entry_prefix_is_shared, glob_to_regex
from cachectl.ops.scanning import (
    KEY_TYPES,
    READ_SIZE,
    READ_TTL,
    READ_TYPE,
    ScanPlan,
    ScanState,
    SizedPage,
    describe_keys,
    scan_sized,
)

if TYPE_CHECKING:
    from cachectl.store import Pacer, Store

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
        says it, PTTL for the ttl field or --without-ttl, MEMORY USAGE for the size field."""
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
        listing.source = f"SCAN MATCH {show_bytes(match)}"
        match = match.encode("utf-8", "surrogateescape")  # a typed \xff is the byte 0xff
        plan = ScanPlan(match=match, type=query.type, prefixes=(root,), reads=query.reads())
        pages = scan_sized(store, plan, listing.state, pacer)
    from_sets = query.tag is not None or query.depends_on is not None
    # A SCAN MATCH applies the pattern itself unless the keys come from somewhere else.
    pattern = (
        glob_to_regex(query.pattern.encode("utf-8", "surrogateescape"))
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
        return  # --without-ttl needs the TTL too
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
