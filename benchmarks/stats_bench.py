"""What stats, the dashboard and history cost, on a real server, side by side with redis-cli.

1. The dashboard: commands per tick, and the CPU of `cachectl stats --every 1s` run
   on a pseudo-terminal (so rich.live draws), while the test's "applications" make traffic
   (20 endpoints, ~200 requests/s into the counters and the response-time log) over a keyspace
   of --keys other keys. CPU per tick = (CPU of N+1 ticks - CPU of 1 tick) / N, which takes
   the interpreter's start-up out. Beside it: redis-cli sending the same commands per tick.
2. History writes: points per second stored by TimeSeries.add_many (what `history record`
   calls: ZADD + meta HSET + 4 aggregate scripts a point), against redis-cli --pipe sending
   the very same commands.
3. Memory per stored point: 24 h of 10 s points (8,640) of an integer series and of a float
   series, raw (MEMORY USAGE of metric:{name}) and compacted (of meta:{name}).

Usage: python benchmarks/stats_bench.py [--ticks 30] [--keys 200000] [--points 20000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pty
import random
import resource
import subprocess
import sys
import threading
import time

import redis

from cachectl.config import Settings
from cachectl.devserver import RedisServer
from cachectl.layout import Layout
from cachectl.ops.stats import Sampler
from cachectl.store import Store
from cachectl.timeseries import AGGREGATE_SCRIPT, RESOLUTION_MS, Point, TimeSeries, encode_member

LAYOUT = Layout()
ENDPOINTS = [f"endpoint_{i}" for i in range(20)]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def resp(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class Traffic(threading.Thread):
    """~`rate` requests a second, as the applications count and log them."""

    def __init__(self, url: str, rate: int = 200):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.rate = rate
        self.stopped = threading.Event()

    def run(self) -> None:
        rng = random.Random(1)
        while not self.stopped.is_set():
            started = time.monotonic()
            pipe = self.client.pipeline(transaction=False)
            now = int(time.time() * 1000)
            for i in range(self.rate // 10):
                endpoint = rng.choice(ENDPOINTS)
                hit = rng.random() < 0.9
                total = (LAYOUT.hits_total if hit else LAYOUT.misses_total)()
                per = (LAYOUT.hits_endpoint if hit else LAYOUT.misses_endpoint)(endpoint)
                pipe.hincrby(*total, 1)
                pipe.hincrby(*per, 1)
                member = json.dumps(
                    {
                        "endpoint": endpoint,
                        "cacheKey": f"k{i}",
                        "responseTime": rng.expovariate(1 / 20),
                        "hit": hit,
                        "n": rng.random(),
                    }
                )
                pipe.zadd(LAYOUT.response_times(), {member: now})
            pipe.execute()
            self.stopped.wait(max(0.0, 0.1 - (time.monotonic() - started)))


def run_dashboard(url: str, ticks: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of `stats --every 1s --rounds N` on a terminal."""
    master, slave = pty.openpty()
    before = children_cpu()
    started = time.monotonic()
    env = {**os.environ, "COLUMNS": "140", "LINES": "60", "TERM": "xterm-256color"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cachectl",
            "--url",
            url,
            "stats",
            "--every",
            "1s",
            "--rounds",
            str(ticks),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        close_fds=True,
    )
    os.close(slave)
    drained = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drained += chunk
    proc.wait()
    os.close(master)
    if proc.returncode != 0:
        raise SystemExit(f"the dashboard failed: {drained[-2000:].decode(errors='replace')}")
    return children_cpu() - before, time.monotonic() - started


def redis_cli_tick_cpu(server: RedisServer, commands: list[list[str]], ticks: int) -> float:
    script = "".join(" ".join(json.dumps(a) if " " in a else a for a in c) + "\n" for c in commands)
    before = children_cpu()
    for _ in range(ticks):
        subprocess.run(
            ["redis-cli", "-h", server.host, "-p", str(server.port)],
            input=script,
            text=True,
            stdout=subprocess.DEVNULL,
            check=True,
        )
    return (children_cpu() - before) / ticks


def bench_dashboard(server: RedisServer, ticks: int, keys: int) -> dict:
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(keys):
        pipe.set(f"other:{i}", "x")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    traffic = Traffic(server.url)
    traffic.start()
    time.sleep(1.5)
    with Store(Settings(url=server.url)) as store:
        sampler = Sampler(store, LAYOUT, log_window_seconds=1)
        commands_per_tick = sampler.sample().commands + 1  # + the recent-runs read
        scan_calls = client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0)
        sampler.sample()
        scans_per_tick = (
            client.info("commandstats").get("cmdstat_scan", {}).get("calls", 0) - scan_calls
        )
    one_cpu, _ = run_dashboard(server.url, 1)
    many_cpu, wall = run_dashboard(server.url, ticks + 1)
    cpu_per_tick = (many_cpu - one_cpu) / ticks
    now = int(time.time() * 1000)
    same = [["INFO"], ["HGETALL", LAYOUT.hits_total()[0]], ["HGETALL", LAYOUT.misses_total()[0]]]
    for e in ENDPOINTS:
        same += [["HGETALL", LAYOUT.hits_endpoint(e)[0]], ["HGETALL", LAYOUT.misses_endpoint(e)[0]]]
    same += [
        [
            "ZREVRANGEBYSCORE",
            LAYOUT.response_times(),
            str(now),
            str(now - 1000),
            "WITHSCORES",
            "LIMIT",
            "0",
            "50000",
        ],
        [
            "ZREVRANGEBYSCORE",
            "metric:cachectl.runs",
            "+inf",
            "-inf",
            "WITHSCORES",
            "LIMIT",
            "0",
            "5",
        ],
    ]
    cli_cpu = redis_cli_tick_cpu(server, same, 10)
    traffic.stopped.set()
    traffic.join()
    client.close()
    return {
        "keys_in_keyspace": keys + 2 * len(ENDPOINTS) + 3,
        "endpoints": len(ENDPOINTS),
        "commands_per_tick": commands_per_tick,
        "scan_calls_per_tick_after_discovery": scans_per_tick,
        "ticks": ticks,
        "wall_seconds": round(wall, 2),
        "cpu_seconds_per_tick": round(cpu_per_tick, 4),
        "cpu_percent_of_a_core_at_1s": round(cpu_per_tick * 100, 2),
        "redis_cli_same_commands_cpu_seconds_per_tick": round(cli_cpu, 4),
        "ratio_cachectl_to_redis_cli_cpu": round(cpu_per_tick / cli_cpu, 2) if cli_cpu else None,
    }


def bench_writes(server: RedisServer, points: int) -> dict:
    client = server.client()
    client.flushall()
    now = int(time.time() * 1000)
    batch = [
        (f"series_{i % 20}", float(i % 997) / 7, now - (points - i) * 10, None)
        for i in range(points)
    ]
    with Store(Settings(url=server.url)) as store:
        ts = TimeSeries(store, LAYOUT)
        started = time.perf_counter()
        ts.add_many(batch)
        cachectl_seconds = time.perf_counter() - started
    client.flushall()
    sha = client.script_load(AGGREGATE_SCRIPT)
    payload = bytearray()
    for name, value, stamp, _ in batch:
        point = Point(stamp, value)
        payload += resp("ZADD", LAYOUT.metric(name), stamp, encode_member(point))
        payload += resp("HSET", LAYOUT.meta(name), "lastUpdate", stamp, "updatedAt", "x")
        for resolution, width in RESOLUTION_MS.items():
            bucket = stamp - stamp % width
            payload += resp(
                "EVALSHA",
                sha,
                1,
                LAYOUT.agg(name, resolution, bucket),
                repr(value),
                stamp,
                bucket,
                0,
            )
    started = time.perf_counter()
    subprocess.run(
        ["redis-cli", "-h", server.host, "-p", str(server.port), "--pipe"],
        input=bytes(payload),
        stdout=subprocess.DEVNULL,
        check=True,
    )
    cli_seconds = time.perf_counter() - started
    client.close()
    return {
        "points": points,
        "cachectl_points_per_second": round(points / cachectl_seconds),
        "redis_cli_pipe_points_per_second": round(points / cli_seconds),
        "ratio_cachectl_to_redis_cli_throughput": round(cli_seconds / cachectl_seconds, 2),
    }


def bench_memory(server: RedisServer) -> dict:
    client = server.client()
    client.flushall()
    day_points = 8640
    start = (int(time.time() * 1000) // 3_600_000) * 3_600_000 - 25 * 3_600_000
    rng = random.Random(3)
    series = {
        "int_series": [1_000_000 + i * 37 + rng.randint(0, 500) for i in range(day_points)],
        "float_series": [
            0.9 + 0.05 * math.sin(i / 50) + rng.random() / 100 for i in range(day_points)
        ],
    }
    out = {}
    with Store(Settings(url=server.url)) as store:
        ts = TimeSeries(store, LAYOUT)
        for name, values in series.items():
            ts.add_many([(name, float(v), start + i * 10_000, None) for i, v in enumerate(values)])
            raw = client.memory_usage(LAYOUT.metric(name), samples=0)
            meta_before = client.memory_usage(LAYOUT.meta(name), samples=0)
            ts.compact(3600, names=[name])
            left = client.zcard(LAYOUT.metric(name))
            compacted = client.memory_usage(LAYOUT.meta(name), samples=0) - meta_before
            moved = day_points - left
            out[name] = {
                "raw_bytes_per_point": round(raw / day_points, 1),
                "compacted_bytes_per_point": round(compacted / moved, 2),
                "ratio_raw_to_compacted": round((raw / day_points) / (compacted / moved), 1),
                "points_compacted": moved,
            }
    client.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ticks", type=int, default=30)
    parser.add_argument("--keys", type=int, default=200_000)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with RedisServer() as server:
        results = {
            "dashboard": bench_dashboard(server, args.ticks, args.keys),
            "history_writes": bench_writes(server, args.points),
            "memory_per_point": bench_memory(server),
        }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    d, w = results["dashboard"], results["history_writes"]
    print(
        f"dashboard: {d['commands_per_tick']} commands a tick over {d['keys_in_keyspace']:,} "
        f"keys, {d['scan_calls_per_tick_after_discovery']} SCAN calls a tick after discovery; "
        f"{d['cpu_percent_of_a_core_at_1s']}% of a core at a 1 s interval "
        f"({d['ratio_cachectl_to_redis_cli_cpu']}x redis-cli's CPU for the same commands)"
    )
    print(
        f"history writes: {w['cachectl_points_per_second']:,} points/s, redis-cli --pipe "
        f"{w['redis_cli_pipe_points_per_second']:,} points/s "
        f"(ratio {w['ratio_cachectl_to_redis_cli_throughput']})"
    )
    for name, m in results["memory_per_point"].items():
        print(
            f"memory, {name}: {m['raw_bytes_per_point']} B/point raw, "
            f"{m['compacted_bytes_per_point']} B/point compacted "
            f"({m['ratio_raw_to_compacted']}x smaller)"
        )


if __name__ == "__main__":
    main()
