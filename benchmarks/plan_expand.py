"""Plan expansion alone (no network, no Redis), for benchmarks/warm.py's manifest shapes and
sample_configs/manifest.yaml, in the same run, interleaved:

- the entry keys alone, by the fast path (`Endpoint.keys`, the key compiled once per endpoint)
  against the reference path (`Layout.entry` on each combination's params), as a ratio;
- whole requests (`Endpoint.requests`, `request_for` on each combination), per request;
- the check that no two requests write one key (`check_unique_keys`), what warm does before its
  first request, per planned entry: as it runs (an endpoint proven by its matrix values) and
  request by request (what endpoints sharing a name cost).

Usage:
  python benchmarks/plan_expand.py [--entries 200000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cachectl.layout import Layout, LayoutConfig
from cachectl.manifest import Plan, _product, load_manifests
from cachectl.manifest.keys import _repeats_request_by_request


def warm_manifest(directory: Path, entries: int, sharded: bool) -> Path:
    """The manifests benchmarks/warm.py writes (with tags)."""
    path = directory / f"warm-{entries}{'-sharded' if sharded else ''}.yaml"
    if sharded:
        matrix = f"{{shard: {{range: [1, {max(1, entries // 1000)}]}}, id: {{range: [1, 1000]}}}}"
        url, tags = "/items/{shard}/{id}", '[items, "item_{shard}_{id}"]'
    else:
        matrix, url, tags = (
            f"{{id: {{range: [1, {entries}]}}}}",
            "/items/{id}",
            '[items, "item_{id}"]',
        )
    path.write_text(
        "version: 1\n"
        'defaults: {base_url: "http://127.0.0.1:8080", ttl: 1h, retries: 2, timeout: 10s}\n'
        "endpoints:\n"
        f'  - name: items\n    url: "{url}"\n    matrix: {matrix}\n    tags: {tags}\n'
    )
    return path


def reference(plan: Plan):
    for endpoint in plan.endpoints:
        names = [name for name, _ in endpoint.matrix]
        for combo in _product([source for _, source in endpoint.matrix]):
            params = dict(endpoint.params)
            params.update(zip(names, combo))
            yield plan.layout.entry(endpoint.name, params, headers=endpoint.headers)


def fast(plan: Plan):
    for endpoint in plan.endpoints:
        yield from endpoint.keys(plan.layout)


def requests(plan: Plan):
    return plan.requests()


def _fresh(plan: Plan) -> Plan:
    """The plan again, not yet checked (a Plan checks its keys once)."""
    return Plan(plan.manifests, plan.layout)


def timed(expand, plan: Plan, n: int) -> float:
    """Seconds to expand n requests, cycling the plan when it holds fewer."""
    start = time.perf_counter()
    left = n
    while left:
        before = left
        for _ in itertools.islice(expand(plan), left):
            left -= 1
        assert left < before
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    env = {"API_TOKEN": "t0ken", "API_BASE_URL": "https://api.example.com/v2"}
    report = {
        "entries": args.entries,
        "rounds": args.rounds,
        "loadavg": os.getloadavg(),
        "cases": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        cases = {
            "warm.py shape (range)": warm_manifest(Path(tmp), args.entries, sharded=False),
            "warm.py shape (shard x id)": warm_manifest(Path(tmp), args.entries, sharded=True),
            "sample_configs/manifest.yaml": ROOT / "sample_configs" / "manifest.yaml",
        }
        layouts = {
            "standard": Layout(),
            "versioned": Layout(
                LayoutConfig(scheme="versioned", header_allowlist=("Accept-Language",))
            ),
        }
        for label, path in cases.items():
            for scheme, layout in layouts.items():
                plan = Plan(load_manifests([path], env=env), layout)
                ref_s, fast_s, requests_s = [], [], []
                for _ in range(args.rounds):
                    ref_s.append(timed(reference, plan, args.entries))
                    fast_s.append(timed(fast, plan, args.entries))
                    requests_s.append(timed(requests, plan, args.entries))
                ref, new = statistics.median(ref_s), statistics.median(fast_s)
                check_s, by_request_s = [], []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    plan.check_unique_keys.__func__(_fresh(plan))
                    check_s.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    _repeats_request_by_request(plan.endpoints, plan.layout)
                    by_request_s.append(time.perf_counter() - started)
                total = plan.total
                report["cases"][f"{label}, {scheme}"] = {
                    "key_reference_us_per_entry": round(ref / args.entries * 1e6, 2),
                    "key_fast_us_per_entry": round(new / args.entries * 1e6, 2),
                    "key_fast_over_reference": round(new / ref, 3),
                    "request_us_per_entry": round(
                        statistics.median(requests_s) / args.entries * 1e6, 2
                    ),
                    "key_check_us_per_entry": round(statistics.median(check_s) / total * 1e6, 3),
                    "key_check_by_request_us_per_entry": round(
                        statistics.median(by_request_s) / total * 1e6, 2
                    ),
                }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{args.entries} requests, median of {args.rounds}; load average {report['loadavg']}")
    for label, row in report["cases"].items():
        print(
            f"  {label:40} key: reference {row['key_reference_us_per_entry']:5.2f} us  "
            f"fast {row['key_fast_us_per_entry']:5.2f} us  "
            f"ratio {row['key_fast_over_reference']:.3f}  "
            f"request {row['request_us_per_entry']:5.2f} us  "
            f"key check {row['key_check_us_per_entry']:6.3f} us "
            f"(by request {row['key_check_by_request_us_per_entry']:5.2f} us)"
        )


if __name__ == "__main__":
    main()
