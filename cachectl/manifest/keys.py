"""No two requests of a plan write one key (`Plan.check_unique_keys`, run by `manifest validate`
and by `warm` before anything is fetched).

Two requests that write one key (an endpoint defined twice, a matrix value repeated, `1` and
`1.0`, two templates giving the same params) would store one answer over the other, and a warm
would count both as stored. The plan is refused instead (exit 3), naming both places.

Most endpoints are proven free of repeats without expanding them: an endpoint whose name is
shared with no other (nor extended by another's with the separator that follows a name in
a key: `items` and `items:v2`) writes keys no other endpoint writes, and its
key is its matrix values between fixed text, so two of its requests share a key only when a
matrix param repeats a value (as the key encodes it), provided no value holds the separator
that follows it in the key (`|`; `&` or `#` in the versioned scheme). So only each matrix
param's values are read (a range of safe integers not even that): a range of a billion costs
nothing. Other endpoints (names shared, a separator in a value, a layout of its own) are
checked request by request, reading every key once (`Endpoint.keys`, the key alone).

Either way, texts are checked by their 64-bit hash: Python's own string hash (SipHash, seeded
per process), 8 bytes a text in arrays split by the low byte. Up to KEY_CHECK_HASHES_IN_MEMORY
of them are held in memory (32 MB); beyond, they are appended to files in a temporary directory
(8 bytes a text on disk, removed on every way out): memory stays bounded and no text goes
unchecked. Time and disk are bounded by the key_check limit (InputLimits, CACHECTL_MAX_KEY_CHECK):
a plan with more keys to check one by one is refused before any is worked out. A hash seen twice is confirmed in a second pass against the
texts themselves, so two different keys sharing a hash (about n^2 / 2^65: one chance in 3.7
million for 10 million keys) never refuse a plan.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

from cachectl.errors import BadInputError, ManifestError
from cachectl.keytext import show_bytes
from cachectl.layout import Layout, js_stringify, well_formed
from cachectl.manifest.fastpath import (
    _compile_key,
    _fast_path_applies,
    _json_value_fast,
    _plain_value_fast,
)
from cachectl.manifest.model import Endpoint, RangeValues, Source, _product
from cachectl.manifest.templates import _SAFE_INTEGER
from cachectl.yamlsrc import LIMIT_SETTINGS, InputLimits

if TYPE_CHECKING:
    from cachectl.manifest.plan import Plan

KEY_CHECK_HASHES_IN_MEMORY = 4_000_000
KEY_CHECK_LISTED = 20  # repeated keys listed in the error (the count says how many in all)
KEY_CHECK_CONFIRMED = 1000  # repeated hashes confirmed against the texts in the second pass
_HASH_BUCKETS = 256
_TEXT_CHUNK = 65536
_text_hash = hash  # replaced in tests to force collisions


@dataclass(frozen=True)
class KeyPlace:
    """One request of a plan: the endpoint that gives it and its matrix combination."""

    endpoint: Endpoint
    combo: tuple

    def describe(self) -> str:
        e = self.endpoint
        values = ", ".join(
            f"{name}={_shortened(js_stringify(value))}"
            for (name, _), value in zip(e.matrix, self.combo)
        )
        return (
            f"{e.file}:{e.line}: endpoints[{e.index}] ({e.name}{', ' + values if values else ''})"
        )


def _shortened(text: str, limit: int = 40) -> str:
    text = show_bytes(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


Repeat = tuple[str, KeyPlace, KeyPlace]  # a key, the first request writing it, a later one


def find_duplicate_keys(plan: Plan) -> tuple[list[Repeat], int]:
    """The keys that two requests of the plan write, each with its first and a later place (at
    most KEY_CHECK_LISTED), and how many requests write a key another one writes. A plan whose
    keys checked one by one would number more than the key_check limit is refused first."""
    limit = InputLimits.from_env().key_check
    groups = _groups_that_may_share_keys(plan.endpoints, plan.layout)
    # The endpoints surely checked key by key (their count is known without reading a key):
    # refused before any work when past the limit.
    by_request = [g for g in groups if len(g) > 1 or not _fast_path_applies(g[0], plan.layout)]
    _check_key_count([e for g in by_request for e in g], limit)
    found: list[Repeat] = []
    total = 0
    for group in groups:
        if len(group) == 1:
            proven = _repeats_by_construction(group[0], plan.layout)
            if proven is not None:
                repeats, count = proven
                found += repeats
                total += count
                continue
            if not any(group is g for g in by_request):
                by_request.append(group)  # not provable after all: counted with the others
                _check_key_count([e for g in by_request for e in g], limit)
        repeats, count = _repeats_request_by_request(group, plan.layout)
        found += repeats
        total += count
    return found[:KEY_CHECK_LISTED], total


def _check_key_count(endpoints: list[Endpoint], limit: int) -> None:
    count = sum(e.count for e in endpoints)
    if count <= limit:
        return
    names = ", ".join(dict.fromkeys(_shortened(e.name) for e in endpoints))
    var = LIMIT_SETTINGS["key_check"]
    raise ManifestError(
        f"cannot check the plan for keys written twice: endpoints {names} would have "
        f"{count:,} keys checked one by one, over {var}={limit:,}",
        hint=f"split the plan, give the endpoints names that are not extensions of one another, "
        f"or raise {var}: each key checked costs about 1 µs and 8 bytes of TMPDIR",
    )


def _groups_that_may_share_keys(
    endpoints: Sequence[Endpoint], layout: Layout
) -> list[list[Endpoint]]:
    """Endpoints whose keys may meet: one name, or a name that is another's and the separator
    after it in a key (`a` and `a:b` may write one key; `a` and `ab`, or `a` and `b`, cannot)."""
    groups: list[list[Endpoint]] = []
    for endpoint in endpoints:
        joined = [g for g in groups if any(_names_meet(endpoint.name, e.name, layout) for e in g)]
        merged = [e for g in joined for e in g] + [endpoint]
        groups = [g for g in groups if not any(g is j for j in joined)] + [merged]
    return groups


def _names_meet(a: str, b: str, layout: Layout) -> bool:
    if a == b:
        return True
    short, long = sorted((a, b), key=len)
    # A standard key goes on after the name with ":", a versioned one with "?", "#" or ":user_".
    after = ("?", "#", ":") if layout.versioned else (":",)
    return long.startswith(short) and long[len(short) : len(short) + 1] in after


def _repeats_by_construction(endpoint: Endpoint, layout: Layout) -> tuple[list[Repeat], int] | None:
    """The repeats of one endpoint read from its matrix params' values alone, or None when its
    keys cannot be told apart that way (then each request's key is read)."""
    if not _fast_path_applies(endpoint, layout):
        return None
    if layout.versioned:
        encode, separators = _json_value_fast, ("&", "#")
    elif layout.config.param_encoding == "json":
        encode, separators = _json_value_fast, ("|",)
    else:
        encode, separators = _plain_value_fast, ("|",)
    per_param: list[tuple[int, list[tuple[int, int]], int]] = []  # (values, repeats, extra)
    for _, source in endpoint.matrix:
        if (
            isinstance(source, RangeValues)
            and source.start > -_SAFE_INTEGER
            and source.end < _SAFE_INTEGER
        ):
            per_param.append((len(source), [], 0))  # distinct integers, digits and "-"
            continue

        def texts(source=source) -> Iterator[str]:
            for value in source:
                text = well_formed(encode(value))
                if any(sep in text for sep in separators):
                    raise _NotProvable
                yield text

        try:
            pairs, extra = _repeated_texts(texts)
        except _NotProvable:
            return None
        per_param.append((len(source), [(i, j) for _, i, j in pairs], extra))
    distinct_keys = math.prod(n - extra for n, _, extra in per_param)
    total = endpoint.count - distinct_keys
    if not total:
        return [], 0
    key_of = _compile_key(endpoint, layout)
    first = tuple(next(iter(source)) for _, source in endpoint.matrix)
    found: list[Repeat] = []
    for d, (_, pairs, _) in enumerate(per_param):
        source = endpoint.matrix[d][1]
        for i, j in pairs[: KEY_CHECK_LISTED - len(found)]:
            a = (*first[:d], _nth(source, i), *first[d + 1 :])
            b = (*first[:d], _nth(source, j), *first[d + 1 :])
            found.append((key_of(a), KeyPlace(endpoint, a), KeyPlace(endpoint, b)))
    return found, total


class _NotProvable(Exception):
    pass


def _nth(source: Source, index: int) -> Any:
    return next(islice(iter(source), index, None))


def _repeats_request_by_request(
    endpoints: list[Endpoint], layout: Layout
) -> tuple[list[Repeat], int]:
    def keys() -> Iterator[str]:
        for endpoint in endpoints:
            yield from endpoint.keys(layout)

    def places() -> Iterator[KeyPlace]:
        for endpoint in endpoints:
            for combo in _product([source for _, source in endpoint.matrix]):
                yield KeyPlace(endpoint, combo)

    pairs, total = _repeated_texts(keys)
    if not pairs:
        return [], total
    wanted = {i for _, first, later in pairs for i in (first, later)}
    at = {i: place for i, place in enumerate(places()) if i in wanted}
    return [(key, at[i], at[j]) for key, i, j in pairs], total


def _repeated_texts(
    texts: Callable[[], Iterator[str]],
) -> tuple[list[tuple[str, int, int]], int]:
    """The texts `texts()` gives more than once: up to KEY_CHECK_LISTED (text, index of its
    first, index of a later), and how many texts repeat one before. `texts` is called again
    to confirm what the hashes found."""
    hashes, total = _repeated_hashes(texts())
    if not hashes:
        return [], 0
    firsts: dict[int, dict[str, int]] = {h: {} for h in hashes}
    found: list[tuple[str, int, int]] = []
    confirmed = hits = 0
    for index, text in enumerate(texts()):
        seen = firsts.get(_text_hash(text))
        if seen is None:
            continue
        hits += 1
        if text not in seen:
            seen[text] = index
            continue
        confirmed += 1
        if len(found) < KEY_CHECK_LISTED:
            found.append((text, seen[text], index))
    if not found:
        return [], 0
    # The repeats of hashes not confirmed (past KEY_CHECK_CONFIRMED) are counted as they are:
    # that many shared 64-bit hashes are repeated texts, not collisions.
    return found, confirmed + max(0, total - (hits - len(hashes)))


def _repeated_hashes(texts: Iterator[str]) -> tuple[set[int], int]:
    """Up to KEY_CHECK_CONFIRMED hashes that more than one text has, and how many texts repeat
    a hash seen before."""
    buckets = [array("q") for _ in range(_HASH_BUCKETS)]
    mask = _HASH_BUCKETS - 1
    held = 0
    hash_of = _text_hash
    # A with-block: the folder is removed on every way out, an error, Ctrl-C, or SIGTERM turned
    # into KeyboardInterrupt by the command (cachectl.signals.sigterm_as_interrupt).
    with contextlib.ExitStack() as stack:
        spill: str | None = None
        try:
            while chunk := list(islice(texts, _TEXT_CHUNK)):
                for h in map(hash_of, chunk):
                    buckets[h & mask].append(h)
                held += len(chunk)
                if held >= KEY_CHECK_HASHES_IN_MEMORY:
                    if spill is None:
                        spill = stack.enter_context(
                            tempfile.TemporaryDirectory(
                                prefix="cachectl-keycheck-", ignore_cleanup_errors=True
                            )
                        )
                    for i, bucket in enumerate(buckets):
                        if bucket:
                            with open(os.path.join(spill, str(i)), "ab") as fh:
                                bucket.tofile(fh)
                            buckets[i] = array("q")
                    held = 0
            repeated: set[int] = set()
            total = 0
            for i, bucket in enumerate(buckets):
                if spill is not None and os.path.exists(os.path.join(spill, str(i))):
                    with open(os.path.join(spill, str(i)), "rb") as fh:
                        on_disk = array("q", fh.read())
                    on_disk.extend(bucket)
                    bucket = on_disk
                distinct = set(bucket)
                if len(distinct) == len(bucket):
                    continue
                total += len(bucket) - len(distinct)
                seen: set[int] = set()
                for h in bucket:
                    if h in seen and len(repeated) < KEY_CHECK_CONFIRMED:
                        repeated.add(h)
                    seen.add(h)
            return repeated, total
        except OSError as exc:
            raise BadInputError(
                f"cannot check the plan for keys written twice: the key hashes could not be "
                f"kept in {spill or tempfile.gettempdir()}: {exc.strerror or exc}",
                hint="free space there, or point TMPDIR at a directory with room (8 bytes a key)",
            ) from None


def check_unique_keys(plan: Plan) -> None:
    """A ManifestError (exit 3) when two requests of the plan write one key, naming both."""
    found, total = find_duplicate_keys(plan)
    if not found:
        return
    problems = [
        f"{first.describe()} and {later.describe()} write the same key {show_bytes(key)}"
        for key, first, later in found
    ]
    if total > len(found):
        problems.append(f"... and {total - len(found):,} more requests write a key written before")
    subject = "the manifest" if len(plan.files) == 1 else "the manifests"
    message = (
        problems[0]
        if total == 1
        else f"{subject}: {total:,} requests write a key another one writes, the first: "
        f"{problems[0]}"
    )
    hint = (
        "one answer would overwrite the other: remove the repeated value, or tell the endpoints "
        "apart by name or params"
    )
    raise ManifestError(message, problems=problems, hint=hint)
