"""`cachectl exporter`: a long-running Prometheus exporter (/metrics, /healthz)."""

from __future__ import annotations

import socket
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import DurationOption

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def exporter(
    ctx: typer.Context,
    listen: Annotated[
        str | None,
        typer.Option(
            "--listen",
            "-l",
            metavar="HOST:PORT",
            help="Where to serve (default: the exporter_listen setting, 127.0.0.1:9787; "
            "port 0 picks a free one).",
        ),
    ] = None,
    refresh: Annotated[
        float,
        DurationOption(
            "--refresh",
            help="How often the background refresher walks a sample of the keyspace "
            "(entries and memory by endpoint, tag sets, dangling members).",
        ),
    ] = "60s",  # type: ignore[assignment] -- the DURATION type reads it
    sample_size: Annotated[
        int,
        typer.Option(
            "--sample-size",
            min=1,
            metavar="N",
            help="Keys each refresh reads (spread over the primaries; the figures are "
            "scaled up from them).",
        ),
    ] = 10_000,
    since: Annotated[
        float,
        DurationOption(
            "--since",
            help="Response-time quantiles cover the log since this long ago.",
        ),
    ] = "5m",  # type: ignore[assignment]
    scrape_timeout: Annotated[
        float,
        DurationOption(
            "--scrape-timeout",
            help="A scrape that cannot read Redis within this answers cachectl_up 0.",
        ),
    ] = "3s",  # type: ignore[assignment]
    json_: JsonOpt = False,
) -> None:
    """Serve the cache's figures to Prometheus: /metrics (Prometheus text, or OpenMetrics when
    asked) and /healthz. Each scrape costs a fixed number of Redis round trips whatever the
    keyspace size; entries and memory by endpoint come from a paced, sampled scan in the
    background. With Redis down a scrape answers at once with cachectl_up 0. Ctrl-C or
    SIGTERM stops it (exit 0)."""
    from cachectl.errors import UsageError

    refresh_seconds, window_seconds, timeout_seconds = refresh, since, scrape_timeout
    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    settings = app_ctx.settings
    from cachectl.layout import Layout
    from cachectl.ops.exporter import (
        DEFAULT_REFRESH_RATE,
        Refresher,
        Scraper,
        parse_listen,
        scrape_settings,
    )
    from cachectl.store import Store

    host, port = parse_listen(listen if listen is not None else settings.exporter_listen)
    layout = Layout(settings.layout)
    # Two connections: the scrape's gives up fast and never retries; the refresher's scans are
    # paced and may take their time.
    scrape_store = Store(scrape_settings(settings, timeout_seconds), on_warning=app_ctx._warn)
    refresh_store = Store(settings, on_warning=app_ctx._warn)
    scraper = Scraper(scrape_store, layout, window_seconds=window_seconds, timeout=timeout_seconds)
    refresher = Refresher(
        refresh_store,
        layout,
        scraper.sampler,
        interval=refresh_seconds,
        sample=sample_size,
        rate=settings.rate or DEFAULT_REFRESH_RATE,
    )
    scraper.refresher = refresher
    try:
        server = make_server(host, port, metrics_app(scraper))
    except OSError as err:
        raise UsageError(
            f"--listen {host}:{port}: cannot listen there: {err.strerror or err}"
        ) from None
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}"
    if out.json_mode:
        out.json_line({"listening": f"{shown}:{bound_port}", "url": url, "port": bound_port})
    else:
        out.line(f"serving {url}/metrics and /healthz (Ctrl-C or SIGTERM stops)")
    refresher.start()
    thread = threading.Thread(target=server.serve_forever, name="cachectl-http", daemon=True)
    thread.start()
    from cachectl.signals import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            while thread.is_alive():
                thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
        refresher.stop()
        scraper.close()
        scrape_store.close()
        refresh_store.close()


StartResponse = Any  # wsgiref's start_response


def metrics_app(scraper: Any) -> Callable[[dict, StartResponse], Iterable[bytes]]:
    """The WSGI app: /metrics (a scrape), /healthz (the process is serving), 404 elsewhere."""
    from prometheus_client import ProcessCollector

    from cachectl.render.prometheus import exposition, metric_families

    process = ProcessCollector(registry=None)  # process_cpu_seconds_total and the like

    def app(environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            snapshot = scraper.scrape()
            families = [*metric_families(snapshot), *process.collect()]
            body, content_type = exposition(families, environ.get("HTTP_ACCEPT"))
            start_response("200 OK", [("Content-Type", content_type)])
            return [body]
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n"]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [b'<html><body><a href="/metrics">metrics</a></body></html>\n']
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    return app


def make_server(host: str, port: int, app: Any) -> Any:
    """A threading WSGI server (wsgiref) that logs nothing; IPv6 when the host is."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
    from wsgiref.simple_server import make_server as wsgi_server

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    return wsgi_server(host, port, app, Server, handler_class=Quiet)


def register(app: typer.Typer) -> None:
    app.command("exporter")(exporter)
