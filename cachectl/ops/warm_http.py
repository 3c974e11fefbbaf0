"""Asking the origin: one aiohttp session with keep-alive, a global and a per-host connection limit,
per-endpoint concurrency and rate limits, and retries with exponential backoff, jitter and
Retry-After.

aiohttp is imported when a Fetcher is opened, never at import time: `cachectl --help` and the
commands that do not fetch never load it.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from cachectl import __version__
from cachectl.durations import format_size
from cachectl.layout import STRICT_JSON, js_stringify, reject_json_constant

if TYPE_CHECKING:
    from cachectl.manifest import Endpoint, PlannedRequest

BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 10.0
# A Retry-After longer than this is cut to it: a warm job should not sleep for an hour on one word
# from the origin. The wait still holds every request to that host.
MAX_RETRY_AFTER_SECONDS = 60.0
FALLBACK_ANSWER_MAX_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024
# Answer bytes held at once by all the requests being read. Past it, only the request holding
# the most goes on reading (so one always progresses: it ends or passes its limit and lets go)
# and the others wait: 50 answers streaming towards an 8 MiB limit hold about this plus one
# limit, not 50 x 8 MiB.
BODY_BUFFER_BUDGET_BYTES = 64 * 1024 * 1024
USER_AGENT = f"cachectl/{__version__} (cache warm)"
# The encodings asked for, and unpacked by cachectl itself (aiohttp's own unpacking is off: before
# 3.10 or so it unpacked a chunk whole, so a few MB of gzip could take gigabytes).
ACCEPT_ENCODING = "gzip, deflate"

_RETRIED_STATUSES = {408, 429}


@dataclass(slots=True)
class FetchOutcome:
    """What came of one entry's request, after its retries (and its fallback, if asked)."""

    kind: (
        str  # "ok" (value holds the parsed JSON, text what the entry stores), "skipped" or "failed"
    )
    reason: str | None  # why skipped or failed: "cache_if", "empty", "timeout", "http_500"...
    status: int | None  # the last HTTP status, None when no answer came
    latency_ms: float | None  # the last attempt's time to a full answer
    bytes: int  # the last answer's body size
    attempts: int
    value: Any = None
    error: str | None = None
    fallback: dict | None = None
    text: bytes | None = None  # JSON.stringify(value) as UTF-8, for "ok"


class AsyncPacer:
    """Spaces requests evenly at `rate` a second, no burst: each take() reserves the next slot."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self._next = 0.0

    async def take(self) -> None:
        now = asyncio.get_running_loop().time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def backoff_seconds(attempt: int) -> float:
    """Full jitter: a random wait up to base * 2**attempt, capped (attempt counts from 0)."""
    return random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait (delta-seconds or an HTTP date), capped; None if unreadable."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if math.isnan(seconds):
        return None
    return max(0.0, min(seconds, MAX_RETRY_AFTER_SECONDS))


def parse_json_body(body: bytes) -> tuple[bool, Any]:
    """(True, value) when the body is one JSON text as JavaScript's JSON.parse reads it (UTF-8,
    an initial BOM ignored as fetch's .json() does, no NaN), else (False, None)."""
    try:
        return True, STRICT_JSON.decode(body.decode("utf-8").removeprefix("\ufeff"))
    except (UnicodeDecodeError, ValueError):
        return False, None


# ---- the text stored for an answer ---------------------------------------------------------------
#
# An entry holds JSON.stringify(JSON.parse(body)) (docs/keyspace.md); js_stringify writes it in pure
# Python. Python's C encoder, compact and with ensure_ascii off, writes the very same text for
# most answers: strings are escaped alike (the short escapes, \u00XX for other control
# characters, nothing else), and so are true, false, null, arrays and the order of object keys as
# JSON.parse leaves them. It differs only on
# - numbers: an integer beyond 2**53 (JavaScript rounds it to a double), a float that is integral
#   (2.0 is "2") or outside 1e-4 <= |x| < 1e16 (where repr and Number::toString pick different
#   notations);
# - object keys that are array indexes ("10"), which JavaScript puts first, in ascending order;
# - lone surrogates (from \ud800 escapes), which JSON.stringify escapes.
# The quick path spots each of these and leaves such answers to js_stringify.

_SAFE_INTEGER = 2**53


class _NeedsJsForm(Exception):
    """A number that JSON.stringify writes otherwise than Python's json module."""


def _plain_int(text: str) -> int:
    value = int(text)
    if -_SAFE_INTEGER <= value <= _SAFE_INTEGER:
        return value
    raise _NeedsJsForm


def _plain_float(text: str) -> float:
    value = float(text)
    if 1e-4 <= abs(value) < 1e16 and not value.is_integer():
        return value  # repr and Number::toString both write the shortest digits, in fixed notation
    raise _NeedsJsForm


_QUICK_JSON = json.JSONDecoder(
    parse_int=_plain_int, parse_float=_plain_float, parse_constant=reject_json_constant
)
_COMPACT = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False
)
try:  # the C encoder JSONEncoder.encode builds afresh on every call, built once
    from json.encoder import c_make_encoder as _c_make_encoder
    from json.encoder import encode_basestring as _encode_basestring

    _compact_chunks = _c_make_encoder(
        None, _COMPACT.default, _encode_basestring, None, ":", ",", False, False, False
    )

    def _compact_text(value: Any) -> str:
        return "".join(_compact_chunks(value, 0))

except (ImportError, TypeError):  # no C accelerator
    _compact_text = _COMPACT.encode
# An array-index key as the compact text writes it (larger numbers match too: they only take the
# slow path). Inside a string every quote is escaped, so a digit followed by `":` ends a key.
_INDEX_KEY = re.compile(r'"(?:0|[1-9][0-9]*)":')


def stored_json(body: bytes) -> tuple[bool, Any, bytes]:
    """(True, value, text) when the body is JSON (as parse_json_body reads it): `text` is what
    the entry holds, JSON.stringify(value) in UTF-8 (docs/keyspace.md). (False, None, b"") else,
    and for an answer nested too deeply for Python to read or write (hundreds of levels): it is
    failed as not JSON instead of stopping the run."""
    try:
        return _stored_json(body)
    except RecursionError:
        return False, None, b""


def _stored_json(body: bytes) -> tuple[bool, Any, bytes]:
    try:
        text = body.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return False, None, b""
    try:
        value = _QUICK_JSON.decode(text)
    except _NeedsJsForm:
        ok, value = parse_json_body(body)
        return (True, value, js_stringify(value).encode()) if ok else (False, None, b"")
    except ValueError:
        return False, None, b""
    compact = _compact_text(value)
    if _INDEX_KEY.search(compact) is None:
        try:
            return True, value, compact.encode()
        except UnicodeEncodeError:  # a lone surrogate
            pass
    return True, value, js_stringify(value).encode()


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


class _Attempt:
    """One HTTP exchange, read whole: status, body, Retry-After, or the error that ended it."""

    __slots__ = (
        "body",
        "content_type",
        "error",
        "latency_ms",
        "reason",
        "reason_phrase",
        "retry_after",
        "status",
    )

    def __init__(self) -> None:
        self.status: int | None = None
        self.reason_phrase = ""
        self.body = b""
        self.retry_after: float | None = None
        self.error: str | None = None
        self.reason: str | None = None
        self.latency_ms: float | None = None
        self.content_type = ""


class Fetcher:
    """Fetches planned requests; open it with `async with`.

    `on_latency(ms)` is called for every attempt that got a full HTTP answer, so percentiles
    describe the origin, not the retries. `scrub` masks secrets in error texts.
    """

    def __init__(
        self,
        *,
        concurrency: int,
        per_host: int | None = None,
        rate: float | None = None,
        scrub: Callable[[str], str] = lambda s: s,
        on_latency: Callable[[float], None] = lambda ms: None,
        max_response_bytes: int | None = None,
    ):
        self.concurrency = concurrency
        # The run's limit (--max-response-bytes) over every endpoint's; None: each endpoint's own
        # (its manifest's default), else DEFAULT_MAX_RESPONSE_BYTES.
        self.max_response_bytes = max_response_bytes
        self._held: dict[int, int] = {}  # a body being read -> the bytes it holds
        self._held_total = 0
        self._released: asyncio.Condition | None = None
        self.per_host = per_host
        self.global_pacer = AsyncPacer(rate) if rate else None
        self.scrub = scrub
        self.on_latency = on_latency
        self._limits: dict[Endpoint, tuple[asyncio.Semaphore | None, AsyncPacer | None, Any]] = {}
        self._paused_until: dict[str, float] = {}
        self._session = None

    async def __aenter__(self) -> Fetcher:  # noqa: PYI034 -- py310 has no typing.Self
        import aiohttp
        import yarl

        self._aiohttp = aiohttp
        self._url = yarl.URL
        self._released = asyncio.Condition()
        connector = aiohttp.TCPConnector(
            limit=self.concurrency, limit_per_host=self.per_host or 0, ttl_dns_cache=300
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # no answer may change what the next request sends
            headers={
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Accept-Encoding": ACCEPT_ENCODING,
            },
            auto_decompress=False,  # unpacked in _read_within, counted against the limit
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    def _limits_of(self, endpoint: Endpoint):
        limits = self._limits.get(endpoint)
        if limits is None:
            limits = self._limits[endpoint] = (
                asyncio.Semaphore(endpoint.concurrency) if endpoint.concurrency else None,
                AsyncPacer(endpoint.rate) if endpoint.rate else None,
                self._aiohttp.ClientTimeout(total=endpoint.timeout_seconds),
            )
        return limits

    async def fetch(self, request: PlannedRequest) -> FetchOutcome:
        endpoint = request.endpoint
        semaphore, pacer, timeout = self._limits_of(endpoint)
        if semaphore is None:
            outcome = await self._fetch(request, pacer, timeout)
        else:
            async with semaphore:
                outcome = await self._fetch(request, pacer, timeout)
        if outcome.kind == "failed" and request.fallback_url:
            outcome.fallback = await self._fallback(request, pacer, timeout)
        return outcome

    async def _fetch(self, request: PlannedRequest, pacer, timeout) -> FetchOutcome:
        endpoint = request.endpoint
        attempts = 0
        while True:
            attempt = await self._attempt(request.url, endpoint, pacer, timeout)
            attempts += 1
            outcome, retry = self._judge(attempt, endpoint, attempts)
            if not retry or attempts > endpoint.retries:
                return outcome
            wait = backoff_seconds(attempts - 1)
            if attempt.retry_after is not None:
                wait = max(wait, attempt.retry_after)
            await asyncio.sleep(wait)

    def _judge(
        self, attempt: _Attempt, endpoint: Endpoint, attempts: int
    ) -> tuple[FetchOutcome, bool]:
        """The outcome of an attempt, and whether it is worth another."""

        def outcome(kind: str, reason: str | None, value: Any = None, error: str | None = None):
            return FetchOutcome(
                kind, reason, attempt.status, attempt.latency_ms, len(attempt.body), attempts,
                value, error,
            )  # fmt: skip

        if attempt.status is None:
            retry = attempt.reason not in ("redirects", "invalid_request", "too_large")
            return outcome("failed", attempt.reason, error=attempt.error), retry
        status = attempt.status
        if not 200 <= status <= 299:
            error = f"HTTP {status} {attempt.reason_phrase}".rstrip()
            retry = status in _RETRIED_STATUSES or status >= 500
            return outcome("failed", f"http_{status}", error=error), retry
        if isinstance(endpoint.cache_if, frozenset) and status not in endpoint.cache_if:
            return outcome("skipped", "cache_if"), False
        ok, value, text = stored_json(attempt.body)
        if not ok:
            kind = attempt.content_type or "no content type"
            error = f"the answer is not JSON ({kind}, {len(attempt.body)} bytes)"
            return outcome("failed", "not_json", error=error), True
        if endpoint.cache_if == "non_empty" and _is_empty(value):
            return outcome("skipped", "empty"), False
        ok_outcome = outcome("ok", None, value=value)
        ok_outcome.text = text
        return ok_outcome, False

    async def _attempt(self, url: str, endpoint: Endpoint, pacer, timeout) -> _Attempt:
        aiohttp = self._aiohttp
        attempt = _Attempt()
        target = self._url(url, encoded=True)  # already percent-encoded by the plan
        if self._paused_until:  # some host asked to wait (Retry-After)
            paused = self._paused_until.get(target.host or "", 0.0) - time.monotonic()
            if paused > 0:
                await asyncio.sleep(paused)
        if self.global_pacer:
            await self.global_pacer.take()
        if pacer:
            await pacer.take()
        started = time.perf_counter()
        try:
            async with self._session.request(
                endpoint.method,
                target,
                headers=endpoint.headers,
                data=endpoint.body,
                timeout=timeout,
            ) as response:
                limit = self._response_limit(endpoint)
                attempt.body = await self._read_within(response, limit)
                if attempt.body is None:
                    # Not read further, never stored: a bigger answer is a failure of its own.
                    attempt.body = b""
                    attempt.reason = "too_large"
                    attempt.error = (
                        f"the answer is larger than {format_size(limit)}, the response size "
                        "limit (max_response_bytes, --max-response-bytes)"
                    )
                    attempt.latency_ms = (time.perf_counter() - started) * 1000
                    return attempt
                attempt.status = response.status
                attempt.reason_phrase = response.reason or ""
                attempt.content_type = response.headers.get("Content-Type", "")
                attempt.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            attempt.reason = "timeout"
            attempt.error = f"no answer within {endpoint.timeout_seconds:g}s"
        except aiohttp.TooManyRedirects:
            attempt.reason, attempt.error = "redirects", "too many redirects"
        except (aiohttp.InvalidURL, ValueError) as exc:
            # aiohttp refuses to build the request (a bad URL, clashing credentials): no retry
            # can change that.
            attempt.reason, attempt.error = "invalid_request", self._text(exc)
        except (aiohttp.ClientConnectorError, ConnectionRefusedError) as exc:
            attempt.reason, attempt.error = "connect", self._text(exc)
        except _BadEncoding as exc:
            attempt.reason, attempt.error = "bad_answer", str(exc)
        except (aiohttp.ClientError, OSError) as exc:
            # Dropped mid-answer, or an answer that is not HTTP at all.
            attempt.reason, attempt.error = "bad_answer", self._text(exc)
        if attempt.status is not None:
            attempt.latency_ms = (time.perf_counter() - started) * 1000
            self.on_latency(attempt.latency_ms)
            if attempt.retry_after and attempt.status in (429, 503):
                # Hold every request to this host, not only this one: the origin asked to wait.
                host, until = target.host or "", time.monotonic() + attempt.retry_after
                self._paused_until[host] = max(self._paused_until.get(host, 0.0), until)
        return attempt

    async def _read_within(self, response: Any, limit: int) -> bytes | None:
        """The whole body, unpacked (gzip, deflate), or None as soon as it proves larger than
        `limit`: a Content-Length over it is refused before a byte is read, a chunked or packed
        answer once `limit` bytes have come or been unpacked (never more than that held). Either
        way the connection is closed, so the rest is never read. _BadEncoding for an encoding
        not asked for, or packed bytes that do not unpack."""
        length = response.content_length
        if length is not None and length > limit:
            response.close()
            return None
        unpack = _Unpacker.of(response.headers.get("Content-Encoding", ""))
        reader = id(response)
        self._held[reader] = 0
        chunks: list[bytes] = []
        size = 0
        read = 0
        try:
            while True:
                if self._held_total > BODY_BUFFER_BUDGET_BYTES:
                    await self._room_for(reader)
                chunk = await response.content.read(_READ_CHUNK)
                if not chunk:
                    if unpack is not None and read:
                        unpack.finish()
                    return b"".join(chunks)
                read += len(chunk)
                pieces = [chunk] if unpack is None else unpack.feed(chunk, limit - size + 1)
                for piece in pieces:
                    size += len(piece)
                    if size > limit or read > limit:
                        response.close()
                        return None
                    chunks.append(piece)
                    self._held[reader] = size
                    self._held_total += len(piece)
        finally:
            self._held_total -= self._held.pop(reader)
            async with self._released:
                self._released.notify_all()

    async def _room_for(self, reader: int) -> None:
        """Waits while the bodies being read hold more than the budget and another holds more
        than this one."""

        def may_read() -> bool:
            return self._held_total <= BODY_BUFFER_BUDGET_BYTES or self._held[reader] >= max(
                self._held.values()
            )

        async with self._released:
            await self._released.wait_for(may_read)

    def _response_limit(self, endpoint: Endpoint) -> int:
        from cachectl.manifest import DEFAULT_MAX_RESPONSE_BYTES

        return (
            self.max_response_bytes
            or getattr(endpoint, "max_response_bytes", None)
            or DEFAULT_MAX_RESPONSE_BYTES
        )

    async def _fallback(self, request: PlannedRequest, pacer, timeout) -> dict:
        from cachectl.manifest import mask_query_secrets

        attempt = await self._attempt(request.fallback_url, request.endpoint, pacer, timeout)
        answer: dict[str, Any] = {
            "url": self.scrub(mask_query_secrets(request.fallback_url)),
            "status": attempt.status,
            "latency_ms": _round(attempt.latency_ms),
            "bytes": len(attempt.body),
            "error": attempt.error,
        }
        if attempt.status is not None:
            ok, value = parse_json_body(attempt.body)
            if not ok:
                answer["error"] = "the answer is not JSON"
            elif len(attempt.body) > FALLBACK_ANSWER_MAX_BYTES:
                answer["error"] = (
                    f"the answer is over {FALLBACK_ANSWER_MAX_BYTES // 1024} KiB: left out"
                )
            else:
                answer["answer"] = value
        return answer

    def _text(self, exc: BaseException) -> str:
        return self.scrub(" ".join(str(exc).split()) or type(exc).__name__)


class _BadEncoding(Exception):
    """An answer packed otherwise than asked, or whose packed bytes do not unpack."""


class _Unpacker:
    """Unpacks a gzip or deflate body a piece at a time, never more than asked at once (zlib's
    max_length): a bomb costs what the limit allows, not what it packs."""

    def __init__(self, encoding: str, wbits: int) -> None:
        self.encoding = encoding
        self.wbits = wbits
        self._zlib: Any = None

    @classmethod
    def of(cls, header: str) -> _Unpacker | None:
        encoding = header.strip().lower()
        if encoding in ("", "identity"):
            return None
        if encoding in ("gzip", "x-gzip"):
            return cls(encoding, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":
            return cls(encoding, zlib.MAX_WBITS)  # zlib-wrapped, or raw (told by the 1st byte)
        raise _BadEncoding(
            f"the answer is encoded as {header.strip()[:40]!r}, not asked for "
            f"(Accept-Encoding: {ACCEPT_ENCODING})"
        )

    def feed(self, data: bytes, most: int) -> list[bytes]:
        """What `data` unpacks to, stopping once `most` bytes have come out (the caller's
        limit is then passed; the rest is never unpacked)."""
        if self._zlib is None:
            # A "deflate" answer is meant to be zlib-wrapped; some servers send it raw.
            raw = self.wbits == zlib.MAX_WBITS and data[0] & 0x0F != 8
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS if raw else self.wbits)
        out: list[bytes] = []
        try:
            while most > 0 and not self._zlib.eof:
                piece = self._zlib.decompress(data, min(most, _READ_CHUNK))
                data = self._zlib.unconsumed_tail
                out.append(piece)
                most -= len(piece)
                if not data and len(piece) < _READ_CHUNK:
                    break
        except zlib.error as exc:
            raise _BadEncoding(f"the answer's {self.encoding} encoding is broken: {exc}") from None
        return out

    def finish(self) -> None:
        if self._zlib is None or not self._zlib.eof:
            raise _BadEncoding(f"the answer's {self.encoding} encoding is cut short")


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 2)
