"""People's (and machines') view of `cachectl warm` and `cachectl manifest validate|expand`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from cachectl.keytext import show_bytes
from cachectl.redact import mask_headers
from cachectl.render.output import JSON_SCHEMA_VERSION, Output, dumps, plain
from cachectl.render.units import counted, human_bytes, human_duration

if TYPE_CHECKING:
    from cachectl.manifest import Manifest, Plan
    from cachectl.ops.warm import WarmProgress, WarmResult

PLAIN_PROGRESS_EVERY_SECONDS = 5.0


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _reasons(counts: dict) -> str:
    return ", ".join(
        f"{reason} {n:,}" for reason, n in sorted(counts.items(), key=lambda kv: -kv[1])
    )


# ---- progress -----------------------------------------------------------------------------------


class WarmProgressView:
    """A progress bar on a terminal (done, failed, rate, ETA); a plain line on stderr every few
    seconds elsewhere; nothing with --json. One bar per round: `round_done()` closes it."""

    def __init__(self, out: Output, clock=time.monotonic):
        self.out = out
        self.clock = clock
        self._bar_cm = None
        self._bar = None
        self._last_line = clock()

    def update(self, progress: WarmProgress) -> None:
        if self.out.json_mode:
            return
        extra = f"{progress.failed:,} failed · {progress.rate:,.0f}/s"
        if self.out.live:
            if self._bar is None:
                self._bar_cm = self.out.progress("warming", total=progress.total or None)
                self._bar = self._bar_cm.__enter__()
            self._bar.update(completed=progress.done, total=progress.total or None, extra=extra)
            return
        now = self.clock()
        if now - self._last_line >= PLAIN_PROGRESS_EVERY_SECONDS:
            self._last_line = now
            eta = progress.eta_seconds
            self.out.info(
                f"warm: {progress.done:,}/{progress.total:,} done, {progress.stored:,} stored, "
                f"{extra}" + (f", ETA {human_duration(eta)}" if eta is not None else "")
            )

    def round_done(self) -> None:
        if self._bar_cm is not None:
            self._bar_cm.__exit__(None, None, None)
        self._bar_cm = self._bar = None
        self._last_line = self.clock()


# ---- the warm report ------------------------------------------------------------------------------


def render_warm(out: Output, result: WarmResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    what = "Dry run" if result.dry_run else "Warm"
    files = escape(", ".join(result.manifests))
    round_note = f" (round {result.round})" if result.round > 1 else ""
    out.print(f"[bold]{what} of {files}{round_note}[/]", highlight=False)
    if result.access_log is not None:
        a = result.access_log
        ignored = f"; left alone: {escape(_reasons(a.ignored))}" if a.ignored else ""
        out.print(
            f"From the access log: the {a.selected:,} most recently hit entries of these endpoints "
            f"(top {a.top:,}, {a.keys_read:,} keys read{ignored})",
            highlight=False,
        )

    summary = Table(show_header=False, show_edge=False, box=None, pad_edge=False)
    summary.add_column("what", style="bold")
    summary.add_column("count", justify="right")
    summary.add_column("detail")
    summary.add_row("planned", f"{result.planned:,}", "")
    if result.dry_run:
        summary.add_row(
            "would request", f"{result.would_request:,}", "nothing fetched, nothing written"
        )
    else:
        summary.add_row(
            "requested", f"{result.requested:,}",
            f"{result.attempts:,} attempts, {human_bytes(result.response_bytes)} received",
        )  # fmt: skip
        summary.add_row("stored", f"[green]{result.stored:,}[/]", human_bytes(result.stored_bytes))
    summary.add_row("skipped", f"{result.skipped_total:,}", plain(_reasons(result.skipped)))
    failed_style = "red" if result.failed_total else "green"
    summary.add_row(
        "failed", f"[{failed_style}]{result.failed_total:,}[/]", plain(_reasons(result.failed))
    )
    if result.fallback_answers:
        summary.add_row(
            "fallback answers", f"{result.fallback_answers:,}", "in the report, never cached"
        )
    if result.rewritten:
        summary.add_row(
            "rewritten", f"{result.rewritten:,}", "written again: the primary changed (failover)"
        )
    if result.interrupted:
        summary.add_row(
            "interrupted", f"{result.interrupted:,}", "started, not finished when stopped"
        )
    if result.not_attempted:
        summary.add_row("not attempted", f"{result.not_attempted:,}", "")
    if not result.dry_run:
        summary.add_row(
            "duration", human_duration(result.duration_seconds),
            f"{result.requests_per_second:,.0f} requests/s at concurrency {result.concurrency}"
            + (f", rate cap {result.rate_per_second:g}/s" if result.rate_per_second else ""),
        )  # fmt: skip
        lat = result.latency
        summary.add_row(
            "origin latency", "",
            f"p50 {_ms(lat.percentile(50))} · p95 {_ms(lat.percentile(95))}"
            f" · max {_ms(lat.max_ms if lat.count else None)}",
        )  # fmt: skip
    out.print(summary)

    columns = (
        ("would_request", "skipped")
        if result.dry_run
        else ("requested", "stored", "skipped", "failed")
    )
    busy = [e for e in result.endpoints.values() if any(getattr(e, c) for c in columns)]
    if len(busy) > 1:
        out.print()
        table = Table(title="Per endpoint", title_justify="left", show_edge=False)
        table.add_column("endpoint")
        for column in columns:
            table.add_column(column.replace("_", " "), justify="right")
        for e in busy:
            table.add_row(plain(e.name), *(f"{getattr(e, c):,}" for c in columns))
        out.print(table)

    unreachable, failures = _origin_failures(result)
    if unreachable:
        out.print()
        for line in unreachable:
            out.print(plain(line, style="red"), highlight=False)
    if failures:
        out.print()
        shown = len(result.failures)
        more = (
            f" (the first {shown} of {result.failed_total:,})"
            if result.failed_total > shown
            else ""
        )
        table = Table(title=f"Failures{more}", title_justify="left", show_edge=False)
        for column in ("endpoint", "url", "reason", "attempts", "error"):
            table.add_column(column, overflow="fold")
        for f in failures:
            error = f["error"] or ""
            if f.get("fallback") is not None:
                fb = f["fallback"]
                error += f" (fallback: {fb['status'] or fb['error']})"
            table.add_row(
                plain(f["endpoint"]),
                plain(f["url"]),
                plain(f["reason"] or ""),
                str(f["attempts"]),
                plain(error),
            )
        out.print(table)

    if result.report_file:
        out.print(plain(f"Per-request report: {result.report_file}", style="dim"), highlight=False)


def _origin_failures(result: WarmResult) -> tuple[list[str], list[dict]]:
    """Requests that never reached their origin (reason `connect`), one line per origin and
    cause (`origin http://host:8080 unreachable: connection refused, 11 requests`) rather than
    one identical row per request; the other failures, for the table."""
    groups: dict[tuple[str, str], int] = {}
    rest = []
    for f in result.failures:
        if f.get("reason") != "connect" or f.get("fallback") is not None:
            rest.append(f)
            continue
        key = (_origin(f["url"]), _connect_cause(f.get("error") or ""))
        groups[key] = groups.get(key, 0) + 1
    total_connect = result.failed.get("connect", 0)
    lines = []
    for (origin, cause), n in groups.items():
        if len(groups) == 1 and total_connect > n:
            n = total_connect  # every connect failure, also those past the shown ones
        lines.append(f"origin {origin} unreachable: {cause}, {counted(n, 'request')}")
    return lines, rest


def _origin(url: str) -> str:
    """scheme://host:port of a request URL, never its user info (a password)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "?"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


def _connect_cause(error: str) -> str:
    lowered = error.lower()
    if "connect call failed" in lowered or "connection refused" in lowered:
        return "connection refused"
    if any(
        m in lowered for m in ("name or service not known", "nodename nor servname", "getaddrinfo")
    ):
        return "the host name does not resolve"
    if "timeout" in lowered or "timed out" in lowered:
        return "timed out connecting"
    if "ssl" in lowered and "certificate" in lowered:
        return "TLS certificate not accepted"
    inner = error[error.find("[") + 1 : error.rfind("]")] if "[" in error else error
    return inner or "cannot connect"


# ---- manifests ------------------------------------------------------------------------------------


def render_validate(out: Output, manifests: list[Manifest]) -> None:
    from rich.markup import escape

    for manifest in manifests:
        out.print(
            f"[green]ok[/] {escape(str(manifest.file))}: {counted(len(manifest.endpoints), 'endpoint')}, "
            f"{counted(manifest.count, 'entry')}",
            highlight=False,
        )


def validate_data(manifests: list[Manifest]) -> dict:
    return {
        "valid": True,
        "manifests": [
            {"file": m.file, "endpoints": len(m.endpoints), "entries": m.count} for m in manifests
        ],
    }


def render_expand(out: Output, plan: Plan, limit: int) -> None:
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("method", "url", "key", "ttl", "tags"):
        table.add_column(column, overflow="fold")
    shown = 0
    for request in plan.requests():
        if shown == limit:
            break
        # The sets' names in the layout in use (a profile may set other prefixes).
        tags = [plan.layout.tag(t) for t in request.tags] + [
            plan.layout.dependency(d) for d in request.depends_on
        ]
        # A key is shown never as markup, and escaped as `keys` prints it and `inspect` and
        # `invalidate --key` read it back (a control character or a backslash in it escaped).
        table.add_row(
            plain(request.endpoint.method),
            plain(request.shown_url),
            plain(show_bytes(request.key)),
            human_duration(request.endpoint.ttl_ms / 1000),
            plain(", ".join(show_bytes(t) for t in tags)),
        )
        shown += 1
    out.print(table)
    total = plan.total
    if total > shown:
        out.print(
            f"[dim]... and {total - shown:,} more ({total:,} in all; --limit to see more, --json for all)[/]"
        )
    else:
        out.print(f"[dim]{total:,} requests[/]")


def write_expand_json(out: Output, plan: Plan, limit: int | None) -> None:
    """The usual --json envelope, written one request at a time: a plan of a million entries
    never sits in memory as one document."""
    summary = plan.summary()
    head = {"ok": True, "command": out.command, "schema_version": JSON_SCHEMA_VERSION}
    write = out.stdout.write
    write(dumps(head)[:-1] + ',"data":' + dumps(summary)[:-1] + ',"requests":[')
    for n, request in enumerate(plan.requests()):
        if limit is not None and n >= limit:
            break
        item = request.to_dict()
        item["key"] = show_bytes(request.key)  # as `keys --json` prints it
        item["headers"] = mask_headers(request.endpoint.headers)
        write(("," if n else "") + dumps(item))
    write("]}}\n")
    out.stdout.flush()
