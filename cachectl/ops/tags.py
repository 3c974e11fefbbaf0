"""`cachectl tags`: the tag (or dependency) sets, how many members each has, and how many of those
still exist; `cachectl tags show TAG`: one set's members, each with whether it still exists.

Read only: removing dangling members is `cachectl prune`'s job. In a cluster a set and its
members live on different nodes, so members are counted with EXISTS grouped by slot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import CachectlError, NotFoundError, PartialFailure, UsageError
from cachectl.keytext import show_bytes
from cachectl.layout import Layout, escape_glob
from cachectl.ops.prune import raise_refusals

if TYPE_CHECKING:
    from cachectl.store import Pacer, Store

# A set this small is read with one SMEMBERS; a bigger one a SSCAN page at a time.
SMEMBERS_MAX = 5000


@dataclass
class TagSetRow:
    """One tag or dependency set. With a sample, `existing` and `dangling` are estimates from
    `checked` random members; exact otherwise (`checked` == `members`)."""

    name: str  # the tag or resource id, as show_bytes shows it
    key: str
    kind: str  # "tag" | "dependency"
    type: str
    members: int = 0
    existing: int | None = None
    dangling: int | None = None
    checked: int = 0
    sampled: bool = False
    ttl_seconds: float | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "key": self.key,
            "kind": self.kind,
            "type": self.type,
            "members": self.members,
            "existing": self.existing,
            "dangling": self.dangling,
            "members_checked": self.checked,
            "sampled": self.sampled,
            "ttl_seconds": self.ttl_seconds,
        }


@dataclass
class TagListing:
    kind: str
    pattern: str
    sample: int | None
    rows: list[TagSetRow] = field(default_factory=list)
    complete: bool = True
    stopped: str | None = None

    @property
    def totals(self) -> dict:
        sets = [r for r in self.rows if r.type == "set"]
        return {
            "sets": len(sets),
            "members": sum(r.members for r in sets),
            "existing": sum(r.existing or 0 for r in sets),
            "dangling": sum(r.dangling or 0 for r in sets),
            "not_sets": len(self.rows) - len(sets),
        }

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "pattern": self.pattern,
            "sample": self.sample,
            "complete": self.complete,
            "stopped": self.stopped,
            "totals": self.totals,
            "sets": [r.to_dict() for r in self.rows],
        }


def list_tag_sets(
    store: Store,
    layout: Layout,
    pattern: str = "*",
    *,
    dependencies: bool = False,
    sample: int | None = None,
    pacer: Pacer | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> TagListing:
    """Every tag set whose name matches the glob `pattern` (dependency sets with
    `dependencies`), sorted by name. Ctrl-C or a scan that cannot go on returns what was read,
    with `complete` False."""
    if sample is not None and sample < 1:
        raise UsageError("--sample-size must be 1 or more")
    kind = "dependency" if dependencies else "tag"
    match = layout.dependency_pattern(pattern) if dependencies else layout.tag_pattern(pattern)
    prefix = (layout.dependency("") if dependencies else layout.tag("")).encode()
    listing = TagListing(kind, pattern, sample)
    try:
        for _, keys in store.scan_nodes(match=match, pacer=pacer):
            # A half-finished invalidation's pending set shares the tag prefix: not a tag.
            keys = [key for key in keys if layout.kind(key) == kind]
            if keys:
                listing.rows += _describe_sets(store, keys, kind, prefix, sample)
                if on_progress:
                    on_progress(len(listing.rows))
    except KeyboardInterrupt:
        listing.complete = False
        listing.stopped = "interrupted (Ctrl-C)"
    except CachectlError as err:
        if not listing.rows:
            raise  # nothing read: the error is the whole story
        listing.complete = False
        listing.stopped = err.message
    listing.rows.sort(key=lambda r: r.name)
    return listing


def set_names_starting_with(
    store: Store,
    layout: Layout,
    start: str,
    *,
    dependencies: bool = False,
    count: int | None = None,
) -> Iterator[str]:
    """The names of the tag sets (dependency sets with `dependencies`) that start with `start`,
    as SCAN finds them (a name may come twice), over every primary; a name that is not UTF-8 is
    left out. SCAN only: what shell completion offers (cachectl/cli/completion.py)."""
    kind = "dependency" if dependencies else "tag"
    glob = escape_glob(start) + "*"
    match = layout.dependency_pattern(glob) if dependencies else layout.tag_pattern(glob)
    prefix = (layout.dependency("") if dependencies else layout.tag("")).encode()
    for _, keys in store.scan_nodes(match=match, count=count):
        for key in keys:
            # A half-finished invalidation's pending set shares the prefix: not a name.
            if layout.kind(key) != kind:
                continue
            try:
                yield key[len(prefix) :].decode()
            except UnicodeDecodeError:
                continue


def _describe_sets(
    store: Store, keys: list[bytes], kind: str, prefix: bytes, sample: int | None
) -> list[TagSetRow]:
    keys = list(dict.fromkeys(keys))  # SCAN may return a key twice
    commands = []
    for key in keys:
        commands += [("TYPE", key), ("PTTL", key), ("SCARD", key)]
    replies = store.send_many(commands)
    rows = []
    for i, key in enumerate(keys):
        type_, pttl = raise_refusals(replies[3 * i : 3 * i + 2])
        cardinality = replies[3 * i + 2]
        type_ = type_.decode() if isinstance(type_, bytes) else str(type_)
        if type_ == "none":
            continue  # gone since the SCAN
        row = TagSetRow(
            name=show_bytes(key[len(prefix) :]),
            key=show_bytes(key),
            kind=kind,
            type=type_,
            ttl_seconds=None if pttl < 0 else pttl / 1000,
        )
        if type_ == "set":
            # SCARD of a key that is not a set is WRONGTYPE, no surprise; of a set, a refusal.
            [row.members] = raise_refusals([cardinality])
            _count_existing(store, key, row, sample)
        rows.append(row)
    return rows


def _count_existing(store: Store, key: bytes, row: TagSetRow, sample: int | None) -> None:
    if not row.members:
        row.existing = row.dangling = 0
        return
    if sample is not None and sample < row.members:
        # SRANDMEMBER with a positive count: distinct members, at random.
        members = store.execute("SRANDMEMBER", key, sample)
        alive = store.count_existing(members)
        row.checked, row.sampled = len(members), True
        row.existing = round(row.members * alive / len(members)) if members else 0
    elif row.members <= SMEMBERS_MAX:
        members = store.execute("SMEMBERS", key)
        row.checked = len(members)
        row.existing = store.count_existing(members)
    else:
        row.existing = row.checked = 0
        page: list[bytes] = []
        for member in store.sscan(key):
            page.append(member)
            if len(page) >= store.settings.batch_size:
                row.existing += store.count_existing(page)
                row.checked += len(page)
                page = []
        row.existing += store.count_existing(page)
        row.checked += len(page)
        # SSCAN may repeat a member while the set is rehashed: never count above the set.
        row.existing = min(row.existing, row.members)
    row.dangling = row.members - row.existing


@dataclass(slots=True)
class MemberRow:
    key: str
    exists: bool
    ttl_seconds: float | None  # None: no expiry (or gone)

    def to_dict(self) -> dict:
        return {"key": self.key, "exists": self.exists, "ttl_seconds": self.ttl_seconds}


@dataclass
class TagSet:
    """The set `tags show` lists; `shown`/`existing` count the members as they stream."""

    name: str
    key: str
    kind: str
    members: int
    ttl_seconds: float | None
    shown: int = 0
    existing: int = 0

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "key": self.key,
            "kind": self.kind,
            "members": self.members,
            "ttl_seconds": self.ttl_seconds,
            "members_listed": self.shown,
            "existing": self.existing,
            "dangling": self.shown - self.existing,
        }


def show_tag_set(
    store: Store, layout: Layout, name: str, *, dependency: bool = False
) -> tuple[TagSet, Iterator[MemberRow]]:
    """The set of tag `name` (or of resource `name`) and its members, streamed a SSCAN page at a
    time with one pipelined PTTL each (which says both whether the entry exists and its TTL).
    Redis failing once members were listed raises PartialFailure (exit 6)."""
    kind = "dependency" if dependency else "tag"
    key = layout.dependency(name) if dependency else layout.tag(name)
    replies = store.send_many([("TYPE", key), ("PTTL", key), ("SCARD", key)])
    # A refused TYPE or PTTL ends the command with its refusal (not read as a type or a TTL).
    type_, pttl = raise_refusals(replies[:2])
    type_ = type_.decode() if isinstance(type_, bytes) else str(type_)
    if type_ == "none":
        raise NotFoundError(
            f"no {kind} set {show_bytes(key.encode())}",
            hint=f"list them with: cachectl tags{' --dependencies' if dependency else ''}",
        )
    if type_ != "set":
        raise NotFoundError(
            f"{show_bytes(key.encode())} is a {type_}, not a set: it is not a {kind} set"
        )
    [cardinality] = raise_refusals(replies[2:])  # a set: an error here is a refusal
    info = TagSet(
        name, show_bytes(key.encode()), kind, cardinality, None if pttl < 0 else pttl / 1000
    )
    return info, _members(store, key, info)


def _members(store: Store, key: str, info: TagSet) -> Iterator[MemberRow]:
    page: list[bytes] = []

    def rows(members: list[bytes]) -> list[MemberRow]:
        out = []
        for member, pttl in zip(members, store.ttls(members, ms=True)):
            exists = pttl != -2
            info.existing += exists
            out.append(MemberRow(show_bytes(member), exists, pttl / 1000 if pttl >= 0 else None))
        info.shown += len(members)
        return out

    try:
        for member in store.sscan(key):
            page.append(member)
            if len(page) >= store.settings.batch_size:
                yield from rows(page)
                page = []
        if page:
            yield from rows(page)
    except CachectlError as error:
        if not info.shown:
            raise  # nothing listed: the error is the whole story
        # As `keys`: the members listed stand, the exit status says the list is not whole.
        raise PartialFailure(
            f"the listing is incomplete after {info.shown:,} of {info.members:,} members: "
            f"{error.message}",
            hint=error.hint,
            details={**error.details, "cause": error.code},
        ) from error
