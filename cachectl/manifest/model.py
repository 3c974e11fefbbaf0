"""What a loaded manifest is: its endpoints, the sources of their matrix values, and the
requests they expand to."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cachectl.errors import ManifestError
from cachectl.layout import Layout, parse_cli_param
from cachectl.manifest.fastpath import _compile_key
from cachectl.manifest.templates import Template, _query_value, _text_of, _url_value
from cachectl.manifest.urls import mask_query_secrets
from cachectl.redact import MASK
from cachectl.yamlsrc import InputLimits, read_lines

MANIFEST_VERSION = 1
METHODS = ("GET", "POST")
CACHE_IF_WORDS = ("always", "non_empty")
FILE_VALUE_KINDS = ("json", "string")
DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRIES = 2
DEFAULT_CONCURRENCY = 10
MAX_RETRIES = 20
# Sane bounds: past them a number is a typo (or a hostile file), and would reach a socket, a
# sleep or Redis as an OverflowError or a TTL of a thousand years.
MAX_CONCURRENCY = 1000  # connections held open at once
MIN_RATE, MAX_RATE = 0.001, 1_000_000.0  # requests per second
MAX_TIMEOUT_SECONDS = 3600.0
MAX_RANGE_VALUE = 2**53 - 1  # JavaScript's largest safe integer: keys write larger ones as 1e+21
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


# ---- where param values come from ------------------------------------------------------------


@dataclass(frozen=True)
class ListValues:
    values: tuple

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def describe(self) -> str:
        return f"{len(self.values)} values"


@dataclass(frozen=True)
class RangeValues:
    """Every integer from `start` to `end`, both included."""

    start: int
    end: int

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.end + 1))

    def __len__(self) -> int:
        return self.end - self.start + 1

    def describe(self) -> str:
        return f"range {self.start}..{self.end}"


@dataclass(frozen=True)
class FileValues:
    """One value per line of a file; blank lines and lines starting with `#` are skipped.

    As `json` (the default), a line that reads as JSON is that value (`123` the number, `"123"`
    the string) and any other line is text, the rule `--param` follows; as `string`, every line
    is text. The file is read afresh on every iteration, never held in memory.
    """

    path: str
    kind: str
    count: int
    limits: InputLimits = field(default_factory=InputLimits, repr=False)

    def __iter__(self) -> Iterator[Any]:
        # Read line by line within the line-length limit: a file that changed since it was
        # checked (a line grown past the limit, bytes that are not UTF-8) stops the run as a
        # bad manifest (exit 3), not an internal error.
        for number, line in read_lines(self.path, ManifestError, self.limits):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if self.kind == "string":
                yield text
            else:
                yield file_value(text, self.path, number, self.limits)

    def __len__(self) -> int:
        return self.count

    def describe(self) -> str:
        return f"{self.count} lines of {os.path.basename(self.path)}"


Source = ListValues | RangeValues | FileValues


def file_value(text: str, file: str, number: int, limits: InputLimits) -> Any:
    """One line of a matrix file read as `--param` reads a value (JSON when it parses, else
    text); JSON nested deeper than the depth limit, or a number JSON cannot hold (`1e400` reads
    as infinity), raises ManifestError naming `file:number`."""
    depth_limit = limits.yaml_depth
    too_deep = (
        f"{file}:{number}: JSON nested more than {depth_limit} levels deep, the limit: "
        f"raise it with CACHECTL_MAX_YAML_DEPTH"
    )
    try:
        value = parse_cli_param("v=" + text)[1]
    except RecursionError:
        raise ManifestError(too_deep) from None
    stack = [(value, 0)]  # walked without recursion: the value may be deep
    while stack:
        item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ManifestError(
                f"{file}:{number}: a number too large for JSON (it reads as {item}): "
                "put it in quotes to keep it as text"
            )
        if isinstance(item, (list, dict)):
            if depth >= depth_limit:
                raise ManifestError(too_deep)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return value


def _product(sources: Sequence[Source]) -> Iterator[tuple]:
    """The cartesian product, re-iterating inner sources instead of storing them
    (itertools.product would hold every source, a whole file of ids, in memory)."""
    if not sources:
        yield ()
        return
    first, rest = sources[0], sources[1:]
    for value in first:
        for tail in _product(rest):
            yield (value, *tail)


# ---- the manifest -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # compared and hashed by identity: one per manifest entry
class Endpoint:
    file: str
    index: int  # position in its manifest's `endpoints`
    line: int
    name: str
    url: Template  # absolute: base_url already joined
    method: str
    headers: dict[str, str]
    body: bytes | None
    timeout_seconds: float
    params: dict[str, Any]
    matrix: tuple[tuple[str, Source], ...]
    ttl_ms: int
    tags: tuple[Template, ...]
    depends_on: tuple[Template, ...]
    cache_if: str | frozenset[int]
    fallback_url: Template | None
    concurrency: int | None
    rate: float | None
    retries: int
    # The largest answer stored (its own, else the manifest's defaults); None: the run's limit,
    # DEFAULT_MAX_RESPONSE_BYTES unless --max-response-bytes says otherwise.
    max_response_bytes: int | None = None
    # The secrets of its manifest that `scrub` masks (4 characters or more), longest first: a
    # shown URL is scrubbed of them, under whatever name the URL holds them.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        return math.prod(len(source) for _, source in self.matrix)

    @property
    def param_names(self) -> frozenset[str]:
        return frozenset(self.params) | {name for name, _ in self.matrix}

    @property
    def ref(self) -> str:
        return f"{self.file}:{self.line} endpoints[{self.index}] ({self.name})"

    def requests(self, layout: Layout) -> Iterator[PlannedRequest]:
        """Every request of the matrix, in order, one `request_for` each."""
        names = [name for name, _ in self.matrix]
        for combo in _product([source for _, source in self.matrix]):
            params = dict(self.params)
            params.update(zip(names, combo))
            yield self.request_for(params, layout)

    def keys(self, layout: Layout) -> Iterator[str]:
        """The key of every request of the matrix, in order, worked out alone: the same as the
        `.key` of each of `requests` (tests/unit/test_manifest_fastpath.py), at a fraction of
        the cost, for the check that no two requests write one key."""
        names = [name for name, _ in self.matrix]
        combos = _product([source for _, source in self.matrix])
        key_of = _compile_key(self, layout)
        if key_of is None:
            for combo in combos:
                params = dict(self.params)
                params.update(zip(names, combo))
                yield layout.entry(self.name, params, headers=self.headers)
            return
        for combo in combos:
            yield key_of(combo)

    def request_for(self, params: Mapping[str, Any], layout: Layout) -> PlannedRequest:
        """The request for one combination of params (which must fill every template)."""
        url = self.url.render(params, _url_value)
        in_query = [(n, v) for n, v in params.items() if n not in self.url.names]
        if in_query:
            query = "&".join(f"{quote(n, safe='')}={_query_value(v)}" for n, v in in_query)
            url += ("&" if "?" in url else "?") + query
        return PlannedRequest(
            endpoint=self,
            params=params,
            key=layout.entry(self.name, params, headers=self.headers),
            url=url,
            tags=tuple(t.render(params, _text_of) for t in self.tags),
            depends_on=tuple(t.render(params, _text_of) for t in self.depends_on),
            fallback_url=self.fallback_url.render(params, _url_value)
            if self.fallback_url
            else None,
        )


@dataclass(slots=True)
class PlannedRequest:
    """One request of the plan: what to ask and where the answer goes."""

    endpoint: Endpoint
    params: Mapping[str, Any]
    key: str
    url: str
    tags: tuple[str, ...]
    depends_on: tuple[str, ...]
    fallback_url: str | None

    @property
    def shown_url(self) -> str:
        shown = mask_query_secrets(self.url)
        # `?access=${TOKEN}` as well as `?token=`: a known secret under any name is masked, as
        # `scrub` masks it (once per report record: the replacing alone, in order).
        for secret in self.endpoint.secrets:
            if secret in shown:
                shown = shown.replace(secret, MASK)
        return shown

    def to_dict(self) -> dict:
        return {
            "endpoint": self.endpoint.name,
            "method": self.endpoint.method,
            "url": self.shown_url,
            "key": self.key,
            "ttl_seconds": self.endpoint.ttl_ms / 1000,
            "tags": list(self.tags),
            "depends_on": list(self.depends_on),
        }


@dataclass(frozen=True)
class Defaults:
    concurrency: int | None = None
    concurrency_per_host: int | None = None
    rate: float | None = None


@dataclass(frozen=True)
class Manifest:
    file: str
    defaults: Defaults
    endpoints: tuple[Endpoint, ...]
    secrets: tuple[str, ...] = field(default=(), repr=False)

    @property
    def count(self) -> int:
        return sum(e.count for e in self.endpoints)
