"""The demo's application traffic: a shop's backend answering requests through `APICache`.

    CACHECTL_URL=redis://127.0.0.1:6380/0 DEMO_API_URL=http://127.0.0.1:8080 \
        python -m cachectl.demo.traffic

(or --url and --api). The cache connects as `APICache()` does: from cachectl's settings.

Worker threads ask for products, product pages, categories and user profiles (a fixed random
sequence: the same `--seed` asks for the same things), each through the library as an
application would, with the keys, TTLs, tags and dependencies of `sample_configs/
demo_manifest.yaml`; then many callers ask for one uncached search at once, and stampede
protection makes one API call for all of them. The library writes its hit and miss counters,
access log and response times as docs/keyspace.md says, so `cachectl stats` shows this traffic.

Exit 0; 4 when Redis fails (the cache does not fail open here: a demo should show the error);
6 when API requests failed; 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from cachectl.errors import CachectlError, ExitCode, PartialFailure, UsageError

HTTP_TIMEOUT_SECONDS = 10.0
DEFAULT_REQUESTS = 150
DEFAULT_THREADS = 8
DEFAULT_STAMPEDE_CALLERS = 25
DEFAULT_SEED = 7
STAMPEDE_QUERY = "lamp"
PRODUCT_IDS = range(1001, 1025)
CATEGORIES = ("electronics", "books", "garden", "toys")
USER_IDS = range(1, 9)
PAGE_LIMIT = 3


@dataclass
class TrafficResult:
    api_url: str
    requests: int = 0
    api_calls: int = 0
    failed: int = 0
    cache_answer_ms: list[float] = field(default_factory=list)
    api_answer_ms: list[float] = field(default_factory=list)
    by_endpoint: dict[str, dict[str, int]] = field(default_factory=dict)
    stampede_callers: int = 0
    stampede_api_calls: int = 0
    stampede_query: str = STAMPEDE_QUERY
    duration_seconds: float = 0.0
    first_error: str | None = None

    @property
    def hits(self) -> int:
        return len(self.cache_answer_ms)

    @property
    def misses(self) -> int:
        return len(self.api_answer_ms)

    def to_dict(self) -> dict:
        def p50(values: list[float]) -> float | None:
            return round(statistics.median(values), 3) if values else None

        return {
            "api_url": self.api_url,
            "requests": self.requests,
            "hits": self.hits,
            "misses": self.misses,
            "api_calls": self.api_calls,
            "failed": self.failed,
            "hit_rate": round(self.hits / self.requests, 4) if self.requests else None,
            "cache_answer_ms_p50": p50(self.cache_answer_ms),
            "api_answer_ms_p50": p50(self.api_answer_ms),
            "endpoints": self.by_endpoint,
            "stampede": {
                "callers": self.stampede_callers,
                "api_calls": self.stampede_api_calls,
                "endpoint": "search",
                "params": {"q": self.stampede_query},
            },
            "duration_seconds": round(self.duration_seconds, 3),
            "first_error": self.first_error,
        }


class Shop:
    """The application: each handler answers through the cache, calling the API on a miss."""

    def __init__(self, cache, api_url: str):
        self.cache = cache
        self.api_url = api_url.rstrip("/")
        self._lock = threading.Lock()
        self._called = threading.local()
        self.api_calls = 0

        # The decorator builds the params from the call: user_profile(3) is {"id": 3}, the
        # key api_cache:user_profile:id:3.
        @cache.cached("user_profile", ttl=300, tags=["users"])
        def user_profile(id: int) -> dict:
            return self.fetch(f"/users/{id}")

        self.user_profile = user_profile

    def fetch(self, path: str):
        with self._lock:
            self.api_calls += 1
        self._called.value = True
        with urllib.request.urlopen(self.api_url + path, timeout=HTTP_TIMEOUT_SECONDS) as answer:
            return json.loads(answer.read())

    def called_api(self) -> bool:
        """Whether this thread called the API since the last time it asked."""
        called, self._called.value = getattr(self._called, "value", False), False
        return called

    def product(self, product_id: int) -> dict:
        return self.cache.cache_api_call(
            "product_detail",
            {"id": product_id},
            lambda: self.fetch(f"/products/{product_id}"),
            ttl=3600,
            tags=["products"],
            depends_on=[f"product_{product_id}"],
        )

    def product_page(self, category: str, page: int) -> dict:
        params = {"category": category, "limit": PAGE_LIMIT, "page": page}
        return self.cache.cache_api_call(
            "products",
            params,
            lambda: self.fetch(f"/products?category={category}&limit={PAGE_LIMIT}&page={page}"),
            ttl=600,
            tags=["catalog", "products", f"category_{category}"],
        )

    def categories(self) -> list:
        return self.cache.cache_api_call(
            "categories", None, lambda: self.fetch("/categories"), ttl=600, tags=["catalog"]
        )

    def search(self, text: str) -> dict:
        return self.cache.cache_api_call(
            "search",
            {"q": text},
            lambda: self.fetch(f"/search?q={urllib.request.quote(text)}"),
            ttl=120,
            tags=["search"],
            # An empty result is not worth keeping: the next caller asks the API again.
            cache_if=lambda answer: bool(answer.get("results")),
        )


def plan_requests(count: int, seed: int) -> list[tuple[str, tuple]]:
    """The requests to make, in order: (handler name, arguments)."""
    rng = random.Random(seed)
    kinds = (
        ("product", 5, lambda: (rng.choice(PRODUCT_IDS),)),
        ("product_page", 3, lambda: (rng.choice(CATEGORIES), rng.randint(1, 2))),
        ("user_profile", 2, lambda: (rng.choice(USER_IDS),)),
        ("categories", 1, lambda: ()),
    )
    names = [name for name, weight, _ in kinds for _ in range(weight)]
    makers = {name: make for name, _, make in kinds}
    plan = []
    for _ in range(count):
        name = rng.choice(names)
        plan.append((name, makers[name]()))
    return plan


def run_traffic(
    url: str | None,
    api_url: str,
    *,
    requests: int = DEFAULT_REQUESTS,
    threads: int = DEFAULT_THREADS,
    stampede_callers: int = DEFAULT_STAMPEDE_CALLERS,
    seed: int = DEFAULT_SEED,
) -> TrafficResult:
    from cachectl.library import APICache

    result = TrafficResult(api_url=api_url)
    started = time.perf_counter()
    lock = threading.Lock()
    cache = APICache(url, fail_open=False)
    try:
        shop = Shop(cache, api_url)

        def answer(name: str, args: tuple) -> None:
            began = time.perf_counter()
            try:
                getattr(shop, name)(*args)
            except CachectlError:
                raise
            except (OSError, ValueError) as exc:  # the API failed: urllib's errors are OSErrors
                with lock:
                    result.failed += 1
                    result.first_error = result.first_error or f"{name}{args}: {exc}"
                shop.called_api()
                return
            elapsed_ms = (time.perf_counter() - began) * 1000
            from_api = shop.called_api()
            with lock:
                tally = result.by_endpoint.setdefault(
                    "product_detail" if name == "product" else
                    "products" if name == "product_page" else name,
                    {"requests": 0, "api_calls": 0},
                )  # fmt: skip
                tally["requests"] += 1
                tally["api_calls"] += from_api
                (result.api_answer_ms if from_api else result.cache_answer_ms).append(elapsed_ms)

        plan = plan_requests(requests, seed)
        with ThreadPoolExecutor(threads, thread_name_prefix="shop") as pool:
            for done in [pool.submit(answer, name, args) for name, args in plan]:
                done.result()
        result.requests = len(plan)
        before = shop.api_calls

        # A stampede: every caller misses the same entry at the same moment.
        gate = threading.Barrier(stampede_callers) if stampede_callers else None

        def stampede_caller() -> None:
            gate.wait(HTTP_TIMEOUT_SECONDS)
            shop.search(STAMPEDE_QUERY)

        if stampede_callers:
            with ThreadPoolExecutor(stampede_callers, thread_name_prefix="stampede") as pool:
                for done in [pool.submit(stampede_caller) for _ in range(stampede_callers)]:
                    done.result()
        result.stampede_callers = stampede_callers
        result.stampede_api_calls = shop.api_calls - before
        result.api_calls = before
    finally:
        cache.close()  # writes the counters, the access log and the response times
    result.duration_seconds = time.perf_counter() - started
    return result


def render_traffic(out, result: TrafficResult) -> None:
    data = result.to_dict()
    rate = f"{data['hit_rate']:.0%}" if data["hit_rate"] is not None else "-"

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    out.line(f"Application traffic through cachectl.APICache: {result.requests} requests")
    out.line(
        f"  hits        {result.hits:>5}  {rate:>4}   answer p50 {ms(data['cache_answer_ms_p50'])}"
    )
    out.line(
        f"  misses      {result.misses:>5}         answer p50 {ms(data['api_answer_ms_p50'])}"
        "  (the API's answer, then stored)"
    )
    if result.failed:
        out.line(f"  failed      {result.failed:>5}         first: {result.first_error}")
    out.line(f"  API calls   {result.api_calls:>5}         (without the cache: {result.requests})")
    for endpoint, tally in sorted(result.by_endpoint.items()):
        out.line(
            f"    {endpoint:<16} {tally['requests']:>4} requests, {tally['api_calls']:>3} API calls"
        )
    if result.stampede_callers:
        calls = result.stampede_api_calls
        out.line(
            f"  stampede    {result.stampede_callers} callers asked for search q={STAMPEDE_QUERY!r} at "
            f"once: {calls} API call{'s' if calls != 1 else ''}"
        )
    out.line(
        "  the library wrote its hit/miss counters, access log and response times: "
        "`cachectl stats` shows them"
    )


def main(argv: list[str] | None = None) -> int:
    from cachectl.render.output import Output

    parser = argparse.ArgumentParser(
        prog="python -m cachectl.demo.traffic",
        description="Application traffic through cachectl.APICache against the demo API.",
    )
    parser.add_argument(
        "--url",
        help="Redis URL of the cache (default: cachectl's settings: "
        "$CACHECTL_URL, cachectl.yaml...)",
    )
    parser.add_argument(
        "--api",
        default=os.environ.get("DEMO_API_URL"),
        help="base URL of the demo API (default: $DEMO_API_URL)",
    )
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS)
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    parser.add_argument(
        "--stampede",
        type=int,
        default=DEFAULT_STAMPEDE_CALLERS,
        help="callers of one uncached search at once (0: none)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--json", action="store_true", help="one JSON envelope on stdout")
    args = parser.parse_args(argv)
    out = Output(json_mode=args.json, command="demo traffic")
    try:
        if not args.api:
            raise UsageError("no demo API: pass --api URL or set DEMO_API_URL")
        if args.requests < 0 or args.threads < 1 or args.stampede < 0:
            raise UsageError("--requests and --stampede must be 0 or more, --threads 1 or more")
        result = run_traffic(
            args.url,
            args.api,
            requests=args.requests,
            threads=args.threads,
            stampede_callers=args.stampede,
            seed=args.seed,
        )
    except KeyboardInterrupt:
        out.error(CachectlError("interrupted"))
        return ExitCode.INTERRUPTED
    except CachectlError as err:
        out.error(err)
        return err.exit_code
    failure = None
    if result.failed:
        failure = PartialFailure(
            f"{result.failed} API request(s) failed; first: {result.first_error}"
        )
    if out.json_mode:
        out.json(result.to_dict(), ok=failure is None, error=failure)
    else:
        render_traffic(out, result)
    if failure is not None:
        out.error(failure, envelope=False)
        return failure.exit_code
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
