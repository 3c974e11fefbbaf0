"""Time series in Redis, in the layout of docs/keyspace.md, so that other tools can read them.

Keys (all named by `Layout`):
- `metric:{name}`, a sorted set: score = epoch ms, member = JSON
  `{"value":v,"timestamp":t,"tags":"<JSON text of a tag object>"}` written as JavaScript's
  JSON.stringify writes it. Raw points, newest `compact_after` of them always here.
- `meta:{name}`, a hash: `lastUpdate` (epoch ms as text), `updatedAt` (ISO time). cachectl also
  keeps its compacted chunks here, as fields `chunk:{window_start_ms}` (see below): a tool that
  reads `lastUpdate` and `updatedAt` never meets them, and no key appears that a tool listing
  `metric:*` would take for a series.
- `agg:{name}:{resolution}:{bucket_start_ms}`, a hash per bucket of 1m, 5m, 1h and 1d: `data`
  (JSON `{"count","sum","min","max","first","last"}`), `timestamp` (the bucket start), and
  `firstTimestamp`/`lastTimestamp` (epoch ms of the points `first` and `last` came from, so that
  late or concurrent writers still get `first` and `last` right). Updated by one Lua script per
  bucket: each bucket is one key, so the script is atomic and cluster-safe under any number of
  concurrent writers. Each bucket expires (PEXPIREAT) when its resolution's retention has
  passed; `prune` applies a retention changed since, and removes aged buckets that other
  writers left without a TTL (docs/keyspace.md does not promise one).

Compacted chunks: the raw points of one hour window, older than `compact_after`, as the field
`chunk:{window_start_ms}` of `meta:{name}`, in the format cachectl/timeseries_codec.py describes.
Reads merge chunks and raw points transparently and drop duplicates (a compaction that died
between writing its chunk and removing the raw points leaves both).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cachectl.errors import UsageError
from cachectl.layout import AGG_RESOLUTIONS, escape_glob, js_stringify
from cachectl.timeseries_codec import (
    CHUNK_FIELD,
    CHUNK_WINDOW_MS,
    Point,
    chunk_header,
    decode_chunk,
    decode_member,
    encode_chunk,
    encode_member,
)
from cachectl.timeseries_rollup import roll_up

if TYPE_CHECKING:
    from cachectl.layout import Layout
    from cachectl.store import Store

RESOLUTION_MS = {"1m": 60_000, "5m": 300_000, "1h": 3_600_000, "1d": 86_400_000}
assert tuple(RESOLUTION_MS) == AGG_RESOLUTIONS
DAY = 86_400
DEFAULT_RETENTION_SECONDS: dict[str, float | None] = {
    "raw": DAY, "1m": 7 * DAY, "5m": 30 * DAY, "1h": 90 * DAY, "1d": 365 * DAY,
}  # fmt: skip
DEFAULT_COMPACT_AFTER_SECONDS = 3600.0
MAX_BUCKETS = 20_000
BATCH = 500
# `history list` measures the MEMORY USAGE of at most this many buckets of a series (spread over
# them all) and scales up: at the default retention a series has about 21,000 buckets.
AGG_MEMORY_SAMPLE = 1000

# KEYS[1] = the bucket's key; ARGV = value, timestamp ms, bucket start ms, expire-at ms (0: never).
# Returns 0 for a new bucket, 1 for one updated, 2 for one whose data could not be read and
# was started anew. Numbers are written in their shortest round-trip form, as JSON.stringify.
AGGREGATE_SCRIPT = r"""
local v = tonumber(ARGV[1])
local t = tonumber(ARGV[2])
local start = tonumber(ARGV[3])
local r = redis.call('HMGET', KEYS[1], 'data', 'firstTimestamp', 'lastTimestamp')
local state = 0
local count, sum, mn, mx, first, last, ft, lt
if r[1] then
  state = 2
  local ok, d = pcall(cjson.decode, r[1])
  if ok and type(d) == 'table' and tonumber(d.count) and tonumber(d.sum)
      and tonumber(d.min) and tonumber(d.max) then
    state = 1
    count, sum = tonumber(d.count), tonumber(d.sum)
    mn, mx = tonumber(d.min), tonumber(d.max)
    first, last = tonumber(d.first) or v, tonumber(d.last) or v
    ft, lt = tonumber(r[2]) or start, tonumber(r[3]) or start
  end
end
if state ~= 1 then
  count, sum, mn, mx, first, last, ft, lt = 1, v, v, v, v, v, t, t
else
  count = count + 1
  sum = sum + v
  if v < mn then mn = v end
  if v > mx then mx = v end
  if t < ft then first, ft = v, t end
  if t >= lt then last, lt = v, t end
end
local function num(x)
  if x ~= x or x == math.huge or x == -math.huge then return 'null' end
  if x == math.floor(x) and math.abs(x) < 1e15 then return string.format('%d', x) end
  local s
  for p = 15, 17 do
    s = string.format('%.' .. p .. 'g', x)
    if tonumber(s) == x then break end
  end
  return (string.gsub(s, 'e([%+%-])0*(%d)', 'e%1%2'))
end
local data = '{"count":' .. num(count) .. ',"sum":' .. num(sum) .. ',"min":' .. num(mn)
  .. ',"max":' .. num(mx) .. ',"first":' .. num(first) .. ',"last":' .. num(last) .. '}'
redis.call('HSET', KEYS[1], 'data', data, 'timestamp', ARGV[3],
  'firstTimestamp', num(ft), 'lastTimestamp', num(lt))
if tonumber(ARGV[4]) > 0 then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
return state
"""


def resolution_ms(resolution: str) -> int:
    try:
        return RESOLUTION_MS[resolution]
    except KeyError:
        raise UsageError(
            f"unknown resolution {resolution!r}; use raw or one of: {', '.join(RESOLUTION_MS)}"
        ) from None


def parse_retention(
    items: Iterable[str], parse_duration: Callable[[str], float]
) -> dict[str, float | None]:
    """`raw=24h`, `1m=7d`, `1d=forever`... over the defaults."""
    retention = dict(DEFAULT_RETENTION_SECONDS)
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in retention:
            raise UsageError(
                f"--retention {item!r}: write RESOLUTION=DURATION with a resolution among "
                f"{', '.join(retention)} (for example 1m=14d)"
            )
        if value.strip().lower() in ("forever", "none", "off"):
            retention[name] = None
            continue
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise UsageError(f"--retention {item!r}: {exc}") from None
        if seconds <= 0:
            raise UsageError(f"--retention {item!r}: the duration must be above 0")
        retention[name] = seconds
    return retention


def point_writes(
    layout: Layout, batch: Sequence[tuple[str, Point]], retention: dict[str, float | None]
) -> tuple[list[tuple], list[tuple]]:
    """What storing points takes, for cachectl's writer and the library's alike: the plain
    commands (ZADD of each point, HSET of each series' meta hash), and the aggregate script's
    calls, each (bucket key, value, timestamp ms, bucket start ms, expire-at ms or 0)."""
    plain: list[tuple] = []
    agg_calls: list[tuple] = []
    last_by_name: dict[str, int] = {}
    for name, point in batch:
        plain.append(("ZADD", layout.metric(name), point.timestamp_ms, encode_member(point)))
        last_by_name[name] = max(point.timestamp_ms, last_by_name.get(name, point.timestamp_ms))
        for resolution, width in RESOLUTION_MS.items():
            bucket = point.timestamp_ms - point.timestamp_ms % width
            keep = retention.get(resolution)
            expire_at = 0 if keep is None else bucket + width + int(keep * 1000)
            agg_calls.append(
                (
                    layout.agg(name, resolution, bucket),
                    point.value,
                    point.timestamp_ms,
                    bucket,
                    expire_at,
                )
            )
    for name, last in last_by_name.items():
        plain.append(("HSET", layout.meta(name), "lastUpdate", str(last), "updatedAt", _iso(last)))
    return plain, agg_calls


# -- results -----------------------------------------------------------------------------------


@dataclass
class Aggregate:
    bucket_start_ms: int
    count: int
    sum: float
    min: float
    max: float
    first: float
    last: float

    @property
    def avg(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def to_dict(self) -> dict:
        return {**asdict(self), "avg": self.avg if self.count else None}


@dataclass
class SeriesInfo:
    name: str
    raw_points: int = 0
    compacted_points: int = 0
    chunks: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    last_update_ms: int | None = None
    raw_memory_bytes: int = 0
    meta_memory_bytes: int = 0
    aggregate_buckets: int = 0
    aggregate_memory_bytes: int = 0
    aggregate_memory_estimated: bool = False  # from a sample of the buckets, not every one

    @property
    def points(self) -> int:
        return self.raw_points + self.compacted_points

    @property
    def memory_bytes(self) -> int:
        return self.raw_memory_bytes + self.meta_memory_bytes + self.aggregate_memory_bytes

    def to_dict(self) -> dict:
        return {**asdict(self), "points": self.points, "memory_bytes": self.memory_bytes}


@dataclass
class AggregateUsage:
    """The aggregate buckets of one series: how many, and the memory they take (scaled up from
    the `measured` ones when there are more than a sample's worth)."""

    buckets: int = 0
    memory_bytes: int = 0
    measured: int = 0

    @property
    def estimated(self) -> bool:
        return self.measured < self.buckets


@dataclass
class PruneResult:
    now_ms: int
    retention_seconds: dict[str, float | None]
    raw_points_removed: int = 0
    compacted_points_removed: int = 0
    chunks_removed: int = 0
    aggregates_removed: int = 0
    series: int = 0
    corrupt_chunks: int = 0  # unreadable chunks left as they are (see TimeSeries._prune_chunks)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CompactResult:
    now_ms: int
    older_than_seconds: float
    series: int = 0
    points_compacted: int = 0
    chunks_written: int = 0
    raw_bytes_before: int = 0
    raw_bytes_after: int = 0
    meta_bytes_before: int = 0
    meta_bytes_after: int = 0
    corrupt_members: int = 0
    corrupt_chunks: int = 0  # unreadable chunks set aside as `chunk:{window}:unreadable`

    @property
    def bytes_saved(self) -> int:
        return (self.raw_bytes_before + self.meta_bytes_before) - (
            self.raw_bytes_after + self.meta_bytes_after
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "bytes_saved": self.bytes_saved}


@dataclass
class Range:
    name: str
    start_ms: int
    end_ms: int
    resolution: str  # "raw" or one of RESOLUTION_MS
    points: list[Point] = field(default_factory=list)
    aggregates: list[Aggregate] = field(default_factory=list)
    corrupt: int = 0
    computed: int = 0  # of the aggregates, those computed from raw points (none was stored)

    def values(self) -> list[tuple[int, float]]:
        """(timestamp ms, value): raw points, or each bucket's average."""
        if self.resolution == "raw":
            return [(p.timestamp_ms, p.value) for p in self.points]
        return [(a.bucket_start_ms, a.avg) for a in self.aggregates if a.count]

    def to_dict(self) -> dict:
        out = {
            "name": self.name,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "resolution": self.resolution,
            "corrupt": self.corrupt,
        }
        if self.resolution == "raw":
            out["points"] = [p.to_dict() for p in self.points]
        else:
            out["aggregates"] = [a.to_dict() for a in self.aggregates]
            out["computed_buckets"] = self.computed
        return out


# -- the store ---------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


class TimeSeries:
    """Writes and reads series in one deployment. `clock` gives epoch seconds (tests pass their
    own); `on_lookups(hits, misses)` hears of the key lookups the writes made, so the stats
    sampler can leave cachectl's own traffic out of the server's hit rate."""

    def __init__(
        self,
        store: Store,
        layout: Layout,
        *,
        retention: dict[str, float | None] | None = None,
        clock: Callable[[], float] = time.time,
        on_lookups: Callable[[int, int], None] | None = None,
    ):
        self.store = store
        self.layout = layout
        self.retention = dict(DEFAULT_RETENTION_SECONDS if retention is None else retention)
        self.clock = clock
        self.on_lookups = on_lookups
        self._script_sha: str | None = None

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    # writing

    def _load_script(self) -> str:
        for node in self.store.primaries():
            self._script_sha = _text(self.store.execute_on(node, "SCRIPT LOAD", AGGREGATE_SCRIPT))
        return self._script_sha

    def add(
        self,
        name: str,
        value: float,
        *,
        timestamp_ms: int | None = None,
        tags: dict[str, Any] | None = None,
    ) -> int:
        return self.add_many([(name, value, timestamp_ms, tags)])

    def add_many(self, points: Iterable[tuple[str, float, int | None, dict | None]]) -> int:
        """Writes points (name, value, timestamp ms or None for now, tags or None) with their
        aggregates, pipelined. Values that are not finite numbers are left out. Returns how
        many were written."""
        now = self.now_ms()
        batch: list[tuple[str, Point]] = []
        for name, value, stamp, tags in points:
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                continue
            batch.append(
                (
                    name,
                    Point(
                        now if stamp is None else int(stamp), float(value), js_stringify(tags or {})
                    ),
                )
            )
        for start in range(0, len(batch), BATCH):
            self._write(batch[start : start + BATCH])
        return len(batch)

    def _write(self, batch: list[tuple[str, Point]]) -> None:
        sha = self._script_sha or self._load_script()
        plain, agg_calls = point_writes(self.layout, batch, self.retention)
        with self.store.pipeline("ZADD") as pipe:
            for command in plain:
                pipe.execute_command(*command)
            for key, value, stamp, bucket, expire_at in agg_calls:
                # By name: redis-py's cluster pipeline refuses .evalsha() but routes EVALSHA
                # by its key like any other command.
                pipe.execute_command("EVALSHA", sha, 1, key, repr(value), stamp, bucket, expire_at)
            replies = pipe.execute(raise_on_error=False)
        written = len(plain)
        agg_replies = self._resend_forgotten(agg_calls, replies[written:])
        for reply in replies[:written] + agg_replies:
            if isinstance(reply, Exception):
                raise self.store.translate(reply, "history write")
        if self.on_lookups:
            existed = sum(1 for r in agg_replies if r)
            self.on_lookups(existed, len(agg_replies) - existed)

    def _resend_forgotten(self, calls: list[tuple], replies: list) -> list:
        """The replies with every NOSCRIPT one replaced by the reply to its call sent again.

        A server that restarted, failed over or ran SCRIPT FLUSH has forgotten the script: it
        answers NOSCRIPT (redis-py's NoScriptError, whose text is not "NOSCRIPT") and leaves
        that bucket untouched, so the script is loaded again on every primary and just those
        calls are resent. Any other error stays in its place for the caller."""
        forgotten = [i for i, reply in enumerate(replies) if self.store.script_forgotten(reply)]
        if not forgotten:
            return list(replies)
        sha = self._load_script()
        with self.store.pipeline("EVALSHA") as pipe:
            for i in forgotten:
                key, value, stamp, bucket, expire_at = calls[i]
                pipe.execute_command("EVALSHA", sha, 1, key, repr(value), stamp, bucket, expire_at)
            again = pipe.execute(raise_on_error=False)
        replies = list(replies)
        for i, reply in zip(forgotten, again):
            replies[i] = reply
        return replies

    # reading

    def points(self, name: str, start_ms: int, end_ms: int) -> Range:
        """Raw points in [start_ms, end_ms], from the sorted set and the compacted chunks."""
        result = Range(name, start_ms, end_ms, "raw")
        members = self.store.scored_range(self.layout.metric(name), start_ms, end_ms)
        fields = self.store.execute("HKEYS", self.layout.meta(name))
        seen: set[Point] = set()
        for member, score in members:
            point = decode_member(member, score)
            if point is None:
                result.corrupt += 1
            else:
                seen.add(point)
        wanted = [f for f in fields if _chunk_overlaps(f, start_ms, end_ms)]
        if wanted:
            values = self.store.execute("HMGET", self.layout.meta(name), *wanted)
            for value in values:
                if value is None:
                    continue
                try:
                    chunk = decode_chunk(value)
                except ValueError:
                    result.corrupt += 1
                    continue
                seen.update(p for p in chunk if start_ms <= p.timestamp_ms <= end_ms)
        result.points = sorted(seen, key=lambda p: (p.timestamp_ms, p.value))
        return result

    def recent(self, name: str, limit: int) -> list[Point]:
        """The newest `limit` raw points (one command: cheap enough for every dashboard tick)."""
        members = self.store.scored_range(
            self.layout.metric(name), "-inf", "+inf", newest_first=True, start=0, num=limit
        )
        if self.on_lookups:
            # Over the whole range, an empty reply means the key does not exist: a miss.
            self.on_lookups(1 if members else 0, 0 if members else 1)
        return [p for p in (decode_member(m, s) for m, s in members) if p is not None]

    def aggregates(self, name: str, resolution: str, start_ms: int, end_ms: int) -> Range:
        """The buckets of `resolution` from the one holding start_ms to the one holding end_ms."""
        width = resolution_ms(resolution)
        first = start_ms - start_ms % width
        buckets = list(range(first, end_ms + 1, width))
        if len(buckets) > MAX_BUCKETS:
            raise UsageError(
                f"{len(buckets):,} buckets of {resolution} is too many to read",
                hint="choose a coarser --resolution or a shorter --since",
            )
        result = Range(name, start_ms, end_ms, resolution)
        keys = [self.layout.agg(name, resolution, b) for b in buckets]
        replies = self.store.pipelined("HGETALL", keys)
        missing: list[int] = []
        for bucket, reply in zip(buckets, replies):
            if not reply:
                missing.append(bucket)
                continue
            aggregate = _decode_aggregate(bucket, reply.get(b"data"))
            if aggregate is None:
                result.corrupt += 1
            else:
                result.aggregates.append(aggregate)
        found = sum(1 for r in replies if r)
        lookups = len(replies)
        if missing:
            # Buckets no writer stored (other applications write raw points only): from the
            # raw points, as cachectl's writer would have stored them (timeseries_rollup).
            rolled = roll_up(self.store, self.layout, name, width, missing, _chunk_overlaps)
            result.corrupt += rolled.corrupt
            result.computed = len(rolled.buckets)
            result.aggregates += [
                Aggregate(b, r.count, r.sum, r.min, r.max, r.first[1], r.last[1])
                for b, r in rolled.buckets.items()
            ]
            result.aggregates.sort(key=lambda a: a.bucket_start_ms)
            found, lookups = found + rolled.found, lookups + rolled.commands
        if self.on_lookups:
            self.on_lookups(found, lookups - found)
        return result

    def read(self, name: str, resolution: str, start_ms: int, end_ms: int) -> Range:
        if resolution == "raw":
            return self.points(name, start_ms, end_ms)
        return self.aggregates(name, resolution, start_ms, end_ms)

    # listing

    def names(self) -> list[str]:
        """Every series with a sorted set or a meta hash (a fully compacted series has only
        the latter).

        A SCAN costs a walk of the whole keyspace whatever it matches, so when the two
        prefixes share a head (`metric:` and `meta:` share `met`) one walk matching that head
        finds both kinds; otherwise it takes two."""
        heads = [self.layout.metric(""), self.layout.meta("")]
        common = os.path.commonprefix(heads)
        if common:
            patterns = [escape_glob(common) + "*"]
        else:
            patterns = [self.layout.metric_pattern(), self.layout.meta_pattern()]
        names: set[str] = set()
        for pattern in patterns:
            for key in self.store.scan(match=pattern):
                text = _text(key)
                for head in heads:
                    if text.startswith(head):
                        names.add(text[len(head) :])
        return sorted(names)

    def aggregate_usage(self, sample: int = AGG_MEMORY_SAMPLE) -> dict[str, AggregateUsage]:
        """Each series' aggregate buckets: one SCAN walk of the agg prefix, then MEMORY USAGE of
        every bucket of a series with up to `sample` of them, or of `sample` buckets spread
        evenly over its resolutions and times, scaled up to all of them."""
        keys: dict[str, set[bytes]] = defaultdict(set)
        for key in self.store.scan(match=self.layout.agg_pattern()):
            parsed = self._parse_agg_key(key)
            if parsed is not None:
                keys[parsed[0]].add(key)  # a set: SCAN may return a key twice
        chosen: dict[str, list[bytes]] = {}
        for name, found in keys.items():
            ordered = sorted(found)  # by resolution, then time
            step = max(1, len(ordered)) / max(1, sample)
            chosen[name] = (
                ordered
                if len(ordered) <= sample
                else [ordered[int(i * step)] for i in range(sample)]
            )
        flat = [k for picked in chosen.values() for k in picked]
        sizes = iter(self.store.memory_usage(flat))
        usage: dict[str, AggregateUsage] = {}
        for name, picked in chosen.items():
            measured = [size for size in (next(sizes) for _ in picked) if size is not None]
            buckets = len(keys[name])
            if len(picked) == buckets:
                # Every bucket measured: one that expired meanwhile is no longer there.
                buckets = len(measured)
            total = sum(measured)
            if measured and len(measured) < buckets:
                total = round(total * buckets / len(measured))
            usage[name] = AggregateUsage(buckets, total, len(measured))
        return usage

    def info(self, names: Sequence[str]) -> list[SeriesInfo]:
        infos = [SeriesInfo(name) for name in names]
        with self.store.pipeline("ZCARD") as pipe:
            for name in names:
                key = self.layout.metric(name)
                pipe.zcard(key)
                pipe.zrange(key, 0, 0, withscores=True)
                pipe.zrange(key, -1, -1, withscores=True)
                pipe.hgetall(self.layout.meta(name))
                pipe.memory_usage(key, samples=0)
                pipe.memory_usage(self.layout.meta(name), samples=0)
            replies = pipe.execute(raise_on_error=False)
        for i, info in enumerate(infos):
            card, first, last, meta, raw_mem, meta_mem = replies[6 * i : 6 * i + 6]
            info.raw_points = card if isinstance(card, int) else 0
            stamps = [s for reply in (first, last) if isinstance(reply, list) for _, s in reply]
            info.raw_memory_bytes = raw_mem if isinstance(raw_mem, int) else 0
            info.meta_memory_bytes = meta_mem if isinstance(meta_mem, int) else 0
            if isinstance(meta, dict):
                for fieldname, value in meta.items():
                    if fieldname.startswith(CHUNK_FIELD.encode()):
                        header = chunk_header(value)
                        if header:
                            info.chunks += 1
                            info.compacted_points += header.count
                            stamps += [header.first_ms, header.last_ms]
                last_update = meta.get(b"lastUpdate")
                if last_update and last_update.isdigit():
                    info.last_update_ms = int(last_update)
            if stamps:
                info.first_ms, info.last_ms = int(min(stamps)), int(max(stamps))
        return infos

    # retention and compaction

    def prune(
        self,
        names: Sequence[str] | None = None,
        now_ms: int | None = None,
        *,
        aggregates: bool = True,
    ) -> PruneResult:
        """Applies the retention: raw points and chunks older than `raw`, aggregate buckets
        older than their resolution's.

        The buckets cost a SCAN walk of the agg prefix. cachectl's own buckets expire by
        themselves (PEXPIREAT from the retention they were written with), so the walk is only
        for a retention shortened since and for buckets other writers left without a TTL:
        `aggregates=False` skips it (the recorder's hourly upkeep does)."""
        now = self.now_ms() if now_ms is None else now_ms
        names = self.names() if names is None else names
        result = PruneResult(now, dict(self.retention), series=len(names))
        keep_raw = self.retention.get("raw")
        if keep_raw is not None:
            cutoff = now - int(keep_raw * 1000)
            with self.store.pipeline("ZREMRANGEBYSCORE") as pipe:
                for name in names:
                    pipe.zremrangebyscore(self.layout.metric(name), "-inf", f"({cutoff}")
                result.raw_points_removed = sum(pipe.execute())
            for name in names:
                self._prune_chunks(name, cutoff, result)
        if not aggregates:
            return result
        expired: list[bytes] = []
        head = self.layout.agg_pattern()
        wanted = set(names)
        for key in self.store.scan(match=head):
            parsed = self._parse_agg_key(key)
            if parsed is None or parsed[0] not in wanted:
                continue
            _, resolution, bucket = parsed
            keep = self.retention.get(resolution)
            if keep is not None and bucket + RESOLUTION_MS[resolution] <= now - keep * 1000:
                expired.append(key)
        result.aggregates_removed = self.store.unlink(expired)
        return result

    def _parse_agg_key(self, key: bytes) -> tuple[str, str, int] | None:
        # The key's name part may hold ":", so it is read from the right.
        prefix = self.layout.config.agg_prefix + ":"
        text = _text(key)
        if not text.startswith(prefix):
            return None
        name, sep, rest = text[len(prefix) :].rpartition(":")
        name, sep2, resolution = name.rpartition(":")
        if not sep or not sep2 or resolution not in RESOLUTION_MS or not rest.isdigit():
            return None
        return name, resolution, int(rest)

    def _chunks(self, name: str) -> dict[bytes, bytes]:
        meta = self.store.execute("HGETALL", self.layout.meta(name))
        return {f: v for f, v in meta.items() if f.startswith(CHUNK_FIELD.encode())}

    def _prune_chunks(self, name: str, cutoff: int, result: PruneResult) -> None:
        """Chunks wholly older than `cutoff` go; one that spans it keeps its newer points.

        A chunk that does not read is skipped and counted, never a crash. When all of it is
        past the retention (by its header, or by its field's hour window when the header does
        not read either) it goes like any other: retention would have dropped its points. When
        it spans the cutoff it is left whole: which of its points are still wanted cannot be
        told, and dropping it would lose those. It goes once all of it has aged out."""
        key = self.layout.meta(name)
        for fieldname, value in self._chunks(name).items():
            header = chunk_header(value)
            if header is not None:
                if header.first_ms >= cutoff:
                    continue
                whole = header.last_ms < cutoff
            else:
                window = _chunk_window(fieldname)
                if window is None or window + CHUNK_WINDOW_MS > cutoff:
                    result.corrupt_chunks += 1
                    continue
                whole = True
            if whole:
                self.store.execute("HDEL", key, fieldname)
                result.chunks_removed += 1
                result.compacted_points_removed += header.count if header else 0
                continue
            try:
                points = decode_chunk(value)
            except ValueError:
                result.corrupt_chunks += 1
                continue
            kept = [p for p in points if p.timestamp_ms >= cutoff]
            self.store.execute("HSET", key, fieldname, encode_chunk(kept))
            result.compacted_points_removed += header.count - len(kept)

    def compact(
        self,
        older_than_seconds: float = DEFAULT_COMPACT_AFTER_SECONDS,
        names: Sequence[str] | None = None,
        now_ms: int | None = None,
    ) -> CompactResult:
        """Moves raw points of whole hour windows older than `older_than_seconds` into chunks.

        The chunk is written before the raw members are removed, and only the members read are
        removed: a point written meanwhile is never lost, and a crash between the two steps
        leaves duplicates that reads drop.
        """
        now = self.now_ms() if now_ms is None else now_ms
        names = self.names() if names is None else names
        result = CompactResult(now, older_than_seconds, series=len(names))
        cutoff = now - int(older_than_seconds * 1000)
        cutoff -= cutoff % CHUNK_WINDOW_MS
        for name in names:
            self._compact_one(name, cutoff, result)
        return result

    def _compact_one(self, name: str, cutoff: int, result: CompactResult) -> None:
        metric, meta = self.layout.metric(name), self.layout.meta(name)
        members = self.store.scored_range(metric, "-inf", f"({cutoff}")
        if not members:
            return
        raw_before, meta_before = self.store.memory_usage([metric, meta])
        windows: dict[int, list[Point]] = defaultdict(list)
        done: list[bytes] = []
        for member, score in members:
            point = decode_member(member, score)
            if point is None:
                # Unreadable members stay where they are, for a person to look at.
                result.corrupt_members += 1
                continue
            windows[point.timestamp_ms - point.timestamp_ms % CHUNK_WINDOW_MS].append(point)
            done.append(member)
        existing = self._chunks(name)
        for window, points in windows.items():
            fieldname = f"{CHUNK_FIELD}{window}".encode()
            merged = set(points)
            if fieldname in existing:
                try:
                    merged.update(decode_chunk(existing[fieldname]))
                except ValueError:
                    # An unreadable chunk is kept under another name, never overwritten.
                    self.store.execute(
                        "HSET", meta, fieldname + b":unreadable", existing[fieldname]
                    )
                    result.corrupt_chunks += 1
            self.store.execute("HSET", meta, fieldname, encode_chunk(list(merged)))
            result.chunks_written += 1
        for start in range(0, len(done), BATCH):
            self.store.execute("ZREM", metric, *done[start : start + BATCH])
        raw_after, meta_after = self.store.memory_usage([metric, meta])
        result.points_compacted += len(done)
        result.raw_bytes_before += raw_before or 0
        result.meta_bytes_before += meta_before or 0
        result.raw_bytes_after += raw_after or 0
        result.meta_bytes_after += meta_after or 0


def _chunk_overlaps(fieldname: bytes, start_ms: int, end_ms: int) -> bool:
    text = _text(fieldname)
    if not text.startswith(CHUNK_FIELD):
        return False
    window = text[len(CHUNK_FIELD) :]
    if not window.isdigit():
        return False
    begin = int(window)
    return begin <= end_ms and begin + CHUNK_WINDOW_MS > start_ms


def _chunk_window(fieldname: bytes) -> int | None:
    """The hour window a chunk field is named after: `chunk:{start}`, or a chunk set aside as
    `chunk:{start}:unreadable`; None for any other field."""
    text = _text(fieldname)
    if not text.startswith(CHUNK_FIELD):
        return None
    window = text[len(CHUNK_FIELD) :].split(":", 1)[0]
    return int(window) if window.isdigit() else None


def _decode_aggregate(bucket: int, data: bytes | None) -> Aggregate | None:
    try:
        d = json.loads(data) if data is not None else None
        if not isinstance(d, dict):
            return None
        count = int(d["count"])
        values = [float(d[k]) for k in ("sum", "min", "max")]
        first = float(d.get("first", values[1]))
        last = float(d.get("last", values[2]))
    except (ValueError, TypeError, KeyError):
        return None
    return Aggregate(bucket, count, values[0], values[1], values[2], first, last)


def _iso(ms: int) -> str:
    """As JavaScript's Date.prototype.toISOString writes it."""
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
