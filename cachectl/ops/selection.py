"""What an invalidation selects: the entries named by tags, patterns, keys, endpoints and
dependencies, narrowed by filters. Pure parsing and checking here; reading Redis is in
`cachectl.ops.invalidate`.

Everything a user typed is checked before anything touches Redis, so a bad flag costs nothing:
a pattern that reaches outside the cache, a key that is not an entry, a graph file that does
not read. Sources are named so that a summary can say where each entry came from.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cachectl.durations import parse_duration
from cachectl.errors import UsageError
from cachectl.keytext import glob_from_shown, show_bytes, unshow_bytes
from cachectl.layout import Layout, parse_cli_param

# --- filters ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Narrowing conditions; an entry is selected only if it meets every one that is set."""

    ttl_below_seconds: float | None = None
    ttl_above_seconds: float | None = None
    idle_above_seconds: float | None = None
    older_than_seconds: float | None = None  # by the write log's score (last write)
    larger_than_bytes: int | None = None

    @property
    def active(self) -> bool:
        return any(getattr(self, f.name) is not None for f in dataclasses.fields(self))

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}  # fmt: skip
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]*)")


def parse_bytes(text: str, option: str = "--larger-than") -> int:
    """`2048`, `10kb` (10,000), `1.5MiB` (1,572,864) -> bytes."""
    match = _SIZE.fullmatch(text.strip().lower())
    if not match or match.group(2) not in _BYTE_UNITS:
        raise UsageError(
            f"{option} {text!r} is not a size",
            hint="write bytes as 2048, 10kb, 1.5MiB (kb/mb/gb are powers of 1000, kib/mib/gib of 1024)",
        )
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2)])


def parse_seconds(text: str | float, option: str) -> float:
    """A duration (`90`, `10m`, `1h30m`) as seconds, 0 or more."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds < 0:
        raise UsageError(f"{option} must be 0 or more, not {text!r}")
    return seconds


def make_filters(
    *,
    ttl_below: str | float | None = None,
    ttl_above: str | float | None = None,
    idle_above: str | float | None = None,
    older_than: str | float | None = None,
    larger_than: str | None = None,
) -> Filters:
    """Filters from the options as typed (a duration as text, or seconds); a bad value is a
    usage error naming the option."""

    def seconds(value: str | float | None, option: str) -> float | None:
        return None if value is None else parse_seconds(value, option)

    filters = Filters(
        ttl_below_seconds=seconds(ttl_below, "--ttl-below"),
        ttl_above_seconds=seconds(ttl_above, "--ttl-above"),
        idle_above_seconds=seconds(idle_above, "--idle-above"),
        older_than_seconds=seconds(older_than, "--older-than"),
        larger_than_bytes=None if larger_than is None else parse_bytes(larger_than),
    )
    if (
        filters.ttl_below_seconds is not None
        and filters.ttl_above_seconds is not None
        and filters.ttl_below_seconds <= filters.ttl_above_seconds
    ):
        raise UsageError(
            f"--ttl-below {_as_typed(ttl_below)} and --ttl-above {_as_typed(ttl_above)} "
            "together select nothing",
            hint="--ttl-below must be greater than --ttl-above",
        )
    return filters


def _as_typed(value: str | float | None) -> str:
    """A duration as a user would type it: `600`, not `600.0`."""
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- sources ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeySource:
    """Exact entry keys (--key, --endpoint with --param)."""

    label: str
    keys: tuple[bytes, ...]


@dataclass(frozen=True)
class SetSource:
    """The members of a tag or dependency set (--tag, --depends-on)."""

    label: str
    set_key: bytes
    kind: str  # "tag" | "dependency"
    name: str = ""  # the tag or resource id as given


@dataclass(frozen=True)
class ScanSource:
    """Keys found by SCAN MATCH (--pattern, --endpoint without --param). With `endpoint`, only
    entries of that endpoint are kept (its pattern can match longer endpoint names too)."""

    label: str
    pattern: bytes
    endpoint: str | None = None


Source = KeySource | SetSource | ScanSource


@dataclass
class SelectionSpec:
    """The selection flags as given on the command line."""

    tags: Sequence[str] = ()
    patterns: Sequence[str] = ()
    keys: Sequence[str] = ()
    endpoints: Sequence[str] = ()
    params: Sequence[str] = ()
    depends_on: Sequence[str] = ()
    graph_file: str | None = None
    force: bool = False

    @property
    def empty(self) -> bool:
        return not (self.tags or self.patterns or self.keys or self.endpoints or self.depends_on)


@dataclass
class Selection:
    """A checked selection: its sources in the order they run (exact keys, then sets, then
    scans: the cheap and precise first) and notes for people (what --force let through)."""

    sources: list[Source] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def has_scans(self) -> bool:
        return any(isinstance(s, ScanSource) for s in self.sources)

    def describe(self) -> list[str]:
        return [s.label for s in self.sources]


def resolve_selection(layout: Layout, spec: SelectionSpec) -> Selection:
    """Checks the flags and turns them into sources; raises UsageError (exit 2) for a flag
    that cannot be run as given and BadInputError (exit 3) for a graph file that does not
    read. Nothing here touches Redis."""
    if spec.empty:
        raise UsageError(
            "nothing selected",
            hint="give at least one of --tag, --pattern, --key, --endpoint, --depends-on",
        )
    if spec.params and len(spec.endpoints) != 1:
        raise UsageError(
            "--param needs exactly one --endpoint",
            hint="run one command per endpoint when each has its own params",
        )
    if spec.graph_file and not spec.depends_on:
        raise UsageError("--graph is read only with --depends-on")
    selection = Selection()
    keys = [_entry_key(layout, key) for key in _unique(spec.keys)]
    if keys:
        label = f"key {show_bytes(keys[0])}" if len(keys) == 1 else f"{len(keys)} keys"
        selection.sources.append(KeySource(label, tuple(keys)))
    if spec.params:
        selection.sources.append(_endpoint_keys(layout, spec.endpoints[0], spec.params))
    for tag in _unique(spec.tags):
        set_key = _set_key(layout, layout.tag(tag), "--tag", tag, layout.config.tag_prefix)
        selection.sources.append(SetSource(f"tag {tag}", set_key, "tag", tag))
    for resource in _dependencies(spec):
        set_key = _set_key(
            layout,
            layout.dependency(resource),
            "--depends-on",
            resource,
            layout.config.dependency_prefix,
        )
        selection.sources.append(
            SetSource(f"depends on {resource}", set_key, "dependency", resource)
        )
    for pattern in _unique(spec.patterns):
        glob = glob_from_shown(pattern)  # typed with the escapes keys are printed with
        selection.sources.append(_pattern_source(layout, glob, spec.force, selection.notes))
    if not spec.params:
        for endpoint in _unique(spec.endpoints):
            if not endpoint:
                raise UsageError("--endpoint needs a name")
            selection.sources.append(
                ScanSource(
                    f"endpoint {endpoint}", layout.endpoint_pattern(endpoint).encode(), endpoint
                )
            )
    return selection


def _unique(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _set_key(layout: Layout, set_key: str, option: str, name: str, prefix: str) -> bytes:
    """A tag or dependency set key; one that is the pending name of another set (where a
    half-done invalidation left that set's entries) is refused: its rerun finishes it."""
    raw = set_key.encode()
    origin = layout.pending_origin(raw)
    if origin is not None:
        own = origin[len(prefix) + 1 :].decode("utf-8", "backslashreplace")
        raise UsageError(
            f"{option} {name!r} names the set a half-finished `invalidate {option} {own}` "
            "left to finish",
            hint=f"rerun `cachectl invalidate {option} {own}`: it finishes that set first",
        )
    return raw


def _entry_key(layout: Layout, key: str) -> bytes:
    """A --key as typed, in the escaped form every listing prints (`\\xff`, `\\n`, `\\\\`)."""
    raw = unshow_bytes(key)
    if not layout.is_entry(raw):
        raise UsageError(
            f"--key {show_bytes(raw)} is not a cache entry: entries start with "
            f"{layout.entry_root!r}",
            hint="cachectl deletes only cache entries; check the key, or the layout's prefix",
        )
    return raw


def _endpoint_keys(layout: Layout, endpoint: str, raw_params: Sequence[str]) -> KeySource:
    params: dict = {}
    for raw in raw_params:
        name, value = parse_cli_param(raw)
        if name in params:
            # An entry has each param once: a second value would silently replace the first
            # and leave that entry in place.
            raise UsageError(
                f"--param {name} is given twice: one --endpoint with --param selects one entry",
                hint="to delete entries of several values, run once per value, or give each "
                "entry with --key",
            )
        params[name] = value
    # docs/keyspace.md: two param encodings exist in the wild; one call may be cached under both.
    layouts = [layout]
    if not layout.versioned:
        layouts = [
            Layout(dataclasses.replace(layout.config, param_encoding=encoding))
            for encoding in ("json", "plain")
        ]
    keys = list(dict.fromkeys(lay.entry(endpoint, params).encode() for lay in layouts))
    shown = " ".join(raw_params)
    return KeySource(f"endpoint {endpoint} {shown}", tuple(keys))


def _dependencies(spec: SelectionSpec) -> list[str]:
    resources = _unique(spec.depends_on)
    if not spec.graph_file:
        return resources
    from cachectl.graph import load_graph

    return load_graph(spec.graph_file).reach(resources)


def _pattern_source(layout: Layout, pattern: str, force: bool, notes: list[str]) -> ScanSource:
    if not pattern:
        raise UsageError("--pattern needs a glob, such as 'api_cache:products:*'")
    if not layout.pattern_within_entries(pattern):
        if not force:
            raise UsageError(
                f"--pattern {pattern!r} reaches outside the cache's entries "
                f"(they start with {layout.entry_root!r})",
                hint=f"start it with {layout.entry_root!r}, or add --force (even then only "
                "cache entries are deleted)",
            )
        notes.append(
            f"--force: pattern {pattern!r} reaches outside the cache; only entries are deleted"
        )
    elif matches_every_entry(layout, pattern):
        if not force:
            raise UsageError(
                f"--pattern {pattern!r} matches every entry of the cache",
                hint="add --force to empty the whole cache",
            )
        notes.append(f"--force: pattern {pattern!r} matches every entry of the cache")
    return ScanSource(f"pattern {show_bytes(pattern)}", pattern.encode("utf-8", "surrogateescape"))


def matches_every_entry(layout: Layout, pattern: str) -> bool:
    """Whether a glob within the entry prefix has, after that prefix, nothing that narrows it
    (see _wide), as in `api_cache:*`, `api_cache:*:*` or `api_cache:*[^]`: it then matches
    (nearly) every entry. Redis glob escapes are read as Redis reads them."""
    root = layout.entry_root
    i = matched = 0
    while matched < len(root) and i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            i += 1
        if pattern[i] != root[matched]:
            return False
        i += 1
        matched += 1
    rest = pattern[i:]
    return matched == len(root) and bool(rest) and _wide(rest)


def _wide(glob: str) -> bool:
    """Whether a glob (the part after the entry prefix) matches (nearly) every
    `{endpoint}:{params}`: one segment, or two around a `:` (every entry has one after its
    endpoint), each made only of wildcards (`*`, `?`, and `[^]`, which Redis reads as any one
    character) with at least one `*`. A literal character (an escaped one counts), a class
    (`[pu]`, `[^a]`), a `?` standing alone (a length: `?:*` is the one-letter endpoints) or a
    third segment narrows it."""
    segments: list[list[str]] = [[]]
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "\\" and i + 1 < len(glob):
            if glob[i + 1] != ":":
                return False
            segments.append([])
            i += 2
        elif c == ":":
            segments.append([])
            i += 1
        elif c == "[":  # a class narrows, but for Redis's `[^]`: any one character
            if glob[i + 1 : i + 3] != "^]":
                return False
            segments[-1].append("?")
            i += 3
        elif c in "*?":
            segments[-1].append(c)
            i += 1
        else:
            return False
    return len(segments) <= 2 and all("*" in segment for segment in segments)
