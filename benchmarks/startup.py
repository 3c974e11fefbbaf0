"""Start-up cost: `cachectl --version` and `cachectl --help` against a bare `python -c pass`.

Runs each command alternately N times in the same run and reports medians, the difference to
a bare interpreter start, and the ratio. Usage: python benchmarks/startup.py [--runs 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "cachectl --version": [sys.executable, "-m", "cachectl", "--version"],
    "cachectl --help": [sys.executable, "-m", "cachectl", "--help"],
    "cachectl doctor --help": [sys.executable, "-m", "cachectl", "doctor", "--help"],
}


def measure(runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, argv in COMMANDS.items():  # interleaved, so drift hits all alike
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    times = measure(args.runs)
    base = statistics.median(times["python -c pass"])
    rows = []
    for name, samples in times.items():
        median = statistics.median(samples)
        rows.append({
            "command": name,
            "median_ms": round(median * 1000, 1),
            "over_bare_start_ms": round((median - base) * 1000, 1),
            "ratio_to_bare_start": round(median / base, 2),
        })
    if args.json:
        print(json.dumps({"runs": args.runs, "results": rows}, indent=2))
        return
    print(f"{'command':<26}{'median':>10}{'over bare':>12}{'ratio':>8}   ({args.runs} runs each)")
    for row in rows:
        print(f"{row['command']:<26}{row['median_ms']:>8.1f}ms{row['over_bare_start_ms']:>10.1f}ms"
              f"{row['ratio_to_bare_start']:>8.2f}")


if __name__ == "__main__":
    main()
