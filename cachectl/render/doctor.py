"""People's view of `cachectl doctor`."""

from __future__ import annotations

from cachectl.ops.doctor import DoctorReport
from cachectl.render.output import Output, plain
from cachectl.render.units import human_bytes

ALWAYS_SHOWN = {"url", "cluster", "config_file", "profile"}


def render_doctor(out: Output, report: DoctorReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    settings = Table(title="Settings", title_justify="left", show_edge=False)
    settings.add_column("setting")
    settings.add_column("value", overflow="fold")
    settings.add_column("from", style="dim")
    # Defaults are noise at 3 a.m.: show what was set somewhere, and the connection itself.
    defaults = 0
    for row in report.settings:
        if row["source"] == "default" and row["setting"] not in ALWAYS_SHOWN:
            defaults += 1
            continue
        settings.add_row(plain(row["setting"]), plain(row["value"]), plain(row["source"]))
    out.print(settings)
    if defaults:
        out.print(f"[dim]{defaults} more settings at their defaults (--json lists every one)[/]")
    out.print()
    if report.sentinel is not None:
        _render_sentinel(out, report.sentinel)
        out.print()
    if not report.reachable:
        out.print("[bold red]Redis: not reachable[/]")
        return

    server = Table(title="Server", title_justify="left", show_header=False, show_edge=False)
    server.add_column("what")
    server.add_column("value", overflow="fold")
    server.add_row("version", plain(report.server_version or "?"))
    server.add_row("mode", plain(report.mode or "?"))
    lat = report.latency_ms
    if all(lat.get(k) is not None for k in ("min", "median", "max")):
        server.add_row(
            "latency (PING)",
            f"min {lat['min']:.2f} ms, median {lat['median']:.2f} ms, max {lat['max']:.2f} ms",
        )
    else:
        server.add_row("latency (PING)", "?")
    # A figure is None when INFO was refused or a node could not be read: shown as "?".
    server.add_row("keys", _count(report.keys_total))
    server.add_row("used memory", human_bytes(report.used_memory_bytes))
    server.add_row(
        "maxmemory",
        human_bytes(report.maxmemory_bytes) if report.maxmemory_bytes else "0 (no limit)",
    )
    server.add_row("maxmemory-policy", plain(report.maxmemory_policy or "?"))
    server.add_row(
        "persistence",
        f"RDB snapshots {'on' if report.persistence.get('rdb_save_configured') else 'off'}, "
        f"AOF {'on' if report.persistence.get('aof_enabled') else 'off'}",
    )
    server.add_row("ACL user", plain(report.acl_user or "?"))
    out.print(server)

    if len(report.nodes) > 1 or report.mode == "cluster":
        out.print()
        nodes = Table(title="Nodes", title_justify="left", show_edge=False)
        for col in ("node", "role", "version", "keys", "memory"):
            nodes.add_column(col, justify="right" if col in ("keys", "memory") else "left")
        for node in report.nodes:
            role = node.role if node.reachable else "unreachable"
            nodes.add_row(
                plain(node.address),
                plain(role, "bold red" if not node.reachable else ""),
                plain(node.version or "?"),
                _count(node.keys),
                human_bytes(node.used_memory_bytes),
            )
        out.print(nodes)
        for node in report.nodes:
            if not node.reachable and node.error:
                out.print(plain(f"{node.address}: {node.error}", "red"))

    out.print()
    perms = Table(title="Permissions of this user", title_justify="left", show_edge=False)
    unchecked = any(ok is None for cmds in report.permissions.values() for ok in cmds.values())
    perms.add_column("operation")
    perms.add_column("allowed")
    perms.add_column("denied")
    if unchecked:
        perms.add_column("not checked (no MULTI)")
    for operation, commands in report.permissions.items():
        ok = [c for c, allowed in commands.items() if allowed is True]
        denied = [c for c, allowed in commands.items() if allowed is False]
        row = [
            operation,
            ", ".join(ok) or "-",
            plain(", ".join(denied), style="red") if denied else "-",
        ]
        if unchecked:
            row.append(", ".join(c for c, allowed in commands.items() if allowed is None) or "-")
        perms.add_row(*row)
    out.print(perms)

    out.print()
    if not report.warnings:
        out.print("[green]No problems found.[/]")
    for warning in report.warnings:
        style = "yellow" if warning.level == "warning" else "cyan"
        out.print(f"[{style}]{warning.level}:[/] {escape(warning.message)}")


def _render_sentinel(out: Output, view: dict) -> None:
    from rich.table import Table

    table = Table(
        title=f"Sentinel (service {plain(view['service'])})", title_justify="left", show_edge=False
    )
    for col in ("node", "role", "state"):
        table.add_column(col)
    for sentinel in view["sentinels"]:
        if sentinel["ok"]:
            state = plain(f"names primary {sentinel['primary']}")
        else:
            state = plain(f"unreachable: {sentinel['error']}", "bold red")
        table.add_row(plain(sentinel["address"]), "sentinel", state)
    primary = view.get("primary")
    if primary:
        state = f"flags {primary['flags']}, quorum {primary['quorum']}"
        table.add_row(plain(primary["address"]), "primary", plain(state))
    for replica in view.get("replicas", []):
        state = f"flags {replica['flags']}, link {replica['link']}"
        table.add_row(plain(replica["address"]), "replica", plain(state))
    out.print(table)
    if not primary:
        out.print(plain("no sentinel answered: the primary is unknown", "bold red"))


def _count(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"
