"""A real HTTP origin for the warm tests: an aiohttp server on 127.0.0.1, run in a thread.

Each path behaves one way, so a manifest picks its behaviour by URL:
  /items/{id}             200, JSON naming the id and echoing the query
  /echo                   200, JSON of the method, query, body and headers received
  /json/{name}            200, a fixed JSON body from BODIES (number forms, key orders...)
  /slow/{id}?delay=S      answers after S seconds
  /gauge/{id}?delay=S     the same, counted apart in max_in_flight["gauge"]
  /status/{code}/{id}     that status, with a JSON body
  /flaky/{id}?fail=N      503 for the first N requests of each id, then 200
  /ratelimited/{id}       429 with Retry-After: 1 on the first request of each id, then 200
  /garbage/{id}           200 with an HTML body (not JSON)
  /broken/{id}            starts an answer, then drops the connection
  /empty/{kind}           200 with [] (kind "list"), {} ("object"), null ("null") or [1] ("full")
  /big/{n}                200, a JSON string of n bytes in all, with its Content-Length
  /bigchunked/{n}         the same, chunked (no Content-Length); `sent[kind]` counts the bytes
                          written before the client went away
  /encoded/{enc}/{n}      200, a JSON string of n bytes compressed with enc (gzip, deflate as
                          zlib, rawdeflate sent as "deflate", br: bytes that are not brotli),
                          with its Content-Encoding; `sent["encoded"]` counts compressed bytes
Every request is logged (method, path with query, headers, monotonic time) in `requests`;
`hits(path)` counts them; `max_in_flight[kind]` is the most requests of a kind (the first part of
the path) ever answered at once.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
import time
import zlib
from collections import Counter

import pytest
from aiohttp import web

BODIES = {
    # JSON.stringify writes these numbers as 1, 1e+21, 1e-7, 100000000000000000000 and 0.
    "numbers": b'{"b": 1.0, "a": [1e21, 1E-7, 1e20, -0.0, 2.50], "s": "caf\\u00e9 \\u2028"}',
    # Array-index keys come first in JavaScript, ascending; others keep their order.
    "keys": b'{"z": 1, "10": "ten", "a": 2, "2": "two"}',
    "bom": b'\xef\xbb\xbf{"ok": true}',
    "nan": b'{"x": NaN}',
}


class Origin:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict, float]] = []
        self.counts: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.sent: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Origin:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the test origin did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def reset(self) -> None:
        self.requests.clear()
        self.counts.clear()
        self.max_in_flight.clear()
        self.sent.clear()

    def hits(self, path: str) -> int:
        return sum(1 for _, p, _, _ in self.requests if p.split("?")[0] == path)

    def times(self, path: str) -> list[float]:
        return [t for _, p, _, t in self.requests if p.split("?")[0] == path]

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(runner.cleanup())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.path.strip("/").split("/")[0]
        self.in_flight[kind] += 1
        self.max_in_flight[kind] = max(self.max_in_flight[kind], self.in_flight[kind])
        try:
            return await self._answer(request)
        finally:
            self.in_flight[kind] -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            (request.method, request.path_qs, dict(request.headers), time.monotonic())
        )
        parts = request.path.strip("/").split("/")
        kind, rest = parts[0], parts[1:]
        self.counts[request.path] += 1
        seen = self.counts[request.path]
        query = dict(request.query)
        if kind == "items":
            return web.json_response({"id": rest[0], "query": query})
        if kind == "echo":
            return web.json_response(
                {
                    "method": request.method,
                    "query": query,
                    "body": body.decode(),
                    "headers": dict(request.headers),
                }
            )
        if kind == "json":
            return web.Response(body=BODIES[rest[0]], content_type="application/json")
        if kind in ("slow", "gauge"):
            await asyncio.sleep(float(query.get("delay", "2")))
            return web.json_response({"id": rest[0], "slow": True})
        if kind == "status":
            return web.json_response({"status": int(rest[0])}, status=int(rest[0]))
        if kind == "flaky":
            if seen <= int(query.get("fail", "1")):
                return web.json_response({"error": "try again"}, status=503)
            return web.json_response({"id": rest[0], "attempt": seen})
        if kind == "ratelimited":
            if seen == 1:
                return web.json_response(
                    {"error": "slow down"}, status=429, headers={"Retry-After": "1"}
                )
            return web.json_response({"id": rest[0]})
        if kind == "garbage":
            return web.Response(text="<html>maintenance</html>", content_type="text/html")
        if kind == "broken":
            request.transport.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial":')
            request.transport.close()
            return web.Response()
        if kind == "empty":
            value = {"list": [], "object": {}, "null": None, "full": [1]}[rest[0]]
            return web.Response(text=json.dumps(value), content_type="application/json")
        if kind in ("big", "bigchunked"):
            return await self._big(request, kind, int(rest[0]))
        if kind == "encoded":
            return await self._encoded(request, rest[0], int(rest[1]))
        return web.json_response({"error": "no such path"}, status=404)

    async def _big(self, request: web.Request, kind: str, size: int) -> web.StreamResponse:
        # Written a piece at a time: the test process holds no copy of a big answer.
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if kind == "big":
            response.content_length = size
        else:
            response.enable_chunked_encoding()
        await response.prepare(request)
        piece = b"x" * (64 * 1024)
        try:
            await response.write(b'"')
            left = size - 2
            while left > 0:
                await response.write(piece[:left])
                self.sent[kind] += min(len(piece), left)
                left -= len(piece)
            await response.write(b'"')
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading
        return response

    async def _encoded(self, request: web.Request, encoding: str, size: int) -> web.StreamResponse:
        body = await asyncio.to_thread(_compressed_json_string, encoding, size)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "deflate" if encoding == "rawdeflate" else encoding,
            }
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for at in range(0, len(body), 16 * 1024):
                await response.write(body[at : at + 16 * 1024])
                self.sent["encoded"] += min(16 * 1024, len(body) - at)
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading
        return response


@functools.lru_cache(maxsize=8)
def _compressed_json_string(encoding: str, size: int) -> bytes:
    """A JSON string of `size` bytes ("xxx..."), compressed a piece at a time (a bomb of a GiB
    is a few MB, never held unpacked)."""
    if encoding == "br":
        return b"not brotli at all"
    wbits = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS, "rawdeflate": -zlib.MAX_WBITS}
    packer = zlib.compressobj(1, zlib.DEFLATED, wbits[encoding])
    out = [packer.compress(b'"')]
    piece = b"x" * (1024 * 1024)
    left = size - 2
    while left > 0:
        out.append(packer.compress(piece[:left]))
        left -= len(piece)
    out.append(packer.compress(b'"'))
    out.append(packer.flush())
    return b"".join(out)


@pytest.fixture(scope="session")
def origin_server():
    server = Origin().start()
    yield server
    server.stop()


@pytest.fixture
def origin(origin_server) -> Origin:
    """The session's origin with its request log and counters cleared."""
    origin_server.reset()
    return origin_server
