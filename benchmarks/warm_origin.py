"""The benchmark's origin: an aiohttp server on 127.0.0.1 that answers every GET after a fixed
delay (20 ms by default) with a small JSON body naming the path, as an API backed by a database
would. Run by benchmarks/warm.py in its own process; prints its port on stdout when ready.

Usage: python benchmarks/warm_origin.py [--delay-ms 20] [--port 0]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys

from aiohttp import web

HEAD = b'{"path":"'
TAIL = b'","name":"Item","price":19.5,"tags":["a","b"],"stock":{"count":3,"warehouse":"east"}}'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    delay = args.delay_ms / 1000

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        body = HEAD + request.path.encode() + TAIL
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    print(sock.getsockname()[1], flush=True)
    web.run_app(app, sock=sock, access_log=None, print=lambda *a: None, backlog=1024)
    sys.exit(0)


if __name__ == "__main__":
    main()
