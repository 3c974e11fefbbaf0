"""`cachectl memory`: where the cache's memory goes.

One SCAN walk of every primary (no MATCH: one walk serves every kind of key), the cache's keys
sized server-side a page per call (see `ops.scanning.scan_sized`); other applications' keys are
counted, not sized. Figures per endpoint (or key prefix), per TTL bucket, the largest entries,
the bookkeeping apart from the entries, and a few plain recommendations.

`--sample-size N` reads about N keys, spread over the primaries in proportion to their DBSIZE, and
scales counts and sums by each node's DBSIZE / keys read: SCAN visits keys in hash-table order,
which has nothing to do with their names, so the first N keys are a fair sample.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cachectl.errors import CachectlError, Interrupted, PartialFailure, RedisError, UsageError
from cachectl.keytext import show_bytes
from cachectl.layout import Layout
from cachectl.layout_parse import EntryParser, entry_prefix_is_shared, owned_prefixes
from cachectl.ops.scanning import ScanPlan, ScanState, scan_sized

if TYPE_CHECKING:
    from cachectl.store import Pacer, Store

# (name, upper bound in seconds, exclusive); `_Tally.add_page` has the bounds inline.
TTL_BUCKETS = (
    ("no_expiry", None),
    ("under_1m", 60),
    ("under_1h", 3600),
    ("under_1d", 86400),
    ("under_1w", 7 * 86400),
    ("longer", math.inf),
)
KIND_NAMES = {
    "tag": "tag sets",
    "dependency": "dependency sets",
    "entries_log": "write log",
    "access_log": "access log",
    "metrics": "hit/miss metrics",
    "timeseries": "time series",
    "pending_set": "half-finished invalidations",
    "lock": "stampede locks",
}
EXPECTED_TYPES = {
    "entry": "string",
    "tag": "set",
    "dependency": "set",
    "entries_log": "zset",
    "access_log": "zset",
    "pending_set": "set",
    "lock": "string",
}
OUTSIZED_MIN_BYTES = 64 * 1024  # below this no entry is "outsized", whatever the average
OUTSIZED_TIMES_AVERAGE = 50
DANGLING_PROBE_SETS = 20  # the largest tag/dependency sets probed for dangling members
DANGLING_PROBE_MEMBERS = 50
EXAMPLES = 5


@dataclass(slots=True)
class Group:
    """Entries of one endpoint (or key prefix)."""

    name: str
    keys: int = 0
    total_bytes: int = 0
    max_bytes: int = 0

    @property
    def avg_bytes(self) -> float:
        return self.total_bytes / self.keys if self.keys else 0.0

    def add(self, size: int) -> None:
        self.keys += 1
        self.total_bytes += size
        self.max_bytes = max(self.max_bytes, size)


@dataclass
class Bucket:
    name: str
    keys: int = 0
    total_bytes: int = 0


@dataclass
class LargeEntry:
    key: str
    size_bytes: int
    ttl_seconds: float | None
    endpoint: str | None


@dataclass
class Recommendation:
    code: str
    message: str


@dataclass
class MemoryReport:
    """Everything `cachectl memory` found. Counts and sums are scaled up when `sampled`."""

    group_by: str  # "endpoint" or "prefix:N"
    nodes: list[str] = field(default_factory=list)
    dbsize: int = 0
    keys_scanned: int = 0
    sampled: bool = False
    sample_size: int | None = None
    scale: float = 1.0  # what counts and sums of a sample were multiplied by
    complete: bool = True
    stopped: str | None = None  # why the scan stopped early
    read_by: str = "script"
    entries: Group = field(default_factory=lambda: Group("entries"))
    groups: dict[str, Group] = field(default_factory=dict)
    ttl_buckets: dict[str, Bucket] = field(
        default_factory=lambda: {name: Bucket(name) for name, _ in TTL_BUCKETS}
    )
    largest: list[LargeEntry] = field(default_factory=list)
    overhead: dict[str, Group] = field(default_factory=dict)
    no_ttl_examples: list[str] = field(default_factory=list)
    unexpected_types: dict[str, int] = field(default_factory=dict)  # "entry:hash" -> count
    unexpected_examples: list[str] = field(default_factory=list)
    other_keys: int = 0
    used_memory_bytes: int | None = None
    maxmemory_bytes: int | None = None
    maxmemory_policy: str | None = None
    maxmemory_policy_by_node: dict[str, str] = field(default_factory=dict)
    dangling_probe: list[dict] = field(default_factory=list)
    recommendations: list[Recommendation] = field(default_factory=list)

    @property
    def cache_bytes(self) -> int:
        return self.entries.total_bytes + sum(g.total_bytes for g in self.overhead.values())

    def share(self, total_bytes: int) -> float:
        """A part of the cache's memory (entries and bookkeeping) as a fraction of it."""
        return total_bytes / self.cache_bytes if self.cache_bytes else 0.0

    def to_dict(self) -> dict:
        def group(g: Group) -> dict:
            return {
                "name": g.name,
                "keys": g.keys,
                "total_bytes": g.total_bytes,
                "avg_bytes": round(g.avg_bytes, 1),
                "max_bytes": g.max_bytes,
                "share_of_cache": round(self.share(g.total_bytes), 4),
            }

        return {
            "group_by": self.group_by,
            "nodes": self.nodes,
            "dbsize": self.dbsize,
            "keys_scanned": self.keys_scanned,
            "sampled": self.sampled,
            "sample_size": self.sample_size,
            "scale": round(self.scale, 6),
            "complete": self.complete,
            "stopped": self.stopped,
            "read_by": self.read_by,
            "cache_bytes": self.cache_bytes,
            "entries": group(self.entries),
            "groups": [group(g) for g in sorted_groups(self.groups)],
            "ttl_buckets": [
                {"name": b.name, "keys": b.keys, "total_bytes": b.total_bytes}
                for b in self.ttl_buckets.values()
            ],
            "largest": [vars(e) for e in self.largest],
            "overhead": [group(g) for g in sorted_groups(self.overhead)],
            "entries_without_ttl": {
                "keys": self.ttl_buckets["no_expiry"].keys,
                "total_bytes": self.ttl_buckets["no_expiry"].total_bytes,
                "examples": self.no_ttl_examples,
            },
            "unexpected_types": [
                {"kind": kind, "type": type_, "keys": n}
                for (kind, _, type_), n in (
                    (k.partition(":"), v) for k, v in sorted(self.unexpected_types.items())
                )
            ],
            "unexpected_type_examples": self.unexpected_examples,
            "other_keys": self.other_keys,
            "server": {
                "used_memory_bytes": self.used_memory_bytes,
                "maxmemory_bytes": self.maxmemory_bytes,
                "maxmemory_policy": self.maxmemory_policy,
                "maxmemory_policy_by_node": self.maxmemory_policy_by_node,
            },
            "dangling_probe": self.dangling_probe,
            "recommendations": [vars(r) for r in self.recommendations],
        }


def sorted_groups(groups: dict[str, Group]) -> list[Group]:
    return sorted(groups.values(), key=lambda g: (-g.total_bytes, g.name))


ProgressFn = Callable[[int, int], None]  # (keys scanned, keys to scan)


def analyze_memory(
    store: Store,
    layout: Layout,
    *,
    depth: int | None = None,
    top: int = 10,
    sample: int | None = None,
    pacer: Pacer | None = None,
    on_progress: ProgressFn | None = None,
) -> MemoryReport:
    """Walks the keyspace once and reports. Ctrl-C or a scan that cannot go on still returns
    the report of what was read (`complete` False, `stopped` saying why): the caller shows it,
    then exits non-zero."""
    if depth is not None and depth < 1:
        raise UsageError("--depth must be 1 or more")
    if sample is not None and sample < 1:
        raise UsageError("--sample-size must be 1 or more")
    if top < 0:
        raise UsageError("--top must be 0 or more")
    report = MemoryReport(group_by="endpoint" if depth is None else f"prefix:{depth}")
    per_node = _node_sizes(store)
    report.nodes = list(per_node)
    report.dbsize = sum(per_node.values())
    plan = ScanPlan(prefixes=owned_prefixes(layout))
    if sample is not None and sample < report.dbsize:
        report.sampled = True
        report.sample_size = sample
        plan.per_node_limit = {
            node: max(1, round(sample * size / report.dbsize)) if size else 0
            for node, size in per_node.items()
        }
        # Pages no bigger than a node's share: a small sample is not overshot by a whole page.
        plan.count = max(10, min(store.settings.scan_count, max(plan.per_node_limit.values())))
    to_scan = min(sample, report.dbsize) if report.sampled else report.dbsize
    state = ScanState()
    tally = _Tally(report, layout, depth, top)
    try:
        if on_progress:
            on_progress(0, to_scan)  # the total is known before the first page: a bar, not a count
        for page in scan_sized(store, plan, state, pacer):
            tally.add_page(page)
            if on_progress:
                on_progress(state.keys_scanned, max(to_scan, state.keys_scanned))
    except KeyboardInterrupt:
        report.complete = False
        report.stopped = "interrupted (Ctrl-C)"
    except RedisError as err:
        if not state.keys_scanned:
            raise  # nothing read: the error is the whole story
        report.complete = False
        report.stopped = err.message
    report.keys_scanned = state.keys_scanned
    report.read_by = state.method
    tally.finish()
    if report.sampled and report.complete and report.keys_scanned:
        _scale(report, report.dbsize / report.keys_scanned)
    try:
        _server_figures(store, report)
        if report.complete:
            report.dangling_probe = _probe_dangling(store, tally.largest_sets)
    except KeyboardInterrupt:
        # After the scan: its figures stand; the probe of dangling members is what is missing.
        report.complete = False
        report.stopped = report.stopped or "interrupted (Ctrl-C)"
    report.recommendations = recommend(report)
    return report


def raise_if_incomplete(report: MemoryReport) -> None:
    """After the report is shown: the exit status of a scan cut short."""
    if report.complete:
        return
    if report.stopped and report.stopped.startswith("interrupted"):
        raise Interrupted("interrupted: the figures above cover only the keys read so far")
    raise PartialFailure(
        f"the scan stopped early: {report.stopped}; the figures above cover "
        f"{report.keys_scanned:,} of {report.dbsize:,} keys",
        result=report,
    )


def _node_sizes(store: Store) -> dict[str, int]:
    return {node.name: store.execute_on(node, "DBSIZE") for node in store.primaries()}


class _Tally:
    """Adds up pages as they come; keeps nothing per key but the top N and a few examples."""

    def __init__(self, report: MemoryReport, layout: Layout, depth: int | None, top: int):
        self.report = report
        self.layout = layout
        self.depth = depth
        self.top = top
        self.parser = EntryParser(layout)
        self.root = layout.entry_root.encode()
        # Unless another prefix nests inside the entry prefix, the prefix says "entry".
        self.plain_entries = not entry_prefix_is_shared(layout)
        self.heap: list[tuple[int, bytes, int]] = []  # (size, key, pttl), smallest first
        self.largest_sets: list[tuple[int, bytes]] = []  # (size, key) of tag/dependency sets
        self.bucket_keys = [0] * len(TTL_BUCKETS)
        self.bucket_bytes = [0] * len(TTL_BUCKETS)

    def add_page(self, page) -> None:
        # One tight loop: a million entries pass through here.
        report = self.report
        report.other_keys += page.scanned - len(page.keys)
        kind_of = self.layout.kind
        root = self.root
        plain = self.plain_entries
        groups = report.groups
        bucket_keys = self.bucket_keys
        bucket_bytes = self.bucket_bytes
        endpoint_of = self._group_name
        heap = self.heap
        top = self.top
        for key, type_, pttl, size in zip(page.keys, page.types, page.pttls, page.sizes):
            if pttl == -2 or size < 0:
                continue  # gone between the SCAN and the sizing
            kind = "entry" if plain and key.startswith(root) else kind_of(key)
            if kind != "entry":
                self._add_other(key, kind, type_, size)
                continue
            if type_ != "string":
                self._unexpected(key, kind, type_)
            name = endpoint_of(key)
            group = groups.get(name)
            if group is None:
                group = groups[name] = Group(name)
            group.keys += 1
            group.total_bytes += size
            group.max_bytes = max(group.max_bytes, size)
            if pttl < 0:
                bucket = 0
                if len(report.no_ttl_examples) < EXAMPLES:
                    report.no_ttl_examples.append(show_bytes(key))
            elif pttl < 60_000:
                bucket = 1
            elif pttl < 3_600_000:
                bucket = 2
            elif pttl < 86_400_000:
                bucket = 3
            elif pttl < 604_800_000:
                bucket = 4
            else:
                bucket = 5
            bucket_keys[bucket] += 1
            bucket_bytes[bucket] += size
            if top and (len(heap) < top or size > heap[0][0]):
                item = (size, key, pttl)
                if len(heap) < top:
                    heapq.heappush(heap, item)
                else:
                    heapq.heapreplace(heap, item)

    def _add_other(self, key: bytes, kind: str | None, type_: str, size: int) -> None:
        report = self.report
        if kind is None:
            report.other_keys += 1
            return
        expected = EXPECTED_TYPES.get(kind)
        if expected is not None and type_ != expected:
            self._unexpected(key, kind, type_)
        label = KIND_NAMES.get(kind, kind)
        group = report.overhead.get(label)
        if group is None:
            group = report.overhead[label] = Group(label)
        group.add(size)
        if kind in ("tag", "dependency") and type_ == "set":
            self._keep_largest_set(size, key)

    def _unexpected(self, key: bytes, kind: str, type_: str) -> None:
        report = self.report
        name = f"{kind}:{type_}"
        report.unexpected_types[name] = report.unexpected_types.get(name, 0) + 1
        if len(report.unexpected_examples) < EXAMPLES:
            report.unexpected_examples.append(f"{show_bytes(key)} ({type_})")

    def _group_name(self, key: bytes) -> str:
        if self.depth is not None:
            return show_bytes(b":".join(key.split(b":", self.depth)[: self.depth]))
        try:
            text = key.decode()
        except UnicodeDecodeError:
            text = None
        endpoint = self.parser.endpoint(key, text)
        return "(unreadable)" if endpoint is None else endpoint

    def _keep_largest_set(self, size: int, key: bytes) -> None:
        item = (size, key)
        if len(self.largest_sets) < DANGLING_PROBE_SETS:
            heapq.heappush(self.largest_sets, item)
        elif item > self.largest_sets[0]:
            heapq.heapreplace(self.largest_sets, item)

    def finish(self) -> None:
        report = self.report
        for (name, _), keys, total in zip(TTL_BUCKETS, self.bucket_keys, self.bucket_bytes):
            report.ttl_buckets[name].keys += keys
            report.ttl_buckets[name].total_bytes += total
        entries = report.entries
        for group in report.groups.values():
            entries.keys += group.keys
            entries.total_bytes += group.total_bytes
            entries.max_bytes = max(entries.max_bytes, group.max_bytes)
        for size, key, pttl in sorted(self.heap, reverse=True):
            try:
                text = key.decode()
            except UnicodeDecodeError:
                text = None
            report.largest.append(
                LargeEntry(
                    key=show_bytes(key),
                    size_bytes=size,
                    ttl_seconds=None if pttl < 0 else pttl / 1000,
                    endpoint=self.parser.endpoint(key, text),
                )
            )


def _scale(report: MemoryReport, factor: float) -> None:
    """Scales counts and sums of a sample to the whole keyspace. Each node gave keys in
    proportion to its DBSIZE, so one factor fits them all. The largest entries and maxima are
    the sample's own: they are not scaled."""
    report.scale = factor

    def scaled(g) -> None:
        g.keys = round(g.keys * factor)
        g.total_bytes = round(g.total_bytes * factor)

    for group in (
        report.entries,
        *report.groups.values(),
        *report.overhead.values(),
        *report.ttl_buckets.values(),
    ):
        scaled(group)
    report.other_keys = round(report.other_keys * factor)
    report.unexpected_types = {k: round(v * factor) for k, v in report.unexpected_types.items()}


def _server_figures(store: Store, report: MemoryReport) -> None:
    try:
        infos = store.server_info("memory")
    except CachectlError:
        return  # an ACL user without INFO: the figures of the cache still stand
    firsts = list(infos.values())
    if not firsts:
        return
    report.used_memory_bytes = sum(int(i.get("used_memory", 0)) for i in firsts)
    maxmemory = [int(i.get("maxmemory", 0)) for i in firsts]
    report.maxmemory_bytes = sum(maxmemory) if all(maxmemory) else 0
    policies = {}
    for node, info in infos.items():
        policy = info.get("maxmemory_policy")
        if policy is not None:
            policies[node] = policy.decode() if isinstance(policy, bytes) else str(policy)
    report.maxmemory_policy_by_node = policies
    if policies:
        # The primaries of a cluster should agree; when they do not, the worst one is judged.
        worst = sorted(set(policies.values()), key=_policy_rank)
        report.maxmemory_policy = worst[0]


def _policy_rank(policy: str) -> int:
    if policy == "noeviction":
        return 0
    return 1 if policy.startswith("volatile-") else 2


def _probe_dangling(store: Store, largest_sets: list[tuple[int, bytes]]) -> list[dict]:
    """For the largest tag and dependency sets, the share of a random handful of members whose
    entry no longer exists: cheap, and enough to say a set is mostly dangling."""
    probes = []
    for _, key in sorted(largest_sets, reverse=True):
        try:
            members = store.execute("SRANDMEMBER", key, DANGLING_PROBE_MEMBERS)
            if not members:
                continue
            existing = store.count_existing(members)
        except CachectlError:
            continue
        probes.append(
            {
                "key": show_bytes(key),
                "members_probed": len(members),
                "dangling": len(members) - existing,
                "dangling_share": round((len(members) - existing) / len(members), 3),
            }
        )
    return probes


def _size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def recommend(report: MemoryReport) -> list[Recommendation]:
    out: list[Recommendation] = []
    entries = report.entries
    no_ttl = report.ttl_buckets["no_expiry"]
    about = "about " if report.sampled else ""  # a sample's counts are estimates
    if no_ttl.keys:
        out.append(
            Recommendation(
                "entries_without_ttl",
                f"{about}{no_ttl.keys:,} {'entry' if no_ttl.keys == 1 else 'entries'} "
                f"({_size_text(no_ttl.total_bytes)}, "
                f"{report.share(no_ttl.total_bytes):.0%} of the cache) "
                f"{'has' if no_ttl.keys == 1 else 'have'} no TTL: "
                f"{'it stays' if no_ttl.keys == 1 else 'they stay'} until "
                "evicted or invalidated; give them a TTL where they are written",
            )
        )
    if entries.keys and report.largest:
        threshold = max(OUTSIZED_MIN_BYTES, OUTSIZED_TIMES_AVERAGE * entries.avg_bytes)
        big = [e for e in report.largest if e.size_bytes >= threshold]
        if big:
            out.append(
                Recommendation(
                    "outsized_entries",
                    f"{len(big)} of the largest entries take {OUTSIZED_TIMES_AVERAGE}x the average "
                    f"entry ({_size_text(entries.avg_bytes)}) or more, the largest "
                    f"{_size_text(big[0].size_bytes)} ({big[0].key}): page or trim those responses",
                )
            )
    mostly_dangling = [p for p in report.dangling_probe if p["dangling_share"] >= 0.5]
    if mostly_dangling:
        names = ", ".join(p["key"] for p in mostly_dangling[:3])
        out.append(
            Recommendation(
                "tag_sets_dangling",
                f"{len(mostly_dangling)} of the largest tag/dependency sets are mostly dangling "
                f"(members whose entry is gone), e.g. {names}: run `cachectl prune`",
            )
        )
    overhead = sum(g.total_bytes for g in report.overhead.values())
    if entries.total_bytes and overhead > entries.total_bytes * 0.5:
        out.append(
            Recommendation(
                "bookkeeping_heavy",
                f"the bookkeeping (tag and dependency sets, logs, metrics) takes "
                f"{_size_text(overhead)}, {overhead / entries.total_bytes:.0%} of what the entries "
                "take: prune dangling members and trim the logs with `cachectl prune`",
            )
        )
    out += _policy_recommendations(report, no_ttl)
    return out


def _policy_recommendations(report: MemoryReport, no_ttl: Bucket) -> list[Recommendation]:
    policy = report.maxmemory_policy
    if policy is None:
        return []
    out = []
    if len(set(report.maxmemory_policy_by_node.values())) > 1:
        named = ", ".join(f"{n} {p}" for n, p in sorted(report.maxmemory_policy_by_node.items()))
        out.append(
            Recommendation(
                "policy_differs_between_primaries",
                f"the primaries do not agree on maxmemory-policy ({named}): give them all the same",
            )
        )
    return out + _policy_recommendation(report, policy, no_ttl)


def _policy_recommendation(
    report: MemoryReport, policy: str, no_ttl: Bucket
) -> list[Recommendation]:
    if policy == "noeviction":
        return [
            Recommendation(
                "policy_noeviction",
                "maxmemory-policy is noeviction: once memory is full every cache write fails; "
                "a cache wants allkeys-lru or allkeys-lfu",
            )
        ]
    if not report.maxmemory_bytes:
        return [
            Recommendation(
                "no_maxmemory",
                f"maxmemory is not set: {policy} never applies and the cache grows until the "
                "machine runs out of memory; set maxmemory",
            )
        ]
    if policy.startswith("volatile-") and no_ttl.keys:
        return [
            Recommendation(
                "policy_volatile_with_no_ttl",
                f"maxmemory-policy is {policy}: only keys with a TTL can be evicted, and "
                f"{no_ttl.keys:,} entries have none (nor do tag sets and logs); "
                "allkeys-lru or allkeys-lfu fits a cache",
            )
        ]
    return []
