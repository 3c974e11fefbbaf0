"""`cachectl doctor`."""

from __future__ import annotations

import typer

from cachectl.cli.context import JsonOpt, command_context


def doctor(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Check the connection and the server: settings and where each came from, server mode and
    version, latency, memory policy, persistence, ACL permissions. Exit 4 when Redis cannot be
    reached."""
    from cachectl.ops.doctor import run_doctor
    from cachectl.render.doctor import render_doctor

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    report = run_doctor(app_ctx.settings, app_ctx.store)
    if out.json_mode:
        out.json(report.to_dict(), ok=report.failure is None, error=report.failure)
    else:
        render_doctor(out, report)
    if report.failure is not None:
        out.error(report.failure, envelope=False)
        raise typer.Exit(report.failure.exit_code)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
