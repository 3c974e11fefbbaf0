"""`cachectl memory` and `cachectl keys --jsonl` side by side with redis-cli, on one real server.

Loads N cache entries and N other keys (benchmarks/inspect_data.py) into a throwaway
redis-server, then runs each contender in turn, interleaved, `--runs` times:

  memory:  redis-cli --memkeys                  vs  cachectl memory --json
  keys:    redis-cli --scan --pattern 'api_cache:*'
           a bare SCAN loop, COUNT 1000, in redis-py (names only: the floor for a listing)
                                                vs  cachectl keys 'api_cache:*' --jsonl
                                                    and the same with each --fields of
                                                    --keys-fields (figures not asked for are
                                                    not read)

and, in this process, the two ways of sizing a SCAN page that `memory` chooses between: one
server-side script per page, and a pipeline of TYPE/PTTL/MEMORY USAGE per key.

For each run it records the wall time, the CPU the client process used, and the CPU the server
used (INFO used_cpu_*): which of the two a command waits on says what bounds it. Reported as
medians and as ratios to the redis-cli commands. Usage:

  python benchmarks/memory_keys.py [--entries 1000000] [--runs 3] [--json]
      [--keys-fields endpoint,params --keys-fields ttl,endpoint,params] [--skip-memkeys]

The load average of the machine before and after is part of the report: on a shared machine
the walls are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from inspect_data import load

from cachectl.config import Settings
from cachectl.devserver import RedisServer
from cachectl.layout import Layout
from cachectl.layout_parse import owned_prefixes
from cachectl.ops.scanning import ScanPlan, ScanState, scan_sized
from cachectl.store import Store


def server_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(argv: list[str], client) -> dict:
    cpu0, server0 = child_cpu(), server_cpu(client)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    return {
        "wall": wall,
        "client_cpu": child_cpu() - cpu0,
        "server_cpu": server_cpu(client) - server0,
    }


def run_inprocess(fn, client) -> dict:
    cpu0 = time.process_time()
    server0 = server_cpu(client)
    started = time.perf_counter()
    fn()
    return {
        "wall": time.perf_counter() - started,
        "client_cpu": time.process_time() - cpu0,
        "server_cpu": server_cpu(client) - server0,
    }


def bare_scan(client) -> None:
    cursor = 0
    while True:
        cursor, _ = client.scan(cursor, match="api_cache:*", count=1000)
        if cursor == 0:
            return


def sized_pages(url: str, method: str) -> None:
    layout = Layout()
    with Store(Settings(url=url)) as store:
        plan = ScanPlan(prefixes=owned_prefixes(layout))
        for _ in scan_sized(store, plan, ScanState(method=method)):
            pass


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--others", type=int, default=None, help="default: as many as entries")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--skip-pipeline",
        action="store_true",
        help="leave out the pipelined sizing (slow on a big keyspace)",
    )
    parser.add_argument(
        "--skip-memkeys",
        action="store_true",
        help="leave out redis-cli --memkeys and cachectl memory",
    )
    parser.add_argument(
        "--keys-fields",
        action="append",
        default=None,
        metavar="FIELDS",
        help="a `keys --fields` value to time too (repeatable; default "
        "endpoint,params and ttl,endpoint,params)",
    )
    args = parser.parse_args()
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise SystemExit("redis-cli not found: apt-get install redis-tools")
    cli_version = subprocess.run(
        [redis_cli, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    others = args.entries if args.others is None else args.others
    keys_fields = args.keys_fields or ["endpoint,params", "ttl,endpoint,params"]
    cachectl = [sys.executable, "-m", "cachectl"]
    load_before = os.getloadavg()
    with RedisServer() as server:
        url = server.url
        host, port = server.host, str(server.port)
        with server.client() as client:
            load_seconds = load(url, args.entries, others)
            contenders = {
                "redis-cli --memkeys": lambda: run_command(
                    [redis_cli, "-h", host, "-p", port, "--memkeys"], client
                ),
                "cachectl memory": lambda: run_command(
                    [*cachectl, "--url", url, "memory", "--json"], client
                ),
                "redis-cli --scan --pattern": lambda: run_command(
                    [redis_cli, "-h", host, "-p", port, "--scan", "--pattern", "api_cache:*"],
                    client,
                ),
                "SCAN COUNT 1000 (redis-py)": lambda: run_inprocess(
                    lambda: bare_scan(client), client
                ),
                "cachectl keys --jsonl": lambda: run_command(
                    [*cachectl, "--url", url, "keys", "api_cache:*", "--jsonl"], client
                ),
            }
            if args.skip_memkeys:
                del contenders["redis-cli --memkeys"], contenders["cachectl memory"]
            for fields in keys_fields:
                contenders[f"cachectl keys --jsonl --fields {fields}"] = lambda fields=fields: (
                    run_command(
                        [
                            *cachectl,
                            "--url",
                            url,
                            "keys",
                            "api_cache:*",
                            "--jsonl",
                            "--fields",
                            fields,
                        ],
                        client,
                    )
                )
            contenders["sized pages: script"] = lambda: run_inprocess(
                lambda: sized_pages(url, "script"), client
            )
            if not args.skip_pipeline:
                contenders["sized pages: pipeline"] = lambda: run_inprocess(
                    lambda: sized_pages(url, "pipeline"), client
                )
            samples: dict[str, list[dict]] = {name: [] for name in contenders}
            for _ in range(args.runs):
                for name, run in contenders.items():  # interleaved: drift hits all alike
                    samples[name].append(run())
            dbsize = client.dbsize()
    wall = {name: statistics.median(r["wall"] for r in runs) for name, runs in samples.items()}
    results = {}
    for name, runs in samples.items():
        results[name] = {
            field: round(statistics.median(r[field] for r in runs), 2)
            for field in ("wall", "client_cpu", "server_cpu")
        }
        results[name]["walls"] = [round(r["wall"], 2) for r in runs]
    bare = wall["SCAN COUNT 1000 (redis-py)"]
    ratios = {}
    if "cachectl memory" in wall:
        ratios["memory / redis-cli --memkeys"] = (
            wall["cachectl memory"] / wall["redis-cli --memkeys"]
        )
    ratios["keys --jsonl / redis-cli --scan"] = (
        wall["cachectl keys --jsonl"] / wall["redis-cli --scan --pattern"]
    )
    ratios["keys --jsonl / bare SCAN COUNT 1000"] = wall["cachectl keys --jsonl"] / bare
    for fields in keys_fields:
        ratios[f"keys --jsonl --fields {fields} / bare SCAN COUNT 1000"] = (
            wall[f"cachectl keys --jsonl --fields {fields}"] / bare
        )
    if "sized pages: pipeline" in wall:
        ratios["sized pages: script / pipeline"] = (
            wall["sized pages: script"] / wall["sized pages: pipeline"]
        )
    report = {
        "entries": args.entries,
        "other_keys": others,
        "dbsize": dbsize,
        "load_seconds": round(load_seconds, 1),
        "runs": args.runs,
        "redis_cli": cli_version,
        "cpus": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{dbsize:,} keys ({args.entries:,} entries), {args.runs} runs each, {cli_version}, "
        f"{os.cpu_count()} CPUs; medians in seconds; load average before "
        f"{report['load_average_before']}, after {report['load_average_after']}"
    )
    print(f"{'':58}{'wall':>8}{'client CPU':>12}{'server CPU':>12}   all walls")
    for name, r in results.items():
        print(
            f"{name:58}{r['wall']:>8.2f}{r['client_cpu']:>12.2f}{r['server_cpu']:>12.2f}   {r['walls']}"
        )
    print()
    for name, ratio in report["ratios"].items():
        print(f"{name:64}{ratio:>8.3f}")


if __name__ == "__main__":
    main()
