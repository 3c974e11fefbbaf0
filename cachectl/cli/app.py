"""The Typer app: root options, command registration, and the one place errors become exit codes.

Only typer and cachectl's light modules are imported here; every command imports redis, yaml,
aiohttp and rich's heavy parts inside its own body, so `cachectl --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Annotated

import typer
from typer.core import TyperGroup

try:  # typer 0.2x vendors click; older releases use the click package
    from typer._click import ClickException
except ImportError:  # pragma: no cover
    from click import ClickException

from cachectl import __version__
from cachectl.cli.context import AppContext
from cachectl.errors import CachectlError, ExitCode, Interrupted


class CachectlGroup(TyperGroup):
    """Turns every error raised by a command into one line and an exit code from the table.

    It lives in the group, not in `main()`, so the Typer test runner sees exactly what a shell
    user sees.
    """

    def main(self, args=None, *a, **kw):
        args = list(sys.argv[1:] if args is None else args)
        # --traceback is honoured wherever it stands on the line, not just before the command.
        if "--traceback" in args[1:] and args[0] != "--traceback":
            args.remove("--traceback")
            args.insert(0, "--traceback")
        return super().main(args, *a, **kw)

    def make_context(self, *args, **kwargs):
        # The root's own output (--help, --version) meeting a closed pipe.
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            if not _output_closed():
                raise
            raise typer.Exit(ExitCode.CLOSED_PIPE) from None

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            _report(ctx, Interrupted("interrupted"))
            ctx.exit(ExitCode.INTERRUPTED)
        except CachectlError as err:
            _report(ctx, err)
            ctx.exit(err.exit_code)
        except Exception as exc:  # noqa: BLE001 -- the one place a bug becomes one line
            if isinstance(exc, BrokenPipeError) and _output_closed():
                # The reader has gone (`cachectl keys | head`): stop there, quietly, as a tool
                # killed by SIGPIPE does. Nothing more is written, not even an error line.
                ctx.exit(ExitCode.CLOSED_PIPE)
            # A bug: one line unless --traceback.
            err = CachectlError(
                f"internal error: {type(exc).__name__}: {exc}",
                hint="rerun with --traceback and report it",
            )
            _report(ctx, err, exc)
            ctx.exit(ExitCode.INTERNAL)
        finally:
            if isinstance(ctx.obj, AppContext):
                ctx.obj.close()


def _output_closed() -> bool:
    from cachectl.render.output import stop_writing_to_closed_pipes

    return stop_writing_to_closed_pipes()


def _report(ctx: typer.Context, err: CachectlError, exc: BaseException | None = None) -> None:
    from cachectl.redact import scrub
    from cachectl.render.output import Output

    app_ctx = ctx.obj if isinstance(ctx.obj, AppContext) else AppContext()
    out = app_ctx.output or Output(no_color=app_ctx.no_color)
    secrets = []
    if app_ctx._settings is not None:
        secrets.append(app_ctx._settings.password)
    err.message = scrub(err.message, secrets)
    try:
        if app_ctx.traceback:
            import traceback

            text = "".join(traceback.format_exception(exc or err))
            sys.stderr.write(scrub(text, secrets))
        out.error(err)
    except BrokenPipeError:
        if not _output_closed():
            raise
        raise typer.Exit(ExitCode.CLOSED_PIPE) from None


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="cachectl",
        cls=CachectlGroup,
        help="Run an API-response cache that lives in Redis: warm it, invalidate it, inspect it, "
        "watch it.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


app = _new_app()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cachectl {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option("--url", "-u", help="Redis URL: redis://, rediss:// (TLS) or unix://. "
                     "Default: $CACHECTL_URL, $REDIS_URL, the config file, redis://localhost:6379/0."),
    ] = None,
    profile: Annotated[
        str | None, typer.Option("--profile", "-p", help="Config profile to use ($CACHECTL_PROFILE).")
    ] = None,
    config: Annotated[
        str | None,
        typer.Option("--config", "-c", help="Config file ($CACHECTL_CONFIG; default ./cachectl.yaml, "
                     "then ~/.config/cachectl/config.yaml)."),
    ] = None,
    cluster: Annotated[
        bool | None,
        typer.Option("--cluster/--no-cluster", help="Force Redis Cluster mode on or off (default: detect)."),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", help="ACL username (password: $CACHECTL_PASSWORD).")
    ] = None,
    tls_ca_file: Annotated[str | None, typer.Option("--tls-ca-file", help="CA bundle for rediss://.")] = None,
    tls_cert_file: Annotated[
        str | None, typer.Option("--tls-cert-file", help="Client certificate for rediss://.")
    ] = None,
    tls_key_file: Annotated[
        str | None, typer.Option("--tls-key-file", help="Client private key for rediss://.")
    ] = None,
    tls_insecure: Annotated[
        bool, typer.Option("--tls-insecure", help="Do not verify the server certificate (testing only).")
    ] = False,
    connect_timeout: Annotated[
        float | None, typer.Option("--connect-timeout", help="Seconds to wait for a connection.")
    ] = None,
    timeout: Annotated[float | None, typer.Option("--timeout", help="Seconds to wait for a command.")] = None,
    no_color: Annotated[bool, typer.Option("--no-color", help="No colour (also: NO_COLOR=1).")] = False,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the full traceback of an error.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
) -> None:
    flags = {
        "url": url,
        "cluster": cluster,
        "username": username,
        "tls_ca_file": tls_ca_file,
        "tls_cert_file": tls_cert_file,
        "tls_key_file": tls_key_file,
        "tls_verify": False if tls_insecure else None,
        "connect_timeout": connect_timeout,
        "timeout": timeout,
    }
    ctx.obj = AppContext(
        flags={k: v for k, v in flags.items() if v is not None},
        config_path=config,
        profile=profile,
        no_color=no_color,
        traceback=traceback,
    )


# Each command and the cli module that registers it. main() builds only the one on the command
# line: typer reads every command's signature to build the whole tree (a third of `cachectl
# <cmd>`'s start-up before a command's own imports), and one command needs only its own.
COMMAND_MODULES = {
    "doctor": "doctor",
    "demo": "demo",
    "stats": "stats",
    "check": "check",
    "history": "history",
    "invalidate": "invalidate",
    "prune": "prune",
    "warm": "warm",
    "manifest": "manifest",
    "keys": "keys",
    "inspect": "inspect",
    "tags": "tags",
    "memory": "memory",
}
# The root options that take a value, to find the command's name after them.
ROOT_VALUE_OPTIONS = frozenset({
    "--url", "-u", "--profile", "-p", "--config", "-c", "--username", "--tls-ca-file",
    "--tls-cert-file", "--tls-key-file", "--connect-timeout", "--timeout",
})


def _register(target: typer.Typer, names: Iterable[str] = COMMAND_MODULES) -> None:
    import importlib

    for module in dict.fromkeys(COMMAND_MODULES[name] for name in names):
        importlib.import_module(f"cachectl.cli.{module}").register(target)


_register(app)


def command_name(args: list[str]) -> str | None:
    """The command a command line runs (`cachectl --url U keys -n 1` -> "keys"); None for the
    root alone (`--help`, `--version`) or a name that is no command (typer then says so)."""
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMAND_MODULES else None
        at += 2 if arg in ROOT_VALUE_OPTIONS else 1
    return None


def main() -> None:
    name = command_name(sys.argv[1:])
    if name is None:
        target = app
    else:
        target = _new_app()
        target.callback()(root)
        _register(target, [name])
    target(prog_name="cachectl")
