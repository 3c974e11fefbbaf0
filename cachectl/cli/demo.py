"""`cachectl demo`: the whole tool against a throwaway Redis, each step shown as typed."""

from __future__ import annotations

import shlex
import subprocess
import sys
from typing import Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context
from cachectl.errors import ExitCode, RedisError


def demo(
    ctx: typer.Context,
    json_: JsonOpt = False,
    keep: Annotated[bool, typer.Option("--keep", help="Leave the Redis running at the end.")] = False,
) -> None:
    """Start a throwaway redis-server on a free port and run the real commands against it, each
    printed as you would type it; everything is stopped and removed at the end."""
    from cachectl.devserver import RedisServer, find_redis_server

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    if find_redis_server() is None:
        raise RedisError(
            "redis-server not found on PATH", hint="install it: apt-get install redis-server"
        )
    steps = [["doctor"]]
    results = []
    server = RedisServer().start()
    try:
        out.info(f"started a throwaway Redis at {server.url}")
        for step in steps:
            argv = ["cachectl", "--url", server.url, *step]
            if not out.json_mode:
                out.line(f"$ {shlex.join(argv)}")
            proc = subprocess.run(
                [sys.executable, "-m", "cachectl", *argv[1:], *(["--json"] if out.json_mode else [])],
                capture_output=out.json_mode,
                text=True,
            )
            results.append({"command": shlex.join(argv), "exit_code": proc.returncode})
            if proc.returncode != 0:
                break
    finally:
        if keep:
            out.info(f"left running: {server.url}")
        else:
            server.stop()
    if out.json_mode:
        out.json({"redis_url": server.url, "steps": results}, ok=all(r["exit_code"] == 0 for r in results))
    if any(r["exit_code"] != 0 for r in results):
        raise typer.Exit(ExitCode.PARTIAL)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
