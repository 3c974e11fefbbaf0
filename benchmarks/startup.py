"""Start-up cost: what a cachectl process pays before its own work, against a bare interpreter.

Rows, each run alternately N times in the same run (so drift hits all alike), as medians, the
difference to a bare `python -c pass`, and the ratio to it:

- `python -c pass`, and `python -c "import redis"` (what redis-py alone costs, for reference);
- `cachectl --version`, `--help`, `doctor --help`, `invalidate --help`: the frame (typer and
  cachectl's light modules) and a subcommand's options;
- commands that connect to a throwaway redis-server this script starts on a free port:
  `keys --limit 1 --jsonl` and `invalidate --key <missing> --yes` (connect, check, delete
  nothing), beside `redis-cli SCAN 0 COUNT 1` against the same server.
- shell completion, as bash's script asks for it (docs/reference/completion.md): a command name
  (`cachectl k<Tab>`: the frame alone), tag names read from the same server (`keys --tag
  <Tab>`), and the same against a port that accepts and never answers (the lookup's time
  bound, what a Tab can cost at most).

Bytecode: an installed cachectl runs from compiled .pyc files. This checkout is an editable
install, and with PYTHONDONTWRITEBYTECODE set (as in this project's sessions) every run would
compile all of cachectl again (a large share of a start-up). So the rows run with the bytecode
cached in a temporary PYTHONPYCACHEPREFIX, filled by an untimed first run of each command; one
row, marked "(no .pyc)", shows the same command compiling cachectl each time.

`--compare PYTHON` repeats the cachectl rows under another interpreter (a venv with another
typer, say) in the same run, importing this checkout's cachectl, or with `--compare-root DIR`
another checkout's (an older commit, from `git archive`).

Usage: python benchmarks/startup.py [--runs 30] [--json] [--compare /tmp/venv/bin/python]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def commands(python: str, url: str, label: str = "") -> dict[str, list[str]]:
    """The cachectl rows, run as `python -m cachectl` (the root on PYTHONPATH decides which)."""
    cachectl = [python, "-m", "cachectl"]
    rows = {
        "cachectl --version": [*cachectl, "--version"],
        "cachectl --help": [*cachectl, "--help"],
        "cachectl doctor --help": [*cachectl, "doctor", "--help"],
        "cachectl invalidate --help": [*cachectl, "invalidate", "--help"],
        "cachectl keys --limit 1 --jsonl": [
            *cachectl,
            "--url",
            url,
            "keys",
            "--limit",
            "1",
            "--jsonl",
        ],
        "cachectl invalidate --key K --yes": [
            *cachectl,
            "--url",
            url,
            "invalidate",
            "--key",
            "api_cache:startup_bench:missing",
            "--yes",
        ],
    }
    return {f"{name}{label}": argv for name, argv in rows.items()}


def completion_rows(
    python: str, url: str, silent_url: str, env: dict
) -> dict[str, tuple[list[str], dict]]:
    """Shell completion's rows: `cachectl` asked as bash's completion script asks it."""

    def asked(line: str) -> dict:
        words = line.split()
        cword = len(words) if line.endswith(" ") else len(words) - 1
        return {
            **env,
            "_CACHECTL_COMPLETE": "complete_bash",
            "COMP_WORDS": line,
            "COMP_CWORD": str(cword),
        }

    argv = [python, "-m", "cachectl"]
    return {
        "complete: cachectl k<Tab>": (argv, asked("cachectl k")),
        "complete: keys --tag <Tab> (Redis)": (argv, asked(f"cachectl --url {url} keys --tag ")),
        "complete: keys --tag <Tab> (silent server)": (
            argv,
            asked(f"cachectl --url {silent_url} keys --tag "),
        ),
    }


def _silent_port() -> str:
    """A port that accepts connections and never answers, for as long as the script runs."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held = []

    def accept() -> None:
        while True:
            held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    return f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


def measure(table: dict[str, tuple[list[str], dict]], runs: int) -> dict[str, list[float]]:
    for argv, env in table.values():  # untimed: fills the bytecode cache
        subprocess.run(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env
        )
    times: dict[str, list[float]] = {name: [] for name in table}
    for _ in range(runs):
        for name, (argv, env) in table.items():  # interleaved, so drift hits all alike
            start = time.perf_counter()
            subprocess.run(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env
            )
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    from cachectl.devserver import RedisServer

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--compare", metavar="PYTHON", help="another interpreter to run the cachectl rows with too"
    )
    parser.add_argument(
        "--compare-root",
        metavar="DIR",
        default=str(ROOT),
        help="the checkout --compare imports cachectl from (default: this one)",
    )
    args = parser.parse_args()
    pycache = tempfile.mkdtemp(prefix="cachectl-startup-pyc-")
    plain = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env = {**plain, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "PYTHONPYCACHEPREFIX": pycache}
    no_pyc = {**plain, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        with RedisServer() as server:
            with server.client() as client:
                client.set("api_cache:startup_bench:id:1", "{}")
                client.sadd("tag:startup_bench", "api_cache:startup_bench:id:1")
            table = {
                "python -c pass": ([sys.executable, "-c", "pass"], env),
                'python -c "import redis"': ([sys.executable, "-c", "import redis"], env),
            }
            table.update({n: (a, env) for n, a in commands(sys.executable, server.url).items()})
            slow = "cachectl invalidate --key K --yes"
            table[f"{slow} (no .pyc)"] = (commands(sys.executable, server.url)[slow], no_pyc)
            if args.compare:
                other = {**env, "PYTHONPATH": args.compare_root}
                table.update(
                    {
                        n: (a, other)
                        for n, a in commands(args.compare, server.url, label=" [compare]").items()
                    }
                )
            silent = _silent_port()
            table.update(completion_rows(sys.executable, server.url, silent, env))
            redis_cli = shutil.which("redis-cli")
            if redis_cli:
                table["redis-cli SCAN 0 COUNT 1"] = (
                    [
                        redis_cli,
                        "-h",
                        server.host,
                        "-p",
                        str(server.port),
                        "SCAN",
                        "0",
                        "COUNT",
                        "1",
                    ],
                    env,
                )
            times = measure(table, args.runs)
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    base = statistics.median(times["python -c pass"])
    cli = statistics.median(times["redis-cli SCAN 0 COUNT 1"]) if redis_cli else None
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append(
            {
                "command": name,
                "median_ms": round(median * 1000, 1),
                "over_bare_start_ms": round((median - base) * 1000, 1),
                "ratio_to_bare_start": round(median / base, 2),
                "ratio_to_redis_cli": round(median / cli, 2) if cli else None,
            }
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if args.json:
        print(
            json.dumps(
                {
                    "runs": args.runs,
                    "load_1min": load,
                    "compare": args.compare,
                    "compare_root": args.compare_root,
                    "results": rows,
                },
                indent=2,
            )
        )
        return
    print(
        f"{'command':<52}{'median':>9}{'over bare':>11}{'x bare':>8}{'x redis-cli':>13}"
        f"   ({args.runs} runs each, load {load:.2f})"
    )
    for row in rows:
        vs_cli = f"{row['ratio_to_redis_cli']:>13.2f}" if row["ratio_to_redis_cli"] else ""
        print(
            f"{row['command']:<52}{row['median_ms']:>7.1f}ms{row['over_bare_start_ms']:>9.1f}ms"
            f"{row['ratio_to_bare_start']:>8.2f}{vs_cli}"
        )
    if args.compare:
        print(f"[compare]: {args.compare}, cachectl from {args.compare_root}")


if __name__ == "__main__":
    main()
