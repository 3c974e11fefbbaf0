"""A cache worth inspecting, loaded fast: N cache entries, N other keys, and the bookkeeping.

Used by benchmarks/memory_keys.py. Every cache key is named by cachectl.layout (never by hand);
the commands go to the server as raw RESP through `redis-cli --pipe`, which loads a million keys
in seconds where a client round trip per key would take minutes.

What is loaded (deterministic for a given seed):
- entries `api_cache:{endpoint}:{params}`, JSON values of 60 B to 4 KiB with a few outsized ones
  (256 KiB), TTLs spread over every bucket `cachectl memory` reports, a tenth without TTL;
- tag sets (`tag:user:{n}`, `tag:{endpoint}`) and dependency sets (`depends_on:product:{n}`),
  with one member in ten dangling (an entry that never was written, as after expiry);
- the write log and access log, hit/miss counters;
- other applications' keys (`session:{n}` strings, `user:{n}` hashes) outside the cache.

Usage: python benchmarks/inspect_data.py --url redis://127.0.0.1:PORT/0 --entries 1000000
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

from cachectl.layout import Layout

ENDPOINTS = (
    ("user_profile", 30), ("products", 20), ("search", 15), ("orders", 10), ("cart", 8),
    ("recommendations", 6), ("inventory", 5), ("reviews", 4), ("status", 1), ("prices[eu]", 1),
)  # fmt: skip
CATEGORIES = ("electronics", "books", "garden", "toys", "food", "café")
# (share of entries, TTL range in seconds); None = no expiry
TTL_SPREAD = (
    (0.10, None),
    (0.01, (30, 59)),  # few: they expire while the benchmark runs
    (0.44, (60, 3599)),
    (0.30, (3600, 86399)),
    (0.10, (86400, 604799)),
    (0.05, (604800, 2592000)),
)


def _resp(*args: bytes | str | int) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def _params(endpoint: str, i: int, rng: random.Random) -> dict:
    if endpoint in ("user_profile", "cart", "recommendations"):
        return {"id": i}
    if endpoint == "products":
        return {"category": rng.choice(CATEGORIES), "limit": rng.choice((10, 20, 50)), "page": i}
    if endpoint == "search":
        return {"q": f"term {i}", "fields": ["name", "email"], "price": i / 4, "exact": i % 2 == 0}
    if endpoint == "status":
        return {} if i == 0 else {"region": f"r{i}"}
    return {"id": i, "expand": i % 3 == 0}


def _value(i: int, rng: random.Random) -> bytes:
    size = 256 * 1024 if i % 100_000 == 7 else int(rng.lognormvariate(6, 0.9))
    size = max(60, min(size, 256 * 1024))
    body = f'{{"id":{i},"data":"'
    return (body + "x" * max(0, size - len(body) - 2) + '"}').encode()


def _ttl(rng: random.Random) -> int | None:
    pick = rng.random()
    for share, span in TTL_SPREAD:
        if pick < share:
            return None if span is None else rng.randint(*span)
        pick -= share
    return None


def commands(entries: int, others: int, seed: int = 7) -> Iterator[bytes]:
    layout = Layout()
    rng = random.Random(seed)
    names = [name for name, _ in ENDPOINTS]
    weights = [weight for _, weight in ENDPOINTS]
    now_ms = int(time.time() * 1000)
    tags: dict[str, list[str]] = {}
    deps: dict[str, list[str]] = {}
    log_page: list[bytes | str | int] = []
    for i in range(entries):
        endpoint = rng.choices(names, weights)[0]
        key = layout.entry(endpoint, _params(endpoint, i, rng))
        ttl = _ttl(rng)
        if ttl is None:
            yield _resp("SET", key, _value(i, rng))
        else:
            yield _resp("SET", key, _value(i, rng), "EX", ttl)
        members = [key]
        if i % 10 == 0:  # a member whose entry is gone: dangling
            members.append(layout.entry(endpoint, {"id": -i}))
        tags.setdefault(layout.tag(f"user:{i % 5000}"), []).extend(members)
        tags.setdefault(layout.tag(endpoint), []).extend(members)
        if endpoint in ("products", "inventory", "orders"):
            deps.setdefault(layout.dependency(f"product:{i % 20000}"), []).extend(members)
        log_page += [now_ms - rng.randint(0, 86_400_000), key]
        if len(log_page) >= 2000:
            yield _resp("ZADD", layout.entries_log(), *log_page)
            yield _resp("ZADD", layout.access_log(), *log_page[: len(log_page) // 2])
            log_page = []
    if log_page:
        yield _resp("ZADD", layout.entries_log(), *log_page)
    for sets in (tags, deps):
        for name, members in sets.items():
            for start in range(0, len(members), 1000):
                yield _resp("SADD", name, *members[start : start + 1000])
    hits, total = layout.hits_total()
    yield _resp("HSET", hits, total, entries * 3)
    misses, total = layout.misses_total()
    yield _resp("HSET", misses, total, entries)
    for endpoint in names:
        key, field = layout.hits_endpoint(endpoint)
        yield _resp("HSET", key, field, rng.randint(1, entries))
    for i in range(others):
        if i % 4 == 0:
            yield _resp("HSET", f"user:{i}", "name", f"user {i}", "email", f"u{i}@example.com")
        else:
            yield _resp("SET", f"session:{i:08d}", "s" * rng.randint(40, 160), "EX", 86400)


def load(url: str, entries: int, others: int, seed: int = 7) -> float:
    """Loads the data into the server at `url` (host and port only); returns the seconds taken."""
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise SystemExit("redis-cli not found: apt-get install redis-tools")
    parts = urlsplit(url)
    started = time.perf_counter()
    with tempfile.TemporaryFile() as spool:
        batch: list[bytes] = []
        for command in commands(entries, others, seed):
            batch.append(command)
            if len(batch) >= 10000:
                spool.write(b"".join(batch))
                batch = []
        spool.write(b"".join(batch))
        spool.seek(0)
        subprocess.run(
            [redis_cli, "-h", parts.hostname, "-p", str(parts.port), "--pipe"],
            stdin=spool,
            stdout=subprocess.DEVNULL,
            check=True,
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--url", required=True, help="a server you started for this (never 6379)")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=None, help="default: as many as entries")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    seconds = load(
        args.url, args.entries, args.entries if args.others is None else args.others, args.seed
    )
    print(f"loaded in {seconds:.1f} s")


if __name__ == "__main__":
    main()
