"""The time series' stored forms: a raw point as its sorted-set member (JSON, as JavaScript's
JSON.stringify writes it), and an hour of points as one compacted chunk.

Compacted chunks: the raw points of one hour window, older than `compact_after`, as the field
`chunk:{window_start_ms}` of `meta:{name}` with the value
`c1:{count}:{first_ms}:{last_ms}:{base64 of the body}`. The body, all integers as LEB128
varints (signed ones zigzag-encoded):
  count; the number of distinct tag texts, then each as length + UTF-8;
  the first timestamp, the first delta, then delta-of-deltas (0 for a regular interval: 1 byte);
  a value mode byte: 0 = whole numbers as signed deltas from the previous value;
    1 = doubles XORed with the previous one's bits, each written as one byte
    (leading zero bytes << 4 | trailing zero bytes; 0xFF for "same as before") and the
    remaining middle bytes;
  when there is more than one tag text, each point's tag index.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cachectl.layout import js_stringify

CHUNK_VERSION = "c1"
CHUNK_WINDOW_MS = 3_600_000  # a chunk holds the raw points of one hour
CHUNK_FIELD = "chunk:"  # its field of the meta hash: chunk:{window start ms}


# -- points ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    timestamp_ms: int
    value: float
    tags: str = "{}"  # JSON text of a tag object, as stored

    @property
    def tag_dict(self) -> dict[str, Any]:
        try:
            tags = json.loads(self.tags)
        except ValueError:
            return {}
        return tags if isinstance(tags, dict) else {}

    def to_dict(self) -> dict:
        return {"timestamp_ms": self.timestamp_ms, "value": self.value, "tags": self.tag_dict}


def encode_member(point: Point) -> str:
    value = point.value
    number: float | int = int(value) if float(value).is_integer() else value
    return js_stringify({"value": number, "timestamp": point.timestamp_ms, "tags": point.tags})


def decode_member(member: bytes | str, score: float) -> Point | None:
    """A raw member read back; None when it is not a point (it is then skipped and counted)."""
    try:
        data = json.loads(member)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    value = data.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    stamp = data.get("timestamp", score)
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)):
        stamp = score
    tags = data.get("tags", "{}")
    if isinstance(tags, dict):
        tags = js_stringify(tags)
    elif not isinstance(tags, str):
        tags = "{}"
    return Point(int(stamp), float(value), tags)


# -- chunks ------------------------------------------------------------------------------------


def _varint(n: int, out: bytearray) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _zigzag(n: int, out: bytearray) -> None:
    _varint((n << 1) if n >= 0 else ((-n << 1) - 1), out)


class _ByteCursor:
    """A compacted chunk's bytes, read forward a byte, a slice or a varint at a time."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        b = self.data[self.pos]
        self.pos += 1
        return b

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("chunk ends early")
        self.pos += n
        return chunk

    def varint(self) -> int:
        shift = result = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) if not n & 1 else -((n + 1) >> 1)


_INT_LIMIT = 2**53


def encode_chunk(points: Sequence[Point]) -> str:
    """Points (any order) as a chunk field value: `c1:{count}:{first}:{last}:{base64}`."""
    points = sorted(points, key=lambda p: p.timestamp_ms)
    body = bytearray()
    _varint(len(points), body)
    tags = list(dict.fromkeys(p.tags for p in points))
    _varint(len(tags), body)
    for text in tags:
        raw = text.encode("utf-8")
        _varint(len(raw), body)
        body += raw
    previous_ts = previous_delta = 0
    for i, p in enumerate(points):
        if i == 0:
            _zigzag(p.timestamp_ms, body)
        else:
            delta = p.timestamp_ms - previous_ts
            _zigzag(delta if i == 1 else delta - previous_delta, body)
            previous_delta = delta
        previous_ts = p.timestamp_ms
    whole = all(float(p.value).is_integer() and abs(p.value) < _INT_LIMIT for p in points)
    body.append(0 if whole else 1)
    previous_bits = previous_int = 0
    for p in points:
        if whole:
            value = int(p.value)
            _zigzag(value - previous_int, body)
            previous_int = value
            continue
        bits = struct.unpack(">Q", struct.pack(">d", p.value))[0]
        xor = bits ^ previous_bits
        previous_bits = bits
        if xor == 0:
            body.append(0xFF)
            continue
        raw = xor.to_bytes(8, "big")
        lead = len(raw) - len(raw.lstrip(b"\0"))
        trail = len(raw) - len(raw.rstrip(b"\0"))
        body.append(lead << 4 | trail)
        body += raw[lead : 8 - trail]
    if len(tags) > 1:
        index = {text: i for i, text in enumerate(tags)}
        for p in points:
            _varint(index[p.tags], body)
    first, last = (points[0].timestamp_ms, points[-1].timestamp_ms) if points else (0, 0)
    encoded = base64.b64encode(bytes(body)).decode("ascii")
    return f"{CHUNK_VERSION}:{len(points)}:{first}:{last}:{encoded}"


@dataclass(frozen=True)
class ChunkHeader:
    count: int
    first_ms: int
    last_ms: int


def chunk_header(value: bytes | str) -> ChunkHeader | None:
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    parts = text.split(":", 4)
    if len(parts) != 5 or parts[0] != CHUNK_VERSION:
        return None
    try:
        return ChunkHeader(int(parts[1]), int(parts[2]), int(parts[3]))
    except ValueError:
        return None


def decode_chunk(value: bytes | str) -> list[Point]:
    """A chunk field value back into its points; ValueError when it does not read."""
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    header = chunk_header(text)
    if header is None:
        raise ValueError("not a chunk")
    try:
        cursor = _ByteCursor(base64.b64decode(text.split(":", 4)[4], validate=True))
        count = cursor.varint()
        tags = [cursor.take(cursor.varint()).decode("utf-8") for _ in range(cursor.varint())]
        stamps: list[int] = []
        delta = 0
        for i in range(count):
            if i == 0:
                stamps.append(cursor.zigzag())
            else:
                delta = cursor.zigzag() if i == 1 else delta + cursor.zigzag()
                stamps.append(stamps[-1] + delta)
        mode = cursor.byte()
        values: list[float] = []
        previous = 0
        for _ in range(count):
            if mode == 0:
                previous += cursor.zigzag()
                values.append(float(previous))
                continue
            control = cursor.byte()
            if control != 0xFF:
                lead, trail = control >> 4, control & 0x0F
                middle = cursor.take(8 - lead - trail)
                previous ^= int.from_bytes(b"\0" * lead + middle + b"\0" * trail, "big")
            values.append(struct.unpack(">d", previous.to_bytes(8, "big"))[0])
        indexes = [cursor.varint() for _ in range(count)] if len(tags) > 1 else [0] * count
        if count != header.count or cursor.pos != len(cursor.data):
            raise ValueError("its length does not match its header")
        return [Point(t, v, tags[i]) for t, v, i in zip(stamps, values, indexes)]
    except (IndexError, UnicodeDecodeError, struct.error, ValueError, OverflowError) as exc:
        raise ValueError(f"chunk does not read: {exc}") from None
