"""The cost of a cache hit through the library against a bare redis-py GET plus json.loads.

One throwaway redis-server, one ~1 KB JSON entry. Each round times every variant for the same
number of calls, in a fresh random order, so drift and neighbours' load hit all alike; a
variant's ratio is the median over rounds of its time divided by the bare GET + json.loads of
the same round, and its time the median per call. The
`redis-benchmark` row (when it is on PATH) is the server's own floor for one GET per round
trip, from C, for scale.

Usage: python benchmarks/library_hit.py [--rounds 30] [--calls 2000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import shutil
import statistics
import subprocess
import time

import redis
import redis.asyncio as aredis

from cachectl import APICache, AsyncAPICache
from cachectl.devserver import RedisServer

PAYLOAD = {
    "id": 123,
    "name": "Ann Example",
    "email": "ann@example.com",
    "roles": ["admin", "editor"],
    "score": 98.5,
    "active": True,
    "bio": "x" * 800,
}
CASES = {
    "id": {"id": 123},
    "two params": {"category": "electronics", "limit": 10},
    "list param": {"q": "café", "fields": ["name", "email"]},
    "nested param": {"filter": {"price": {"lt": 100}}, "q": "café"},
}


def per_call_us(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


async def per_call_us_async(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        await fn()
    return (time.perf_counter() - start) / calls * 1e6


async def measure_async(url: str, rounds: int, calls: int) -> dict:
    """The asyncio twin: redis.asyncio GET + json.loads against AsyncAPICache, params {"id": 123}."""
    params = CASES["id"]
    bare = aredis.Redis.from_url(url)
    async with AsyncAPICache(url) as cache:
        key = await cache.set("users", params, PAYLOAD, ttl=3600)

        async def bare_get():
            return json.loads(await bare.get(key))

        variants = {
            "redis.asyncio GET + json.loads": bare_get,
            "AsyncAPICache.get": lambda: cache.get("users", params),
            "AsyncAPICache.cache_api_call (hit)": lambda: cache.cache_api_call(
                "users", params, dict, 3600
            ),
        }
        for fn in variants.values():
            await per_call_us_async(fn, 500)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        order = list(variants)
        for _ in range(rounds):
            random.shuffle(order)
            for name in order:
                samples[name].append(await per_call_us_async(variants[name], calls))
    await bare.aclose()
    return _summary(samples, "redis.asyncio GET + json.loads")


def _summary(samples: dict[str, list[float]], base: str) -> dict:
    return {
        name: {
            "median_us": round(statistics.median(s), 1),
            "ratio_to_bare": round(statistics.median(x / b for x, b in zip(s, samples[base])), 2),
        }
        for name, s in samples.items()
    }


def redis_benchmark_us(server: RedisServer, calls: int) -> float | None:
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    out = subprocess.run(
        [binary, "-h", server.host, "-p", str(server.port), "-c", "1", "-P", "1",
         "-n", str(calls), "-t", "get", "-q"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"([\d.]+) requests per second", out)
    return 1e6 / float(match.group(1)) if match else None


def measure(rounds: int, calls: int) -> dict:
    with RedisServer() as server:
        bare = redis.Redis(host=server.host, port=server.port)
        buffered = APICache(server.url)
        inline = APICache(server.url, metrics_flush_interval=0)
        silent = APICache(server.url, metrics=False)
        results: dict[str, dict] = {}
        for case, params in CASES.items():
            key = buffered.set("users", params, PAYLOAD, ttl=3600)
            variants = {
                "redis-py GET + json.loads": lambda key=key: json.loads(bare.get(key)),
                "APICache.get": lambda p=params: buffered.get("users", p),
                "APICache.cache_api_call (hit)": lambda p=params: buffered.cache_api_call(
                    "users", p, dict, 3600
                ),
                "APICache.get, metrics off": lambda p=params: silent.get("users", p),
                "APICache.get, metrics_flush_interval=0": lambda p=params: inline.get("users", p),
            }
            for fn in variants.values():  # warm connections and code paths
                per_call_us(fn, 500)
            samples: dict[str, list[float]] = {name: [] for name in variants}
            order = list(variants)
            for _ in range(rounds):
                random.shuffle(order)
                for name in order:
                    samples[name].append(per_call_us(variants[name], calls))
            bare_us = samples["redis-py GET + json.loads"]
            results[case] = {
                name: {
                    "median_us": round(statistics.median(s), 1),
                    "ratio_to_bare": round(statistics.median(x / b for x, b in zip(s, bare_us)), 2),
                }
                for name, s in samples.items()
            }
        results["id, asyncio"] = asyncio.run(measure_async(server.url, rounds, calls))
        floor = redis_benchmark_us(server, rounds * calls)
        buffered.close()
        inline.close()
        silent.close()
        counted = bare.hget("cache_metrics:hits", "total")
    return {
        "rounds": rounds,
        "calls_per_round": calls,
        "redis_benchmark_get_us": round(floor, 1) if floor else None,
        "hits_counted": int(counted or 0),
        "cases": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = measure(args.rounds, args.calls)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{args.rounds} rounds of {args.calls} calls each; median per call, median ratio per round"
    )
    for case, rows in report["cases"].items():
        print(f"\nparams: {case} ({CASES[case.split(',')[0]]})")
        for name, row in rows.items():
            print(f"  {name:<42}{row['median_us']:>8.1f} us{row['ratio_to_bare']:>7.2f}x")
    if report["redis_benchmark_get_us"]:
        print(
            f"\nredis-benchmark GET, 1 client, no pipelining: {report['redis_benchmark_get_us']} us"
        )
    print(f"hits counted in cache_metrics:hits after close: {report['hits_counted']:,}")


if __name__ == "__main__":
    main()
