"""The demo's sample API: a small aiohttp server on 127.0.0.1 serving a shop's catalogue.

Every answer is made to wait a little (`latency`, the search four times as long), as a real
origin would, so that the demo shows what a cache hit saves. The data is fixed: the same ids and
prices on every run.

    GET /categories                          every category with its product count
    GET /products?category=C&page=P&limit=L  one page of a category's products
    GET /products/{id}                       one product (404 for an unknown id)
    GET /users/{id}                          one user (404 for an unknown id)
    GET /search?q=TEXT                       products whose name holds TEXT (the slow one)
    GET /health                              {"ok": true}, at once

Run on its own: `python -m cachectl.demo.api --port 8080` (Ctrl-C stops it).
"""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from typing_extensions import Self

HOST = "127.0.0.1"
DEFAULT_LATENCY_SECONDS = 0.05
SEARCH_SLOWDOWN = 4
START_TIMEOUT_SECONDS = 10.0

CATEGORIES = {
    "electronics": ("Electronics", ["Desk lamp", "USB-C hub", "Headphones", "Webcam",
                                    "Keyboard", "Monitor arm"]),
    "books": ("Books", ["Redis in practice", "The SRE handbook", "Caching at scale",
                        "Python for ops", "On call", "Queues and logs"]),
    "garden": ("Garden", ["Watering can", "Pruning shears", "Seed tray", "Garden hose",
                          "Compost bin", "Sun lamp"]),
    "toys": ("Toys", ["Puzzle cube", "Kite", "Wooden train", "Yo-yo", "Building bricks",
                      "Lava lamp"]),
}  # fmt: skip
FIRST_PRODUCT_ID = 1001
USERS = {
    1: ("Ada", "team"),
    2: ("Grace", "free"),
    3: ("Linus", "pro"),
    4: ("Margaret", "team"),
    5: ("Ken", "free"),
    6: ("Barbara", "pro"),
    7: ("Dennis", "free"),
    8: ("Frances", "team"),
}


def _products() -> dict[int, dict]:
    products = {}
    product_id = FIRST_PRODUCT_ID
    for slug, (_, names) in CATEGORIES.items():
        for position, name in enumerate(names):
            products[product_id] = {
                "id": product_id,
                "name": name,
                "category": slug,
                "price": round(4.5 + (product_id % 17) * 3.25, 2),
                "stock": (product_id * 7) % 40,
                "rank": position + 1,
            }
            product_id += 1
    return products


PRODUCTS = _products()


class DemoAPI:
    """The sample API in a background thread with its own event loop. A context manager."""

    def __init__(self, *, latency: float = DEFAULT_LATENCY_SECONDS, port: int = 0):
        self.latency = latency
        self.port = port
        self.requests: Counter[str] = Counter()  # answers given, by the first part of the path
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> DemoAPI:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="cachectl-demo-api", daemon=True)
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS):
            self.stop()
            raise RuntimeError("the demo API did not start")
        if self._error is not None:
            self._thread.join(START_TIMEOUT_SECONDS)
            raise self._error
        return self

    def stop(self) -> None:
        """Closes the listening socket and every connection, and ends the thread."""
        if self._thread is None:
            return
        if self._thread.is_alive() and self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(START_TIMEOUT_SECONDS)
        self._thread = None

    def _serve(self) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(make_app(self), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, HOST, self.port)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]
        except BaseException as exc:  # noqa: BLE001 -- handed to start(), which raises it
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()


def make_app(api: DemoAPI) -> web.Application:
    async def answer(kind: str, body: object, *, status: int = 200, slow: int = 1):
        api.requests[kind] += 1
        await asyncio.sleep(api.latency * slow)
        return web.json_response(body, status=status)

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def categories(request: web.Request) -> web.Response:
        body = [
            {"slug": slug, "name": name, "product_count": len(names)}
            for slug, (name, names) in CATEGORIES.items()
        ]
        return await answer("categories", body)

    async def products(request: web.Request) -> web.Response:
        try:
            page = max(1, int(request.query.get("page", "1")))
            limit = min(50, max(1, int(request.query.get("limit", "10"))))
        except ValueError:
            return await answer("products", {"error": "page and limit are numbers"}, status=400)
        category = request.query.get("category")
        chosen = [p for p in PRODUCTS.values() if category in (None, p["category"])]
        items = chosen[(page - 1) * limit : page * limit]
        body = {
            "category": category,
            "page": page,
            "limit": limit,
            "total": len(chosen),
            "items": [{k: p[k] for k in ("id", "name", "price")} for p in items],
        }
        return await answer("products", body)

    async def product(request: web.Request) -> web.Response:
        found = PRODUCTS.get(_int(request.match_info["id"]))
        if found is None:
            return await answer("products", {"error": "no such product"}, status=404)
        return await answer("products", found)

    async def user(request: web.Request) -> web.Response:
        user_id = _int(request.match_info["id"])
        if user_id not in USERS:
            return await answer("users", {"error": "no such user"}, status=404)
        name, plan = USERS[user_id]
        body = {"id": user_id, "name": name, "email": f"{name.lower()}@example.com", "plan": plan}
        return await answer("users", body)

    async def search(request: web.Request) -> web.Response:
        text = request.query.get("q", "").lower()
        found = [p["id"] for p in PRODUCTS.values() if text and text in p["name"].lower()]
        return await answer("search", {"q": text, "results": found}, slow=SEARCH_SLOWDOWN)

    app = web.Application()
    app.router.add_get("/health", health)
    app.router.add_get("/categories", categories)
    app.router.add_get("/products", products)
    app.router.add_get("/products/{id}", product)
    app.router.add_get("/users/{id}", user)
    app.router.add_get("/search", search)
    return app


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cachectl.demo.api", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    parser.add_argument(
        "--latency",
        type=float,
        default=DEFAULT_LATENCY_SECONDS,
        help="seconds each answer waits (default %(default)s)",
    )
    args = parser.parse_args(argv)
    api = DemoAPI(latency=args.latency, port=args.port).start()
    print(f"the demo API is at {api.url} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()


if __name__ == "__main__":
    main()
