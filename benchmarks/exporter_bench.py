"""What `cachectl exporter` costs, on a real server holding --keys entries.

1. Scrape latency: --scrapes scrapes of /metrics (one after another, 20 ms apart), each timed
   from the request to the last byte; p50, p95, p99 and max. Goal: p99 under 50 ms at 1M
   entries. Each scrape's Redis commands are read from cachectl_scrape_commands.
2. CPU at a 15 s scrape interval: the exporter's own CPU time (utime + stime from /proc) over
   --cpu-seconds, scraped every 15 s, with its background refresher at its defaults (a sampled
   walk of 10,000 keys a minute, and a paced SCAN of the whole keyspace for the endpoints'
   counters every tenth refresh: --cpu-seconds 660 takes one in) and the applications' traffic
   going on. Goal: under 1% of a core.

The keyspace: --keys entries over 20 endpoints (DEBUG POPULATE), their hit and miss counters,
and ~20 requests a second into the counters and the response-time log during the run.

Usage: python benchmarks/exporter_bench.py [--keys 1000000] [--scrapes 500]
       [--cpu-seconds 660] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request

import redis

from cachectl.devserver import RedisServer

ENDPOINTS = [f"endpoint_{i}" for i in range(20)]


class Traffic(threading.Thread):
    """~`rate` requests a second, counted and logged as the applications do."""

    def __init__(self, url: str, rate: int = 20):
        super().__init__(daemon=True)
        self.client = redis.Redis.from_url(url)
        self.rate = rate
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.wait(1 / self.rate):
            n += 1
            endpoint = random.choice(ENDPOINTS)
            hit = random.random() < 0.8
            kind = "hits" if hit else "misses"
            member = {
                "endpoint": endpoint,
                "cacheKey": f"api_cache:{endpoint}:id:{n}",
                "responseTime": random.randint(1, 200),
                "hit": hit,
            }
            pipe = self.client.pipeline(transaction=False)
            pipe.hincrby(f"cache_metrics:{kind}", "total", 1)
            pipe.hincrby(f"cache_metrics:{kind}:{endpoint}", "count", 1)
            pipe.zadd("cache_metrics:response_times", {json.dumps(member): time.time() * 1000})
            pipe.execute()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scrape(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url + "/metrics", timeout=30) as reply:
        body = reply.read()
    return time.perf_counter() - started, body


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--cpu-seconds", type=float, default=660)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with RedisServer(extra_args=("--enable-debug-command", "yes")) as server:
        r = redis.Redis.from_url(server.url)
        per = args.keys // len(ENDPOINTS)
        for endpoint in ENDPOINTS:
            r.execute_command("DEBUG", "POPULATE", per, f"api_cache:{endpoint}:id", 200)
            r.hset(f"cache_metrics:hits:{endpoint}", "count", 1000)
            r.hset(f"cache_metrics:misses:{endpoint}", "count", 100)
        r.hset("cache_metrics:hits", "total", 20_000)
        r.hset("cache_metrics:misses", "total", 2_000)
        traffic = Traffic(server.url)
        traffic.start()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cachectl", "--url", server.url, "exporter"]
            + ["--listen", "127.0.0.1:0", "--json"],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            url = json.loads(proc.stdout.readline())["url"]
            started = time.monotonic()
            while b"cachectl_refresh_timestamp_seconds" not in scrape(url)[1]:
                time.sleep(0.2)
            first_refresh = time.monotonic() - started
            first_cpu = cpu_seconds(proc.pid)
            times, commands = [], set()
            for _ in range(args.scrapes):
                took, body = scrape(url)
                times.append(took)
                for line in body.decode().splitlines():
                    if line.startswith("cachectl_scrape_commands "):
                        commands.add(float(line.split()[1]))
                time.sleep(0.02)
            latency = {
                "scrapes": len(times),
                "p50_ms": round(percentile(times, 50) * 1000, 2),
                "p95_ms": round(percentile(times, 95) * 1000, 2),
                "p99_ms": round(percentile(times, 99) * 1000, 2),
                "max_ms": round(max(times) * 1000, 2),
                "commands_per_scrape": sorted(commands),
            }
            cpu_before, wall_before = cpu_seconds(proc.pid), time.monotonic()
            scrapes = 0
            while time.monotonic() - wall_before < args.cpu_seconds:
                scrape(url)
                scrapes += 1
                time.sleep(max(0.0, wall_before + scrapes * 15 - time.monotonic()))
            wall = time.monotonic() - wall_before
            cpu = cpu_seconds(proc.pid) - cpu_before
        finally:
            proc.terminate()
            proc.wait(30)
            traffic.stop.set()
        result = {
            "keys": r.dbsize(),
            "first_refresh_seconds": round(first_refresh, 2),
            "cpu_seconds_to_first_refresh": round(first_cpu, 3),  # start-up included
            "scrape_latency": latency,
            "cpu_at_15s_interval": {
                "seconds": round(wall, 1),
                "scrapes": scrapes,
                "cpu_seconds": round(cpu, 3),
                "share_of_a_core_percent": round(100 * cpu / wall, 3),
            },
            "exporter_exit_code": proc.returncode,
        }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lat, use = result["scrape_latency"], result["cpu_at_15s_interval"]
        print(f"keys: {result['keys']:,}")
        print(
            f"scrape latency over {lat['scrapes']} scrapes: p50 {lat['p50_ms']} ms, "
            f"p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms, max {lat['max_ms']} ms "
            f"(commands per scrape: {lat['commands_per_scrape']})"
        )
        print(
            f"CPU at a 15 s scrape interval over {use['seconds']} s: {use['cpu_seconds']} s, "
            f"{use['share_of_a_core_percent']}% of a core"
        )


if __name__ == "__main__":
    main()
