"""A delay proxy: a chosen round-trip time between a client and a TCP server, on this machine.

The kernels this project is benchmarked on have no `netem` qdisc (`tc qdisc add dev lo root
netem delay 1ms` answers "Specified qdisc kind is unknown"), so the latency of a real network is
made here: every chunk read from one side is written to the other half the round trip later.
Reading never waits for writing, so a pipelined stream stays pipelined (a 1,000-command
pipeline costs one round trip through the proxy, as it does on a network, not 1,000).

Per connection, four threads: for each direction one reads chunks as they come and stamps each
with its due time, one writes each chunk at its due time (`time.sleep` is clock_nanosleep here:
tens of microseconds of error, where asyncio's epoll timeouts round up to whole milliseconds).
Python releases the GIL in recv, sendall and sleep, so the threads of a connection overlap.

Its own ceiling is measured by `ceiling()`: a pipelined stream through the proxy at 0 ms against
the same stream straight to the server, and the round trip it really adds (PING) against the one
asked for. A figure measured through the proxy counts only when the proxy's ceiling is well
above the job's own throughput.

Usage:
  python benchmarks/netdelay.py proxy --to 127.0.0.1:6379 --rtt-ms 1 [--listen 127.0.0.1:0]
      (prints {"listen": "127.0.0.1:PORT"} once listening; SIGTERM stops it)
  python benchmarks/netdelay.py ceiling [--rtt-ms 1]   (starts its own redis-server)
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHUNK = 256 * 1024
_END = object()


class _Direction:
    """One way of one connection: chunks in arrival order, each written `delay` after it came."""

    def __init__(self, source: socket.socket, sink: socket.socket, delay: float):
        self.source, self.sink, self.delay = source, sink, delay
        self.queue: collections.deque = collections.deque()
        self.ready = threading.Condition()

    def read(self) -> None:
        try:
            while True:
                data = self.source.recv(CHUNK)
                due = time.monotonic() + self.delay
                with self.ready:
                    self.queue.append((due, data or _END))
                    self.ready.notify()
                if not data:
                    return
        except OSError:
            with self.ready:
                self.queue.append((time.monotonic(), _END))
                self.ready.notify()

    def write(self) -> None:
        try:
            while True:
                with self.ready:
                    while not self.queue:
                        self.ready.wait()
                    due, data = self.queue.popleft()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if data is _END:
                    self.sink.shutdown(socket.SHUT_WR)
                    return
                self.sink.sendall(data)
        except OSError:
            pass


def _serve_connection(client: socket.socket, upstream: tuple[str, int], delay: float) -> None:
    try:
        server = socket.create_connection(upstream)
    except OSError:
        client.close()
        return
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = []
    for source, sink in ((client, server), (server, client)):
        way = _Direction(source, sink, delay)
        threads += [threading.Thread(target=way.read), threading.Thread(target=way.write)]
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join()
    client.close()
    server.close()


def serve(listen: tuple[str, int], upstream: tuple[str, int], rtt_ms: float) -> None:
    """Accepts until SIGTERM; each connection gets half the round trip in each direction."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    delay = rtt_ms / 2000
    listener = socket.create_server(listen, backlog=128)
    host, port = listener.getsockname()[:2]
    print(
        json.dumps(
            {"listen": f"{host}:{port}", "to": f"{upstream[0]}:{upstream[1]}", "rtt_ms": rtt_ms}
        )
    )
    sys.stdout.flush()
    while True:
        client, _ = listener.accept()
        threading.Thread(
            target=_serve_connection, args=(client, upstream, delay), daemon=True
        ).start()


class Proxy:
    """A proxy process in front of host:port; `.port` is where to connect. A context manager."""

    def __init__(self, host: str, port: int, rtt_ms: float):
        self.rtt_ms = rtt_ms
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "proxy", "--to", f"{host}:{port}", "--rtt-ms", str(rtt_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        self.host, _, port_text = json.loads(line)["listen"].rpartition(":")
        self.port = int(port_text)

    def cpu_seconds(self) -> float:
        """The proxy process's own CPU so far (user + system), from /proc."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the proxy's own ceiling ------------------------------------------------------------------------


def _pipelined(host: str, port: int, commands: int, batch: int = 1000) -> float:
    """Seconds to send `commands` SETs of ~200-byte values in pipelines of `batch`, all replies
    read: the shape of cachectl's bulk traffic (many commands a round trip)."""
    value = b"x" * 200
    one = b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$200\r\n" + value + b"\r\n"
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    started = time.perf_counter()
    for lo in range(0, commands, batch):
        payload = b"".join(
            one % (len(k), k)
            for k in (b"bench:%d" % i for i in range(lo, min(commands, lo + batch)))
        )
        sock.sendall(payload)
        expected = min(commands, lo + batch) - lo
        got = b""
        while got.count(b"\r\n") < expected:
            got += sock.recv(CHUNK)
    elapsed = time.perf_counter() - started
    sock.close()
    return elapsed


def _ping_rtt_ms(host: str, port: int, samples: int = 200) -> list[float]:
    sock = socket.create_connection((host, port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        sock.sendall(b"PING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += sock.recv(64)
        times.append((time.perf_counter() - started) * 1000)
    sock.close()
    return sorted(times)


def ceiling(host: str, port: int, rtt_ms: float, commands: int = 200_000) -> dict:
    """What the proxy itself can carry and the round trip it really adds."""
    _pipelined(host, port, commands)  # the keys made once: every timed run overwrites them
    direct_s = min(_pipelined(host, port, commands) for _ in range(3))
    direct_rtt = _ping_rtt_ms(host, port)
    with Proxy(host, port, 0) as zero:
        through_s = min(_pipelined(zero.host, zero.port, commands) for _ in range(3))
    with Proxy(host, port, rtt_ms) as delayed:
        rtt = _ping_rtt_ms(delayed.host, delayed.port)
        delayed_s = min(_pipelined(delayed.host, delayed.port, commands) for _ in range(3))
    p50 = rtt[len(rtt) // 2]
    return {
        "commands": commands,
        "direct_commands_per_s": round(commands / direct_s),
        "proxy_0ms_commands_per_s": round(commands / through_s),
        f"proxy_{rtt_ms:g}ms_commands_per_s": round(commands / delayed_s),
        "direct_ping_p50_ms": round(direct_rtt[len(direct_rtt) // 2], 3),
        "asked_rtt_ms": rtt_ms,
        "ping_through_proxy_p50_ms": round(p50, 3),
        "ping_through_proxy_p99_ms": round(rtt[int(len(rtt) * 0.99)], 3),
    }


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("proxy")
    p.add_argument("--to", required=True, type=_address)
    p.add_argument("--listen", default="127.0.0.1:0", type=_address)
    p.add_argument("--rtt-ms", type=float, default=1.0)
    c = sub.add_parser("ceiling")
    c.add_argument("--rtt-ms", type=float, default=1.0)
    c.add_argument("--commands", type=int, default=200_000)
    args = parser.parse_args()
    if args.what == "proxy":
        serve(args.listen, args.to, args.rtt_ms)
        return
    sys.path.insert(0, str(ROOT))
    from cachectl.devserver import RedisServer

    server = RedisServer()
    server.start()
    try:
        print(json.dumps(ceiling(server.host, server.port, args.rtt_ms, args.commands), indent=2))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
