"""Every key name in the cache's keyspace, byte for byte as the JavaScript applications write them.

Entry keys embed params the way JavaScript's `JSON.stringify` (or `String()`) writes them, so the
encoder here reproduces those, not Python's `json.dumps`. The keyspace contract is docs/keyspace.md.

Pure Python and stdlib only: the CLI imports this module without loading Redis or YAML.
"""

from __future__ import annotations

import binascii
import dataclasses
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from cachectl.errors import ConfigError, UsageError
from cachectl.redact import is_secret_header

Key = str | bytes

NO_PARAMS = "no_params"
PARAM_ENCODINGS = ("json", "plain")
SCHEMES = ("standard", "versioned")
AGG_RESOLUTIONS = ("1m", "5m", "1h", "1d")
# cachectl's own bookkeeping, beyond docs/keyspace.md (see Layout.pending_set and Layout.lock).
PENDING_SUFFIX = b":invalidating"
LOCK_SUFFIX = "_lock:"
CLUSTER_SLOTS = 16384

# Valid surrogate pairs are matched first so only lone surrogates reach the single-unit branch.
_SURROGATE_PAIR = r"[\ud800-\udbff][\udc00-\udfff]"
_JSON_STRING_ESCAPE = re.compile(rf'{_SURROGATE_PAIR}|[\x00-\x1f"\\\ud800-\udfff]')
_SURROGATES = re.compile(rf"{_SURROGATE_PAIR}|[\ud800-\udfff]")
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_GLOB_SPECIAL_BYTES = re.compile(rb"([*?\[\]\\])")
_MAX_ARRAY_INDEX = 2**32 - 2
_SAFE_INTEGER = 2**53


# --- JavaScript's JSON.stringify and String() ------------------------------------------------


def js_stringify(value: Any) -> str:
    """`JSON.stringify(value)` as JavaScript writes it, for JSON-like Python values.

    Python ints are JavaScript doubles (beyond 2**53 they round as JavaScript rounds them);
    NaN and the infinities become `null`. Raises TypeError for values JSON cannot hold and
    ValueError for circular structures, as `json.dumps` does.
    """
    return _stringify(value, set())


def _stringify(value: Any, path: set[int]) -> str:
    if type(value) is int and -_SAFE_INTEGER < value < _SAFE_INTEGER:
        return str(value)  # an exact double: Number::toString writes the same digits (most ids)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, (int, float)):
        number = _to_double(value)
        return _js_number(number) if math.isfinite(number) else "null"
    if not isinstance(value, (list, tuple, Mapping)):
        raise TypeError(f"cannot write a {type(value).__name__} as JSON")
    if id(value) in path:
        raise ValueError("cannot write a circular structure as JSON")
    path.add(id(value))
    try:
        if isinstance(value, Mapping):
            items = _js_property_order(value)
            return "{" + ",".join(f"{_quote(k)}:{_stringify(v, path)}" for k, v in items) + "}"
        return "[" + ",".join(_stringify(v, path) for v in value) + "]"
    finally:
        path.discard(id(value))


def js_string(value: Any) -> str:
    """`String(value)` as JavaScript writes it: arrays joined with "," and objects as
    "[object Object]"; numbers as JavaScript prints them, NaN and Infinity included."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return _js_number(_to_double(value))
    if isinstance(value, (list, tuple)):
        # Array.prototype.join writes null and undefined elements as empty strings.
        return ",".join("" if v is None else js_string(v) for v in value)
    if isinstance(value, Mapping):
        return "[object Object]"
    raise TypeError(f"cannot write a {type(value).__name__} as a JavaScript string")


def _to_double(value: float) -> float:
    try:
        return float(value)
    except OverflowError:
        # An integer literal beyond the largest double is Infinity in JavaScript.
        return math.inf if value > 0 else -math.inf


def _js_number(x: float) -> str:
    """Number::toString: shortest round-trip digits (Python's repr finds the same ones), laid out
    in fixed notation for 1e-6 <= |x| < 1e21 and JavaScript's exponent style elsewhere."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"  # -0 included
    sign = "-" if x < 0 else ""
    mantissa, _, exponent = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    leading_zeros = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits.strip("0")
    # x == 0.digits * 10**n, the (k, n) of ECMA-262 Number::toString.
    k, n = len(digits), len(whole) + int(exponent or 0) - leading_zeros
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exp = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    return sign + (digits if k == 1 else digits[0] + "." + digits[1:]) + exp


def _quote(s: str) -> str:
    return '"' + _JSON_STRING_ESCAPE.sub(_escape_json_char, s) + '"'


def _escape_json_char(match: re.Match[str]) -> str:
    s = match.group()
    if len(s) == 2:
        return _join_surrogates(s)
    return _SHORT_ESCAPES.get(s) or f"\\u{ord(s):04x}"


def _join_surrogates(pair: str) -> str:
    high, low = ord(pair[0]), ord(pair[1])
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def _well_formed(s: str) -> str:
    """The string as it reaches Redis from JavaScript: surrogate pairs joined, and lone
    surrogates as U+FFFD (Node's UTF-8 encoder replaces them), so a key always encodes."""
    if s.isascii():
        return s  # no surrogate to mend (most keys)
    return _SURROGATES.sub(
        lambda m: _join_surrogates(m.group()) if len(m.group()) == 2 else "\ufffd", s
    )


def _property_name(key: Any) -> str:
    # JavaScript property keys are strings: {1: x} has the key "1".
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (bool, int, float)):
        return js_string(key)
    raise TypeError(f"cannot use a {type(key).__name__} as a JSON object key")


def _is_array_index(name: str) -> bool:
    return (
        0 < len(name) <= 10
        and name.isascii()
        and name.isdigit()
        and (name == "0" or name[0] != "0")
        and int(name) <= _MAX_ARRAY_INDEX
    )


def _js_property_order(obj: Mapping) -> list[tuple[str, Any]]:
    """An object's properties in JavaScript's order: array-index keys ascending, then the
    others in insertion order."""
    props: dict[str, Any] = {}
    for key, value in obj.items():
        props[_property_name(key)] = value
    indices = sorted((k for k in props if _is_array_index(k)), key=int)
    others = [k for k in props if not _is_array_index(k)]
    return [(k, props[k]) for k in indices + others]


# --- params ----------------------------------------------------------------------------------


def js_sort_key(name: str) -> bytes:
    """The sort key of JavaScript's default sort: UTF-16 code units, so U+1F680 (the
    surrogate pair D83D DE80) sorts before U+E000."""
    return name.encode("utf-16-be", "surrogatepass")


def _sorted_params(params: Mapping | None) -> list[tuple[str, Any]]:
    named: dict[str, Any] = {}
    for key, value in (params or {}).items():
        named[_property_name(key)] = value
    if len(named) < 2:
        return list(named.items())  # nothing to sort (most matrices have one param)
    return sorted(named.items(), key=lambda item: js_sort_key(item[0]))


def param_order(names: Iterable[str]) -> list[str]:
    """Param names in the order an entry key lists them (JavaScript's default sort)."""
    return [name for name, _ in _sorted_params(dict.fromkeys(names))]


def well_formed(key: str) -> str:
    """`key` as it reaches Redis from JavaScript (see `Layout.entry`): lone surrogates as U+FFFD."""
    return _well_formed(key)


def encode_params(params: Mapping | None, encoding: str = "json") -> str:
    """The params part of a standard entry key: `no_params`, or `name:value` pairs sorted by
    name and joined with `|`, each value as JSON.stringify (`json`) or String() (`plain`)."""
    if encoding not in PARAM_ENCODINGS:
        raise ValueError(
            f"unknown param encoding {encoding!r}; use one of {', '.join(PARAM_ENCODINGS)}"
        )
    items = _sorted_params(params)
    if not items:
        return NO_PARAMS
    encode = js_stringify if encoding == "json" else js_string
    return "|".join(f"{name}:{encode(value)}" for name, value in items)


def parse_cli_param(text: str) -> tuple[str, Any]:
    """`name=value` from a command line: the value is read as JSON when it parses as JSON
    (`id=123` is the number, `id="123"` the string), else taken as a string (`q=hello`)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise UsageError(
            f"param {text!r} has no '='",
            hint="Write params as name=value: id=123 (a number), id='\"123\"' (a string), q=hello.",
        )
    if not name:
        raise UsageError(
            f"param {text!r} has no name before '='", hint="Write params as name=value."
        )
    try:
        return name, STRICT_JSON.decode(raw)
    except ValueError:
        return name, raw


def reject_json_constant(name: str) -> Any:
    """`parse_constant` for a decoder that reads JSON as JavaScript's JSON.parse does: Python's
    json reads NaN and Infinity, JSON.parse does not."""
    raise ValueError(f"{name} is not JSON")


# The one strict JSON reader: NaN and Infinity are a ValueError, as in JSON.parse.
STRICT_JSON = json.JSONDecoder(parse_constant=reject_json_constant)


# --- glob ------------------------------------------------------------------------------------


@overload
def escape_glob(s: str) -> str: ...
@overload
def escape_glob(s: bytes) -> bytes: ...
def escape_glob(s: Key) -> Key:
    """`s` with Redis glob characters (`* ? [ ] \\`) backslash-escaped, so a SCAN MATCH pattern
    built from it matches `s` itself and nothing else."""
    if isinstance(s, bytes):
        return _GLOB_SPECIAL_BYTES.sub(rb"\\\1", s)
    return _GLOB_SPECIAL.sub(r"\\\1", s)


def _glob_literal_prefix(glob: bytes) -> bytes:
    """The text every key a Redis glob matches starts with: the glob up to its first wildcard,
    with escapes resolved (stringmatchlen: a backslash makes the next byte literal)."""
    out = bytearray()
    i = 0
    while i < len(glob):
        c = glob[i]
        if c in b"*?[":
            break
        if c == ord("\\") and i + 1 < len(glob):
            i += 1
            c = glob[i]
        out.append(c)
        i += 1
    return bytes(out)


def _as_bytes(key: Key) -> bytes:
    # surrogatepass: a str key may hold lone surrogates (bytes decoded with surrogateescape).
    return key if isinstance(key, bytes) else key.encode("utf-8", "surrogatepass")


def _as_text(key: Key) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def key_slot(key: bytes) -> int:
    """The Redis Cluster hash slot of `key` (CRC16 of its `{hashtag}` if it has a non-empty
    one, else of the whole key), as the server computes it."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key, 0) % CLUSTER_SLOTS


def _pending_name(set_key: bytes, prefix: bytes) -> bytes:
    """See Layout.pending_set."""
    slot = key_slot(set_key)
    for candidate in (prefix + b":{" + set_key + b"}" + PENDING_SUFFIX, set_key + PENDING_SUFFIX):
        if key_slot(candidate) == slot:
            return candidate
    # Neither shares the slot: the set key has no usable hashtag, so the whole name is hashed
    # and a suffix without braces keeps it that way; the CRC of the common head is computed
    # once (16,384 tries on average, a few milliseconds).
    head = set_key + PENDING_SUFFIX + b":"
    crc = binascii.crc_hqx(head, 0)
    n = 1
    while binascii.crc_hqx(b"%d" % n, crc) % CLUSTER_SLOTS != slot:
        n += 1
    candidate = head + b"%d" % n
    assert key_slot(candidate) == slot
    return candidate


_NUMBERED_PENDING = re.compile(rb"(.*)" + re.escape(PENDING_SUFFIX) + rb":[1-9][0-9]*", re.DOTALL)


# --- parsing keys back -----------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedKey:
    """An entry key read back, best effort: `:` and `|` inside names and values are not escaped.

    `params` is None when the params part could not be read; `encoding` then is None too.
    """

    endpoint: str
    params: dict[str, Any] | None
    raw_params: str
    encoding: str | None
    user_id: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    version: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _names_in_key_order(names: list[str]) -> bool:
    keys = [js_sort_key(n) for n in names]
    return all(a < b for a, b in itertools.pairwise(keys))


def _scan_json_params(
    raw: str, pos: int, name_sep: str, item_sep: str, stop: str = ""
) -> tuple[dict[str, Any], int] | None:
    """Reads `name{name_sep}json{item_sep}...` from `pos` up to the end or a `stop` character;
    returns the params and where reading stopped, or None if the text does not read so."""
    params: dict[str, Any] = {}
    while True:
        sep_at = raw.find(name_sep, pos)
        if sep_at < 0:
            return None
        name = raw[pos:sep_at]
        try:
            value, pos = STRICT_JSON.raw_decode(raw, sep_at + 1)
        except ValueError:
            return None
        # A name holding the separator is a misread: the writer never splits a name so.
        if item_sep in name or name in params:
            return None
        params[name] = value
        if pos == len(raw) or raw[pos] in stop:
            break
        if raw[pos] != item_sep:
            return None
        pos += 1
    return (params, pos) if _names_in_key_order(list(params)) else None


def _decode_plain_params(raw: str) -> dict[str, str] | None:
    params: dict[str, str] = {}
    name = None
    for piece in raw.split("|"):
        key, sep, value = piece.partition(":")
        if sep and key not in params:
            name = key
            params[name] = value
        elif name is None:
            return None
        else:
            # No new name here: the previous value held a "|".
            params[name] += "|" + piece
    return params if _names_in_key_order(list(params)) else None


def _decode_params(raw: str, encoding: str) -> dict[str, Any] | None:
    if raw == NO_PARAMS:
        return {}
    if encoding == "plain":
        return _decode_plain_params(raw)
    scanned = _scan_json_params(raw, 0, ":", "|")
    return scanned[0] if scanned else None


def _longest_first(endpoints: Iterable[str]) -> list[str]:
    return sorted(set(endpoints), key=len, reverse=True)


# --- the layout ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayoutConfig:
    """The cache's key names (see docs/keyspace.md); every prefix is what the applications use."""

    prefix: str = "api_cache"
    tag_prefix: str = "tag"
    dependency_prefix: str = "depends_on"
    metrics_prefix: str = "cache_metrics"
    entries_log: str = "cache_entries"
    access_log: str = "cache_access"
    metric_prefix: str = "metric"
    meta_prefix: str = "meta"
    agg_prefix: str = "agg"
    param_encoding: str = "json"  # json | plain
    scheme: str = "standard"  # standard | versioned
    version: str = "v1"
    versioned_prefix: str = "api"
    header_allowlist: tuple[str, ...] = ()


def _check_config(config: LayoutConfig) -> None:
    if config.param_encoding not in PARAM_ENCODINGS:
        raise ConfigError(
            f"layout.param_encoding is {config.param_encoding!r}; "
            f"use one of: {', '.join(PARAM_ENCODINGS)}"
        )
    if config.scheme not in SCHEMES:
        raise ConfigError(f"layout.scheme is {config.scheme!r}; use one of: {', '.join(SCHEMES)}")
    names = (
        "prefix", "tag_prefix", "dependency_prefix", "metrics_prefix", "entries_log", "access_log",
        "metric_prefix", "meta_prefix", "agg_prefix", "versioned_prefix", "version",
    )  # fmt: skip
    for name in names:
        if not getattr(config, name):
            raise ConfigError(
                f"layout.{name} is empty", hint="Remove it from the config to use the default."
            )


class Layout:
    """Every key name of one configured layout, the SCAN patterns that find them, and which
    keys belong to the cache at all.

    Keys passed in may be `str` or `bytes` (bytes need not be UTF-8); keys returned are `str`,
    ready to encode as UTF-8.

    Scheme `versioned`: entries are `{versioned_prefix}:{version}:...` of the configured version
    only; `for_version(v)` gives the layout of another generation (to retire `api:v1:*`).
    Request headers enter a versioned key only when named in `header_allowlist` (matched without
    regard to case, written with the allow-list's spelling); credential headers never do.
    """

    def __init__(self, config: LayoutConfig | None = None):
        if config is None:
            config = LayoutConfig()
        _check_config(config)
        self.config = config
        self.versioned = config.scheme == "versioned"
        self.entry_root = (
            f"{config.versioned_prefix}:{config.version}:"
            if self.versioned
            else f"{config.prefix}:"
        )
        self._allowed_headers = {
            name.lower(): name for name in config.header_allowlist if not is_secret_header(name)
        }
        roots = {
            self.entry_root: "entry",
            f"{config.tag_prefix}:": "tag",
            f"{config.dependency_prefix}:": "dependency",
            f"{config.metrics_prefix}:": "metrics",
            f"{config.metric_prefix}:": "timeseries",
            f"{config.meta_prefix}:": "timeseries",
            f"{config.agg_prefix}:": "timeseries",
            self._lock_root(): "lock",
        }
        if len(roots) < 8 or config.entries_log == config.access_log:
            raise ConfigError("two kinds of keys in the layout share one prefix or name")
        # Longest first, so a prefix nested in another (shop:api_cache in shop) still wins.
        self._roots = sorted(
            ((_as_bytes(r), k) for r, k in roots.items()), key=lambda rk: -len(rk[0])
        )
        self._logs = {
            _as_bytes(config.entries_log): "entries_log",
            _as_bytes(config.access_log): "access_log",
        }
        self._set_prefixes = {
            "tag": _as_bytes(config.tag_prefix),
            "dependency": _as_bytes(config.dependency_prefix),
        }

    def for_version(self, version: str) -> Layout:
        return Layout(dataclasses.replace(self.config, version=version))

    # keys

    def entry(
        self,
        endpoint: str,
        params: Mapping | None = None,
        *,
        user_id: Any = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        """The entry key of a call. `headers` may hold every request header: only allow-listed,
        non-credential ones enter a versioned key, and none enter a standard one."""
        if not self.versioned:
            if user_id is not None:
                raise UsageError(
                    "a user id is part of entry keys only in the versioned scheme",
                    hint="Drop the user id, or set layout.scheme: versioned.",
                )
            return _well_formed(
                f"{self.entry_root}{endpoint}:{encode_params(params, self.config.param_encoding)}"
            )
        key = f"{self.entry_root}{endpoint}"
        if user_id is not None and user_id != "":
            key += f":user_{js_string(user_id)}"
        items = _sorted_params(params)
        if items:
            key += "?" + "&".join(f"{name}={js_stringify(value)}" for name, value in items)
        kept = sorted(self.key_headers(headers).items(), key=lambda item: js_sort_key(item[0]))
        if kept:
            key += "#" + "&".join(f"{name}={value}" for name, value in kept)
        return _well_formed(key)

    def key_headers(self, headers: Mapping[str, Any] | None) -> dict[str, str]:
        """The headers that may enter a versioned key, named as the allow-list spells them."""
        return {
            self._allowed_headers[name.lower()]: js_string(value)
            for name, value in (headers or {}).items()
            if name.lower() in self._allowed_headers
        }

    def tag(self, tag: Any) -> str:
        return _well_formed(f"{self.config.tag_prefix}:{js_string(tag)}")

    def dependency(self, resource: Any) -> str:
        return _well_formed(f"{self.config.dependency_prefix}:{js_string(resource)}")

    def hits_total(self) -> tuple[str, str]:
        return f"{self.config.metrics_prefix}:hits", "total"

    def misses_total(self) -> tuple[str, str]:
        return f"{self.config.metrics_prefix}:misses", "total"

    def hits_endpoint(self, endpoint: str) -> tuple[str, str]:
        return _well_formed(f"{self.config.metrics_prefix}:hits:{endpoint}"), "count"

    def misses_endpoint(self, endpoint: str) -> tuple[str, str]:
        return _well_formed(f"{self.config.metrics_prefix}:misses:{endpoint}"), "count"

    def response_times(self) -> str:
        return f"{self.config.metrics_prefix}:response_times"

    def entries_log(self) -> str:
        return self.config.entries_log

    def access_log(self) -> str:
        return self.config.access_log

    # cachectl's own bookkeeping (not in docs/keyspace.md): both are told apart by `kind`, so no
    # listing counts them as entries or tags and no invalidation or prune deletes them.

    def pending_set(self, set_key: Key) -> Key:
        """Where `invalidate` moves a tag or dependency set while it deletes its entries
        (RENAMENX: a write that lands meanwhile goes to a fresh set). Returned as the type given.

        RENAME needs both names in one hash slot in a cluster: `{prefix}:{<set key>}:invalidating`
        (`tag:{tag:user_1}:invalidating`) hashes on the whole set key, as the set does; a set key
        with its own `{hashtag}` keeps it with `<set key>:invalidating`; a set key that hashes
        whole but cannot be wrapped (a lone `}`, an empty `{}`) gets the first
        `<set key>:invalidating:<n>` in its slot. The name depends only on the set key (a single
        server gets the same one), so a rerun finds what an interrupted run left; it stays under
        the set's own prefix, where ACL key patterns already let cachectl write.
        """
        raw = _as_bytes(set_key)
        kind = self._root_kind(raw)
        if kind not in self._set_prefixes:
            raise UsageError(f"{_as_text(set_key)!r} is not a tag or dependency set key")
        pending = _pending_name(raw, self._set_prefixes[kind])
        return pending if isinstance(set_key, bytes) else pending.decode("utf-8", "surrogatepass")

    def lock(self, entry_key: Key) -> str:
        """The stampede lock the library takes while one caller fills `entry_key`:
        `{prefix}_lock:{entry key}` (`api_cache_lock:api_cache:users:id:1`; in the versioned
        scheme `{versioned_prefix}_lock:...`). Beside the cache's prefixes, never under them."""
        return f"{self._lock_root()}{_as_text(entry_key)}"

    def _lock_root(self) -> str:
        config = self.config
        return f"{config.versioned_prefix if self.versioned else config.prefix}{LOCK_SUFFIX}"

    def metric(self, name: str) -> str:
        return _well_formed(f"{self.config.metric_prefix}:{name}")

    def meta(self, name: str) -> str:
        return _well_formed(f"{self.config.meta_prefix}:{name}")

    def agg(self, name: str, resolution: str, bucket_start_ms: int) -> str:
        if resolution not in AGG_RESOLUTIONS:
            raise UsageError(
                f"unknown resolution {resolution!r}; use one of: {', '.join(AGG_RESOLUTIONS)}"
            )
        return _well_formed(
            f"{self.config.agg_prefix}:{name}:{resolution}:{js_string(bucket_start_ms)}"
        )

    # SCAN MATCH patterns: literal parts are glob-escaped; `glob` arguments are used as given.

    def entry_pattern(self) -> str:
        return escape_glob(self.entry_root) + "*"

    def endpoint_pattern(self, endpoint: str) -> str:
        """Every entry of `endpoint`. It can also match other endpoints (`a` matches `a:b`'s
        entries; in the versioned scheme `ab`'s too): filter with `is_entry_of`."""
        head = self.entry_root + endpoint + ("" if self.versioned else ":")
        return escape_glob(_well_formed(head)) + "*"

    def tag_pattern(self, glob: str = "*") -> str:
        return escape_glob(f"{self.config.tag_prefix}:") + glob

    def dependency_pattern(self, glob: str = "*") -> str:
        return escape_glob(f"{self.config.dependency_prefix}:") + glob

    def metrics_pattern(self) -> str:
        return escape_glob(f"{self.config.metrics_prefix}:") + "*"

    def metric_pattern(self, glob: str = "*") -> str:
        return escape_glob(f"{self.config.metric_prefix}:") + glob

    def meta_pattern(self, glob: str = "*") -> str:
        return escape_glob(f"{self.config.meta_prefix}:") + glob

    def agg_pattern(self, name: str | None = None) -> str:
        head = f"{self.config.agg_prefix}:" + ("" if name is None else f"{name}:")
        return escape_glob(_well_formed(head)) + "*"

    def lock_pattern(self) -> str:
        return escape_glob(self._lock_root()) + "*"

    def owned_patterns(self) -> tuple[str, ...]:
        """Patterns that together match every key the cache owns."""
        return (
            self.entry_pattern(),
            self.tag_pattern(),
            self.dependency_pattern(),
            self.metrics_pattern(),
            self.metric_pattern(),
            self.meta_pattern(),
            self.agg_pattern(),
            self.lock_pattern(),
            escape_glob(self.config.entries_log),
            escape_glob(self.config.access_log),
        )

    # classification

    def kind(self, key: Key) -> str | None:
        """What `key` is: "entry", "tag", "dependency", "metrics", "entries_log", "access_log"
        or "timeseries" (docs/keyspace.md's keys); "pending_set" (a tag or dependency set an
        `invalidate` is draining, see `pending_set`) or "lock" (the library's stampede lock,
        see `lock`); None for a key outside the cache's prefixes."""
        raw = _as_bytes(key)
        if raw in self._logs:
            return self._logs[raw]
        kind = self._root_kind(raw)
        if kind in self._set_prefixes and PENDING_SUFFIX in raw and self._pending_origin(raw, kind):
            return "pending_set"
        return kind

    def _root_kind(self, raw: bytes) -> str | None:
        for root, kind in self._roots:
            if raw.startswith(root):
                return kind
        return None

    def _pending_origin(self, raw: bytes, kind: str) -> bytes | None:
        """The set whose pending name `raw` is, if any: the set key is read back from each form
        `pending_set` writes and the name made again from it, so a tag that merely has
        `:invalidating` in its name stays a tag."""
        prefix = self._set_prefixes[kind]
        origins = []
        head, tail = prefix + b":{", b"}" + PENDING_SUFFIX
        if raw.startswith(head) and raw.endswith(tail) and len(raw) > len(head) + len(tail):
            origins.append(raw[len(head) : -len(tail)])
        if raw.endswith(PENDING_SUFFIX):
            origins.append(raw[: -len(PENDING_SUFFIX)])
        elif numbered := _NUMBERED_PENDING.fullmatch(raw):
            origins.append(numbered.group(1))
        for origin in origins:
            if self._root_kind(origin) == kind and _pending_name(origin, prefix) == raw:
                return origin
        return None

    def pending_origin(self, key: Key) -> bytes | None:
        """The tag or dependency set key whose pending name `key` is; None if it is none."""
        raw = _as_bytes(key)
        kind = self._root_kind(raw)
        return self._pending_origin(raw, kind) if kind in self._set_prefixes else None

    def is_pending_set(self, key: Key) -> bool:
        return self.kind(key) == "pending_set"

    def owns(self, key: Key) -> bool:
        return self.kind(key) is not None

    def is_entry(self, key: Key) -> bool:
        return self.kind(key) == "entry"

    def is_entry_of(self, key: Key, endpoint: str) -> bool:
        """Whether `key` is an entry of `endpoint` (in the standard scheme, or of an endpoint
        that extends it with `:`, which a key cannot tell apart)."""
        if not self.is_entry(key):
            return False
        raw = _as_bytes(key)
        head = _as_bytes(_well_formed(self.entry_root + endpoint))
        if not raw.startswith(head):
            return False
        rest = raw[len(head) :]
        if self.versioned:
            return rest == b"" or rest.startswith((b":user_", b"?", b"#"))
        return rest.startswith(b":")

    def pattern_within_entries(self, glob: Key) -> bool:
        """Whether every key a SCAN MATCH `glob` can match is an entry: its literal start (up to
        the first wildcard) must hold the whole entry prefix. `[a]pi_cache:*` is refused."""
        return _glob_literal_prefix(_as_bytes(glob)).startswith(_as_bytes(self.entry_root))

    # parsing

    def parse_entry(self, key: Key, known_endpoints: Iterable[str] = ()) -> ParsedKey | None:
        """An entry key read back into endpoint and params, best effort; None for a key that is
        not an entry. With `known_endpoints`, the longest one that fits the key is chosen."""
        if not self.is_entry(key):
            return None
        rest = _as_text(key)[len(self.entry_root) :]
        if self.versioned:
            return self._parse_versioned(rest, _longest_first(known_endpoints))
        return self._parse_standard(rest, _longest_first(known_endpoints))

    def _parse_standard(self, rest: str, known: list[str]) -> ParsedKey:
        splits = [(e, rest[len(e) + 1 :]) for e in known if rest.startswith(e + ":")]
        if not splits:
            splits = [(rest[:i], rest[i + 1 :]) for i, c in enumerate(rest) if c == ":"]
        configured = self.config.param_encoding
        # Across all splits before the other encoding: a json key read as plain at the wrong
        # split would cut an endpoint that holds ":".
        for encoding in (configured, *(e for e in PARAM_ENCODINGS if e != configured)):
            for endpoint, raw in splits:
                params = _decode_params(raw, encoding)
                if params is not None:
                    return ParsedKey(endpoint, params, raw, encoding)
        endpoint, raw = splits[0] if splits else (rest, "")
        return ParsedKey(endpoint, None, raw, None)

    def _parse_versioned(self, rest: str, known: list[str]) -> ParsedKey:
        fits = [e for e in known if rest == e or rest.startswith((e + ":user_", e + "?", e + "#"))]
        start = len(fits[0]) if fits else 0
        cut = min(
            (i for i in (rest.find("?", start), rest.find("#", start)) if i >= 0), default=len(rest)
        )
        head, tail = rest[:cut], rest[cut:]
        at = start if fits else head.find(":user_")
        endpoint, user_part = (head, "") if at < 0 else (head[:at], head[at:])
        user_id = user_part[len(":user_") :] if user_part else None
        version = self.config.version
        params: dict[str, Any] = {}
        pos = 0
        if tail.startswith("?"):
            scanned = _scan_json_params(tail, 1, "=", "&", stop="#")
            if scanned is None:
                return ParsedKey(endpoint, None, tail[1:], None, user_id, {}, version)
            params, pos = scanned
        headers: dict[str, str] = {}
        if tail.startswith("#", pos):
            headers = dict(pair.partition("=")[::2] for pair in tail[pos + 1 :].split("&"))
        return ParsedKey(endpoint, params, tail[1:pos], "json", user_id, headers, version)
