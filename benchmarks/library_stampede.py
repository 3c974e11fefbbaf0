"""A stampede: 100 callers miss one entry at the same moment. How many origin calls, and how
long the waiters take against the origin call they wait for.

The origin sleeps --origin-ms (a slow API). Scenarios, each on a fresh key of one throwaway
redis-server, repeated --runs times:
- one process, 100 threads on one APICache (single flight inside the process);
- 10 APICache instances x 10 threads: instances share nothing but Redis, as processes would,
  so all but one wait on the Redis lock and poll for the entry;
- 100 asyncio tasks on one AsyncAPICache;
- the same 100 threads with stampede protection off, for contrast.
Latency ratios are a waiter's time to its answer divided by the origin call's duration.

Usage: python benchmarks/library_stampede.py [--origin-ms 100] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time

from cachectl import APICache, AsyncAPICache
from cachectl.devserver import RedisServer

CALLERS = 100


class Origin:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        return {"price": 42}

    async def call_async(self) -> dict:
        self.calls += 1
        await asyncio.sleep(self.seconds)
        return {"price": 42}


def threads_run(caches: list[APICache], key_id: int, origin: Origin) -> list[float]:
    barrier = threading.Barrier(CALLERS)
    latencies: list[float] = []

    def caller(cache: APICache) -> None:
        barrier.wait()
        start = time.perf_counter()
        cache.cache_api_call("quote", {"id": key_id}, origin, 60)
        latencies.append(time.perf_counter() - start)

    threads = [
        threading.Thread(target=caller, args=(caches[i % len(caches)],)) for i in range(CALLERS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


async def tasks_run(url: str, key_id: int, origin: Origin) -> list[float]:
    async with AsyncAPICache(url) as cache:

        async def caller() -> float:
            start = time.perf_counter()
            await cache.cache_api_call("quote", {"id": key_id}, origin.call_async, 60)
            return time.perf_counter() - start

        return list(await asyncio.gather(*(caller() for _ in range(CALLERS))))


def summarize(latencies: list[float], origin_calls: int, origin_s: float) -> dict:
    ordered = sorted(latencies)
    waiters = ordered[origin_calls:] or ordered

    def p(q: float) -> float:
        return waiters[min(len(waiters) - 1, int(q * len(waiters)))]

    return {
        "origin_calls": origin_calls,
        "waiter_p50_ms": round(statistics.median(waiters) * 1000, 1),
        "waiter_p95_ms": round(p(0.95) * 1000, 1),
        "waiter_max_ms": round(ordered[-1] * 1000, 1),
        "waiter_p50_to_origin": round(statistics.median(waiters) / origin_s, 2),
        "waiter_max_to_origin": round(ordered[-1] / origin_s, 2),
    }


def measure(origin_ms: float, runs: int) -> dict:
    origin_s = origin_ms / 1000
    scenarios: dict[str, list[dict]] = {}
    with RedisServer() as server:
        one = [APICache(server.url)]
        ten = [APICache(server.url) for _ in range(10)]
        unprotected = [APICache(server.url, stampede=False)]
        key_id = 0
        for _ in range(runs):
            for name, caches in (
                ("100 threads, 1 cache", one),
                ("10 caches x 10 threads (Redis lock)", ten),
                ("100 threads, stampede protection off", unprotected),
            ):
                key_id += 1
                origin = Origin(origin_s)
                latencies = threads_run(caches, key_id, origin)
                scenarios.setdefault(name, []).append(summarize(latencies, origin.calls, origin_s))
            key_id += 1
            origin = Origin(origin_s)
            latencies = asyncio.run(tasks_run(server.url, key_id, origin))
            scenarios.setdefault("100 asyncio tasks, 1 cache", []).append(
                summarize(latencies, origin.calls, origin_s)
            )
        for cache in one + ten + unprotected:
            cache.close()
    return {
        "origin_ms": origin_ms,
        "callers": CALLERS,
        "runs": runs,
        "scenarios": {
            name: {
                field: max(r[field] for r in results)
                if field == "origin_calls"
                else round(statistics.median(r[field] for r in results), 2)
                for field in results[0]
            }
            for name, results in scenarios.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--origin-ms", type=float, default=100.0)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = measure(args.origin_ms, args.runs)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{CALLERS} concurrent misses on one entry, origin {args.origin_ms:g} ms, "
        f"median of {args.runs} runs (origin calls: the most seen in a run)"
    )
    print(f"{'scenario':<40}{'origin calls':>13}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
          f"{'p50/origin':>12}{'max/origin':>12}")  # fmt: skip
    for name, row in report["scenarios"].items():
        print(
            f"{name:<40}{row['origin_calls']:>13}{row['waiter_p50_ms']:>9}"
            f"{row['waiter_p95_ms']:>9}{row['waiter_max_ms']:>9}"
            f"{row['waiter_p50_to_origin']:>12}{row['waiter_max_to_origin']:>12}"
        )


if __name__ == "__main__":
    main()
