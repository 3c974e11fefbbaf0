"""`cachectl warm` throughput and memory, against a local origin that answers in 20 ms.

Everything is measured in one run, on one machine, side by side, and reported as ratios:
- the origin's own ceiling at each concurrency, measured with wrk (Debian's package), and the
  ceiling concurrency / latency; warm throughput is reported as a share of the lower of the two;
- a bare aiohttp loop (fetch only, nothing parsed or stored) at the same concurrency;
- a plain sequential fetch-and-store loop (http.client + redis-py, one entry at a time);
- the Redis side alone: cachectl's entry writer against redis-cli --pipe sending the same
  commands (MULTI, SET PX, SADD, PEXPIRE, ZADD, EXEC per entry) for the same entries;
- peak memory (RSS) of warm runs of growing size: a flat line means the plan streams.

Usage:
  python benchmarks/warm.py [--entries 10000] [--concurrency 50 100] [--rounds 3]
                            [--memory-entries 10000 100000] [--dry-run-memory-entries 1000000]
                            [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DELAY_MS = 20.0


# ---- helpers -------------------------------------------------------------------------------------


# Runs `python -m cachectl ...` and writes the process's own peak RSS (VmHWM, which starts afresh
# at exec) to a file at exit. wait4's ru_maxrss would not do: it also counts the pages of this
# (large) benchmark process that the child shares between fork and exec.
_PEAK_WRAPPER = """
import atexit, runpy, sys
def peak(path=sys.argv[1]):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            open(path, "w").write(line.split()[1])
atexit.register(peak)
sys.argv = ["cachectl", *sys.argv[2:]]
runpy.run_module("cachectl", run_name="__main__")
"""


def run_measured(args: list[str], env: dict | None = None) -> tuple[str, str, int, int]:
    """Runs `python -m cachectl *args`: (stdout, stderr, exit status, peak RSS in KiB)."""
    with tempfile.NamedTemporaryFile("r") as peak:
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_WRAPPER, peak.name, *args],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        return proc.stdout, proc.stderr, proc.returncode, int(peak.read() or 0)


def write_manifest(directory: Path, origin_url: str, entries: int, tags: bool = True) -> Path:
    path = directory / f"warm-{entries}{'' if tags else '-notags'}.yaml"
    if entries >= 1_000_000 and entries % 1000 == 0:
        matrix = f"{{shard: {{range: [1, {entries // 1000}]}}, id: {{range: [1, 1000]}}}}"
        url = "/items/{shard}/{id}"
        tag_list = '[items, "item_{shard}_{id}"]'
    else:
        matrix = f"{{id: {{range: [1, {entries}]}}}}"
        url = "/items/{id}"
        tag_list = '[items, "item_{id}"]'
    path.write_text(
        "version: 1\n"
        f'defaults: {{base_url: "{origin_url}", ttl: 1h, retries: 2, timeout: 10s}}\n'
        "endpoints:\n"
        f'  - name: items\n    url: "{url}"\n    matrix: {matrix}\n'
        + (f"    tags: {tag_list}\n" if tags else "")
    )
    return path


def cachectl(redis_url: str, *args: str) -> tuple[dict, int, float]:
    """Runs `cachectl --json ...` in its own process: (data, peak RSS KiB, wall seconds)."""
    started = time.perf_counter()
    # With cached bytecode, as installed software runs (PYTHONDONTWRITEBYTECODE, set in this
    # project's sessions, would have every run compile cachectl afresh).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out, err, status, rss = run_measured(
        ["--url", redis_url, *args, "--json"], env={**env, "PYTHONPATH": str(ROOT)}
    )
    wall = time.perf_counter() - started
    if status not in (0, 6):
        raise SystemExit(f"cachectl {' '.join(args)} failed ({status}): {err.strip()}")
    return json.loads(out)["data"], rss, wall


def flush(redis_url: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as conn:
        conn.flushall()


# ---- the measurements -----------------------------------------------------------------------------


def wrk_ceiling(url: str, concurrency: int, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds}s", url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"Requests/sec:\s+([\d.]+)", out.stdout)
    if not match:
        raise SystemExit(f"cannot read wrk's output:\n{out.stdout}")
    return float(match.group(1))


BARE_AIOHTTP = r"""
import asyncio, sys, time, aiohttp
base, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    queue = asyncio.Queue()
    for i in range(1, n + 1):
        queue.put_nowait(f"{base}/items/{i}")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
        async def worker():
            while not queue.empty():
                url = queue.get_nowait()
                async with session.get(url) as response:
                    await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(c)))
        print(n / (time.perf_counter() - started))
asyncio.run(main())
"""


def bare_aiohttp(origin_url: str, entries: int, concurrency: int) -> float:
    out = subprocess.run(
        [sys.executable, "-c", BARE_AIOHTTP, origin_url, str(entries), str(concurrency)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(out.stdout.strip())


def sequential_loop(origin_url: str, redis_url: str, entries: int) -> float:
    """The plain way: one request, then its writes, then the next."""
    import redis

    from cachectl.layout import Layout, js_stringify

    layout = Layout()
    host, port = origin_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    started = time.perf_counter()
    with redis.Redis.from_url(redis_url) as r:
        for i in range(1, entries + 1):
            conn.request("GET", f"/items/{i}")
            value = json.loads(conn.getresponse().read())
            key = layout.entry("items", {"id": i})
            r.set(key, js_stringify(value), px=3_600_000)
            for tag in ("items", f"item_{i}"):
                r.sadd(layout.tag(tag), key)
                r.pexpire(layout.tag(tag), 3_601_000, gt=True)
            r.zadd(layout.entries_log(), {key: int(time.time() * 1000)})
    conn.close()
    return entries / (time.perf_counter() - started)


def redis_side(redis_url: str, redis_port: int, origin_url: str, entries: int) -> dict:
    """cachectl's writer alone against redis-cli --pipe sending the same commands."""
    from cachectl.config import Settings
    from cachectl.layout import Layout
    from cachectl.manifest import Plan, load_manifests
    from cachectl.ops.warm_http import stored_json
    from cachectl.ops.warm_write import EntryWriter, ToWrite
    from cachectl.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        plan = Plan(
            load_manifests([write_manifest(Path(tmp), origin_url, entries)], env={}), Layout()
        )
        requests = list(plan.requests())
    value = {
        "path": "/items/x",
        "name": "Item",
        "price": 19.5,
        "tags": ["a", "b"],
        "stock": {"count": 3, "warehouse": "east"},
    }
    # What the fetch path hands the writer: the value and its stored text, made before the clock.
    text = stored_json(json.dumps(value).encode())[2]
    settings = Settings(url=redis_url)

    flush(redis_url)
    with Store(settings) as store:
        writer = EntryWriter(store, plan.layout)
        started = time.perf_counter()
        for at in range(0, len(requests), settings.batch_size):
            results = writer.write(
                [ToWrite(r, value, text) for r in requests[at : at + settings.batch_size]]
            )
            assert all(error is None for _, error in results)
        cachectl_seconds = time.perf_counter() - started

    # The same commands as one RESP stream for redis-cli --pipe, built before the clock starts.
    from cachectl.layout import js_stringify

    body = js_stringify(value)
    now_ms = int(time.time() * 1000)
    chunks = []
    for r in requests:
        # The writer's order: the entry first, then its index writes (ops/warm_write.py).
        commands = [("MULTI",), ("SET", r.key, body, "PX", "3600000")]
        for tag in r.tags:
            key = plan.layout.tag(tag)
            commands += [
                ("SADD", key, r.key),
                ("PEXPIRE", key, "3601000", "NX"),
                ("PEXPIRE", key, "3601000", "GT"),
            ]
        commands += [("ZADD", "cache_entries", str(now_ms), r.key), ("EXEC",)]
        for command in commands:
            parts = [p.encode() for p in command]
            chunks.append(
                b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
            )
    stream = b"".join(chunks)
    flush(redis_url)
    started = time.perf_counter()
    subprocess.run(
        ["redis-cli", "-p", str(redis_port), "--pipe"],
        input=stream,
        capture_output=True,
        check=True,
    )
    cli_seconds = time.perf_counter() - started
    return {
        "entries": entries,
        "cachectl_writer_entries_per_s": round(entries / cachectl_seconds),
        "redis_cli_pipe_entries_per_s": round(entries / cli_seconds),
        "ratio": round(cli_seconds / cachectl_seconds, 2),
    }


# ---- the run --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[50, 100])
    parser.add_argument("--wrk-seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sequential-entries", type=int, default=300)
    parser.add_argument("--memory-entries", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument(
        "--dry-run-memory-entries", type=int, nargs="*", default=[10_000, 1_000_000]
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")
    sys.path.insert(0, str(ROOT))
    from cachectl.devserver import RedisServer

    report: dict = {
        "origin_delay_ms": DELAY_MS,
        "entries": args.entries,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    origin = subprocess.Popen(
        [sys.executable, str(HERE / "warm_origin.py"), "--delay-ms", str(DELAY_MS)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        origin_url = f"http://127.0.0.1:{origin.stdout.readline().strip()}"
        with RedisServer() as server, tempfile.TemporaryDirectory() as tmp:
            redis_url = server.url
            manifest = write_manifest(Path(tmp), origin_url, args.entries)
            bare_aiohttp(origin_url, 500, 50)  # warm up the origin
            throughput = []
            for c in args.concurrency:
                ceiling_latency = c / (DELAY_MS / 1000)
                # wrk, the bare loop and warm take turns, so the drift of a shared machine hits
                # all three alike; medians of the rounds are reported.
                rounds = []
                for _ in range(args.rounds):
                    ceiling_wrk = wrk_ceiling(f"{origin_url}/items/1", c, args.wrk_seconds)
                    bare = bare_aiohttp(origin_url, args.entries, c)
                    flush(redis_url)
                    data, rss, wall = cachectl(
                        redis_url, "warm", str(manifest), "--concurrency", str(c)
                    )
                    assert data["stored"] == args.entries, data
                    rounds.append(
                        (ceiling_wrk, bare, data["stored"] / data["duration_seconds"], rss, wall)
                    )
                ceiling_wrk, bare, warm_rps = (
                    statistics.median(r[i] for r in rounds) for i in range(3)
                )
                ceiling = min(ceiling_wrk, ceiling_latency)
                throughput.append(
                    {
                        "concurrency": c,
                        "rounds": args.rounds,
                        "wrk_ceiling_rps": round(ceiling_wrk),
                        "latency_ceiling_rps": round(ceiling_latency),
                        "bare_aiohttp_rps": round(bare),
                        "warm_rps": round(warm_rps),
                        "warm_share_of_ceiling": round(warm_rps / ceiling, 3),
                        "bare_aiohttp_share_of_ceiling": round(bare / ceiling, 3),
                        "warm_rps_by_round": [round(r[2]) for r in rounds],
                        "wrk_rps_by_round": [round(r[0]) for r in rounds],
                        "warm_wall_seconds": round(statistics.median(r[4] for r in rounds), 2),
                        "warm_peak_rss_mib": round(max(r[3] for r in rounds) / 1024, 1),
                    }
                )
            report["throughput"] = throughput

            if throughput:
                flush(redis_url)
                sequential = sequential_loop(origin_url, redis_url, args.sequential_entries)
                best = max(t["warm_rps"] for t in throughput)
                report["sequential"] = {
                    "entries": args.sequential_entries,
                    "rps": round(sequential, 1),
                    "warm_best_over_sequential": round(best / sequential, 1),
                }
                report["redis_side"] = redis_side(redis_url, server.port, origin_url, args.entries)

            memory = []
            for n in args.memory_entries:
                flush(redis_url)
                path = write_manifest(Path(tmp), origin_url, n, tags=False)
                data, rss, wall = cachectl(redis_url, "warm", str(path), "--concurrency", "100")
                memory.append(
                    {
                        "entries": n,
                        "mode": "warm",
                        "stored": data["stored"],
                        "peak_rss_mib": round(rss / 1024, 1),
                        "wall_seconds": round(wall, 1),
                    }
                )
            for n in args.dry_run_memory_entries:
                path = write_manifest(Path(tmp), origin_url, n, tags=True)
                data, rss, wall = cachectl(redis_url, "warm", str(path), "--dry-run")
                memory.append(
                    {
                        "entries": n,
                        "mode": "dry-run (whole plan expanded)",
                        "stored": 0,
                        "peak_rss_mib": round(rss / 1024, 1),
                        "wall_seconds": round(wall, 1),
                    }
                )
            flush(redis_url)
            report["memory"] = memory
            report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    finally:
        origin.terminate()
        origin.wait(10)

    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"origin: aiohttp, {DELAY_MS:g} ms per answer; {args.entries:,} entries per warm run; "
        f"{report['cpus']} CPUs shared by origin, client, Redis and wrk; load average "
        f"{report['load_average_before']} before, {report['load_average_after']} after"
    )
    print(
        f"\n{'conc.':>5} {'wrk ceiling':>12} {'c/latency':>10} {'bare aiohttp':>13} {'warm':>8} "
        f"{'warm/ceiling':>13} {'bare/ceiling':>13} {'peak RSS':>9}"
    )
    for t in report["throughput"]:
        print(
            f"{t['concurrency']:>5} {t['wrk_ceiling_rps']:>10}/s {t['latency_ceiling_rps']:>8}/s "
            f"{t['bare_aiohttp_rps']:>11}/s {t['warm_rps']:>6}/s {t['warm_share_of_ceiling']:>12.1%} "
            f"{t['bare_aiohttp_share_of_ceiling']:>12.1%} {t['warm_peak_rss_mib']:>6} MiB"
        )
    if "sequential" in report:
        s = report["sequential"]
        print(
            f"\nsequential fetch-and-store loop: {s['rps']}/s over {s['entries']} entries; "
            f"warm (best) is {s['warm_best_over_sequential']}x that"
        )
        r = report["redis_side"]
        print(
            f"Redis side, {r['entries']:,} entries: cachectl writer {r['cachectl_writer_entries_per_s']:,}/s, "
            f"redis-cli --pipe {r['redis_cli_pipe_entries_per_s']:,}/s (writer/redis-cli = {r['ratio']})"
        )
    print("\npeak memory:")
    for m in report["memory"]:
        print(
            f"  {m['entries']:>9,} entries, {m['mode']:<30} {m['peak_rss_mib']:>7} MiB  ({m['wall_seconds']} s)"
        )


if __name__ == "__main__":
    main()
