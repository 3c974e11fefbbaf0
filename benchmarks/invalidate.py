"""`cachectl invalidate` against the shell pipelines people use instead, on a real server.

Everything is measured in one run, side by side, on a fresh copy of the same keyspace each
time, and reported as ratios:

Pattern: N matching entries (`api_cache:products:id:*`) among 2N keys (N/2 entries of another
endpoint, N/2 application keys). Compared:
- `redis-cli --scan --pattern P | xargs -d '\\n' -n 1000 redis-cli unlink` (the usual pipeline);
- the floor: the same keys with their names already known, UNLINKed by `redis-cli --pipe` in
  commands of 1,000 names (protocol file prepared before the clock starts);
- `cachectl invalidate --pattern P --yes` as a process (start-up included), with its default
  index cleanup (a second pass over the keyspace for tag and dependency sets) and with
  `--index-cleanup skip`, at the default SCAN COUNT (1000) and larger ones; cachectl's own run
  time (without start-up) and the server CPU it cost are reported too;
- `KEYS P` then UNLINK, for its stall only.
Tag: a tag set of M entries among 2M keys: `redis-cli smembers tag:T | xargs ... unlink` against
`cachectl invalidate --tag T --yes`.

While each runs, a probe process sends PING every millisecond and records the longest wait
(the stall other clients see); a probe run against the idle server gives its own noise floor.

Usage: python benchmarks/invalidate.py [--entries 1000000] [--tag-entries 100000] [--runs 3]
                                       [--json] [--out benchmarks/results/invalidate.json]
       python benchmarks/invalidate.py --probe PORT   (the probe itself; prints JSON)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

PATTERN = "api_cache:products:*"
MATCHING_PREFIX = "api_cache:products:id"
VALUE_BYTES = 20
# SADDs members api_cache:products:id:<i> for i in [lo, hi] into KEYS[1], server side.
TAG_LUA = (
    "for i=tonumber(ARGV[1]),tonumber(ARGV[2]) do "
    "redis.call('SADD', KEYS[1], 'api_cache:products:id:' .. i) end return 1"
)


# --- the probe ---------------------------------------------------------------------------------


def probe(port: int) -> None:
    """PING every millisecond until SIGTERM; prints the longest round trip and a few counts."""
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    try:
        os.nice(-10)  # fewer of our own scheduling delays counted as server stalls
    except OSError:
        pass
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    waits: list[float] = []
    while not stop:
        started = time.perf_counter()
        sock.sendall(b"PING\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += sock.recv(64)
        waits.append(time.perf_counter() - started)
        time.sleep(0.001)
    waits.sort()
    print(
        json.dumps(
            {
                "pings": len(waits),
                "max_ms": round(waits[-1] * 1000, 2) if waits else None,
                "p999_ms": round(waits[int(len(waits) * 0.999)] * 1000, 2) if waits else None,
                "over_10ms": sum(1 for w in waits if w > 0.010),
            }
        )
    )


class Probe:
    def __init__(self, port: int):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--probe", str(port)], stdout=subprocess.PIPE, text=True
        )
        time.sleep(0.3)  # connected and pinging before the clock starts

    def result(self) -> dict:
        self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=30)
        return json.loads(out)


# --- keyspaces ---------------------------------------------------------------------------------


def populate_pattern(client, n: int) -> None:
    client.flushall()
    client.execute_command("DEBUG", "POPULATE", n, MATCHING_PREFIX, VALUE_BYTES)
    client.execute_command("DEBUG", "POPULATE", n // 2, "api_cache:users:id", VALUE_BYTES)
    client.execute_command("DEBUG", "POPULATE", n - n // 2, "session", VALUE_BYTES)


def populate_tag(client, m: int) -> None:
    client.flushall()
    client.execute_command("DEBUG", "POPULATE", m, MATCHING_PREFIX, VALUE_BYTES)
    client.execute_command("DEBUG", "POPULATE", m, "session", VALUE_BYTES)
    for lo in range(0, m, 10_000):
        client.eval(TAG_LUA, 1, "tag:T", lo, min(lo + 9_999, m - 1))


def unlink_protocol(path: Path, n: int) -> None:
    """UNLINK commands of 1,000 names each, for every key DEBUG POPULATE made."""
    with open(path, "wb") as out:
        for lo in range(0, n, 1000):
            names = [f"{MATCHING_PREFIX}:{i}".encode() for i in range(lo, min(lo + 1000, n))]
            out.write(b"*%d\r\n$6\r\nUNLINK\r\n" % (len(names) + 1))
            out.writelines(b"$%d\r\n%s\r\n" % (len(name), name) for name in names)


# --- tools -------------------------------------------------------------------------------------


def shell(command: str) -> None:
    subprocess.run(
        command, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def cachectl(url: str, *args: str) -> dict:
    """Runs the CLI as an installed one starts (its bytecode cached, kept out of the tree);
    returns its own run time (duration_seconds from --json) and its peak RSS."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "cachectl-bench-pycache")
    done = subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            sys.executable,
            "-m",
            "cachectl",
            "--url",
            url,
            "invalidate",
            *args,
            "--yes",
            "--json",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return {
        "own_duration_s": json.loads(done.stdout)["data"]["duration_seconds"],
        "peak_rss_mb": round(int(done.stderr.split()[-1]) / 1024, 1),
    }


def measure(client, port: int, populate, tool) -> dict:
    populate()
    # The server's own latency monitor: its longest event (a command, an expiry cycle...),
    # free of the probe's scheduling noise on a busy machine.
    client.config_set("latency-monitor-threshold", 1)
    client.execute_command("LATENCY", "RESET")
    cpu_before = _server_cpu(client)
    watcher = Probe(port)
    started = time.perf_counter()
    inner = tool()
    wall = time.perf_counter() - started
    stall = watcher.result()
    events = client.execute_command("LATENCY", "LATEST")
    row = {
        "wall_s": round(wall, 3),
        "server_cpu_s": round(_server_cpu(client) - cpu_before, 3),
        "keys_left": client.dbsize(),
        "probe": stall,
        "server_longest_event_ms": max((int(e[3]) for e in events), default=0),
    }
    row.update(inner or {})
    return row


def _server_cpu(client) -> float:
    info = client.info("cpu")
    return info["used_cpu_user"] + info["used_cpu_sys"]


def run(args) -> dict:
    from cachectl.devserver import RedisServer

    n, m = args.entries, args.tag_entries
    load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="cachectl-bench-invalidate-"))
    protocol = workdir / "unlink.resp"
    unlink_protocol(protocol, n)
    server = RedisServer(extra_args=["--enable-debug-command", "yes"]).start()
    try:
        client = server.client()
        port, url = server.port, server.url
        cli = f"redis-cli -p {port}"
        pattern_tools = {
            "redis-cli --scan | xargs unlink": lambda: shell(
                f"{cli} --scan --pattern '{PATTERN}' | xargs -d '\\n' -n 1000 {cli} unlink"
            ),
            "floor: redis-cli --pipe UNLINK": lambda: shell(f"{cli} --pipe < {protocol}"),
            "cachectl": lambda: cachectl(url, "--pattern", PATTERN),
            "cachectl --index-cleanup skip": lambda: cachectl(
                url, "--pattern", PATTERN, "--index-cleanup", "skip"
            ),
            "cachectl --count 2000": lambda: cachectl(url, "--pattern", PATTERN, "--count", "2000"),
            "cachectl --count 4000": lambda: cachectl(url, "--pattern", PATTERN, "--count", "4000"),
            "cachectl --index-cleanup skip --count 4000": lambda: cachectl(
                url, "--pattern", PATTERN, "--index-cleanup", "skip", "--count", "4000"
            ),
            "KEYS then UNLINK": lambda: shell(
                f"{cli} keys '{PATTERN}' | xargs -d '\\n' -n 1000 {cli} unlink"
            ),
        }
        tag_tools = {
            "redis-cli smembers | xargs unlink": lambda: shell(
                f"{cli} smembers tag:T | xargs -d '\\n' -n 1000 {cli} unlink"
            ),
            "cachectl --tag": lambda: cachectl(url, "--tag", "T"),
        }
        results: dict = {
            "pattern": {k: [] for k in pattern_tools},
            "tag": {k: [] for k in tag_tools},
        }
        cachectl(url, "--tag", "warm-up")  # compiles cachectl's bytecode once, untimed
        idle = Probe(port)
        time.sleep(2)
        results["probe_idle"] = idle.result()
        for round_no in range(args.runs):
            # Rotated each round, so drift (other load, a warming page cache) hits all alike.
            for name in _rotated(list(pattern_tools), round_no):
                row = measure(
                    client, port, lambda: populate_pattern(client, n), pattern_tools[name]
                )
                results["pattern"][name].append(row)
                _say(
                    f"pattern  {name:<44} {row['wall_s']:>7.3f}s  max stall "
                    f"{row['probe']['max_ms']} ms"
                )
            for name in _rotated(list(tag_tools), round_no):
                row = measure(client, port, lambda: populate_tag(client, m), tag_tools[name])
                results["tag"][name].append(row)
                _say(
                    f"tag      {name:<44} {row['wall_s']:>7.3f}s  max stall "
                    f"{row['probe']['max_ms']} ms"
                )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    results["load_average"] = {
        "before": round(load_before, 2),
        "after": round(os.getloadavg()[0], 2),
    }
    return summarize(results, args)


def _rotated(items: list, k: int) -> list:
    k %= len(items)
    return items[k:] + items[:k]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def summarize(results: dict, args) -> dict:
    def median(rows, field):
        values = [r[field] for r in rows if field in r]
        return round(statistics.median(values), 3) if values else None

    def worst(rows, field):
        return max(r["probe"]["max_ms"] if field == "probe" else r[field] for r in rows)

    summary = {}
    for case in ("pattern", "tag"):
        summary[case] = {
            name: {
                "wall_s_median": median(rows, "wall_s"),
                "own_duration_s_median": median(rows, "own_duration_s"),
                "peak_rss_mb_median": median(rows, "peak_rss_mb"),
                "server_cpu_s_median": median(rows, "server_cpu_s"),
                "max_stall_ms_worst": worst(rows, "probe"),
                "server_longest_event_ms_worst": worst(rows, "server_longest_event_ms"),
                "keys_left": [r["keys_left"] for r in rows],
            }
            for name, rows in results[case].items()
        }
    p, t = summary["pattern"], summary["tag"]
    xargs, floor = p["redis-cli --scan | xargs unlink"], p["floor: redis-cli --pipe UNLINK"]
    ratios = {}
    for name in (n for n in p if n.startswith("cachectl")):
        ratios[f"pattern: {name} / xargs pipeline (aim <= 0.25)"] = round(
            p[name]["wall_s_median"] / xargs["wall_s_median"], 3
        )
        ratios[f"pattern: {name} / floor (aim <= 5)"] = round(
            p[name]["wall_s_median"] / floor["wall_s_median"], 2
        )
        ratios[f"pattern: {name} run without start-up / floor"] = round(
            p[name]["own_duration_s_median"] / floor["wall_s_median"], 2
        )
        ratios[f"pattern: {name} server CPU / floor"] = round(
            p[name]["server_cpu_s_median"] / floor["wall_s_median"], 2
        )
    tag_x = t["redis-cli smembers | xargs unlink"]["wall_s_median"]
    ratios["tag: cachectl / smembers pipeline (aim <= 0.5)"] = round(
        t["cachectl --tag"]["wall_s_median"] / tag_x, 3
    )
    ratios["tag: cachectl run without start-up / smembers pipeline"] = round(
        t["cachectl --tag"]["own_duration_s_median"] / tag_x, 3
    )
    return {
        "entries": args.entries,
        "keys": 2 * args.entries,
        "tag_entries": args.tag_entries,
        "runs": args.runs,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "redis_cli": subprocess.run(
                ["redis-cli", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
            # 1-minute load average: the machine is shared, so ratios move with it.
            "load_average": results.get("load_average"),
        },
        "probe_idle": results["probe_idle"],
        "ratios": ratios,
        "summary": summary,
        "runs_detail": {k: results[k] for k in ("pattern", "tag")},
    }


def print_report(report: dict) -> None:
    print(
        f"{report['entries']:,} matching entries among {report['keys']:,} keys; tag of "
        f"{report['tag_entries']:,}; median of {report['runs']} runs; "
        f"{report['machine']['cpus']} CPUs, {report['machine']['redis_cli']}"
    )
    print(
        f"probe against the idle server: max {report['probe_idle']['max_ms']} ms "
        "(its own scheduling noise); 'server event' is the server's latency monitor"
    )
    for case in ("pattern", "tag"):
        print(f"\n{case}:")
        print(
            f"  {'tool':<44}{'wall':>9}{'own run':>9}{'server CPU':>12}{'max stall':>11}"
            f"{'server event':>14}{'peak RSS':>10}"
        )
        for name, row in report["summary"][case].items():
            own = f"{row['own_duration_s_median']:.3f}s" if row["own_duration_s_median"] else ""
            rss = f"{row['peak_rss_mb_median']:.0f}MB" if row["peak_rss_mb_median"] else ""
            print(
                f"  {name:<44}{row['wall_s_median']:>8.3f}s{own:>9}"
                f"{row['server_cpu_s_median']:>11.3f}s{row['max_stall_ms_worst']:>9.1f}ms"
                f"{row['server_longest_event_ms_worst']:>12}ms{rss:>10}"
            )
    print("\nratios:")
    for name, value in report["ratios"].items():
        print(f"  {name}: {value}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--probe", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--tag-entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--out",
        default=str(HERE / "results" / "invalidate.json"),
        help="where the JSON report is written ('' for nowhere)",
    )
    args = parser.parse_args()
    if args.probe:
        probe(args.probe)
        return
    report = run(args)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
