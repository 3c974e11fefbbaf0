"""The Typer app: root options, command registration, and the one place errors become exit codes.

Only typer and cachectl's light modules are imported here; every command imports redis, yaml,
aiohttp and rich's heavy parts inside its own body, so `cachectl --help` stays fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Annotated

import typer
from typer._click import ClickException  # typer 0.28 vendors click
from typer._click.exceptions import NoSuchOption
from typer.core import TyperGroup

from cachectl import __version__
from cachectl.cli.completion import COMPLETE_VAR, complete_profile
from cachectl.cli.context import AppContext
from cachectl.cli.options import DurationOption
from cachectl.errors import CachectlError, ExitCode, Interrupted


class CachectlGroup(TyperGroup):
    """Turns every error raised by a command into one line and an exit code from the table.

    It lives in the group, not in `main()`, so the Typer test runner sees exactly what a shell
    user sees.
    """

    def main(self, args=None, *a, **kw):
        args = place_anywhere_options(list(sys.argv[1:] if args is None else args))
        return super().main(args, *a, **kw)

    def make_context(self, *args, **kwargs):
        from cachectl.cli.numbers import bound_numeric_options

        bound_numeric_options(self)
        # The root's own output (--help, --version) meeting a closed pipe.
        try:
            return super().make_context(*args, **kwargs)
        except BrokenPipeError:
            if not _output_closed():
                raise
            raise typer.Exit(ExitCode.CLOSED_PIPE) from None
        except CachectlError as err:  # a root option's value its type refused (--timeout soon)
            from cachectl.render.output import Output

            Output(no_color=True).error(err)
            raise typer.Exit(err.exit_code) from None

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except NoSuchOption as exc:
            suggest_renamed(exc)
            raise
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except KeyboardInterrupt:
            _report(ctx, Interrupted("interrupted"))
            ctx.exit(ExitCode.INTERRUPTED)
        except CachectlError as err:
            _report(ctx, err)
            ctx.exit(err.exit_code)
        except asyncio_cancelled() as exc:
            # A stop signal that cancelled an asyncio run while it was already stopping: an
            # interruption, not a bug.
            del exc
            _report(ctx, Interrupted("interrupted"))
            ctx.exit(ExitCode.INTERRUPTED)
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


# The spellings the vocabulary (docs/reference/vocabulary.md) retired, and what replaced each:
# using one is a usage error that names the new one (click suggests only names that look alike).
RENAMED: dict[str, str] = {
    "--watch": "--every DURATION",
    "-w": "--every DURATION",
    "--interval": "--every DURATION",
    "-i": "--every DURATION",
    "--ticks": "--rounds N",
    "-f": "--format",
    "--sample": "--sample-size N",
    "--no-anomaly": "--fail-on-anomaly",
    "--dependency": "--dependencies",
    "--no-ttl": "--without-ttl",
    "--window": "--since DURATION",
}


def suggest_renamed(exc: NoSuchOption) -> None:
    """A retired spelling of an option the command has: the error says the new one."""
    new = RENAMED.get(exc.option_name)
    command = exc.ctx.command if exc.ctx is not None else None
    if new is None or command is None:
        return
    if any(new.split()[0] in param.opts for param in command.params):
        exc.message = f"No such option: {exc.option_name}; did you mean {new}?"
        exc.possibilities = None


# Root options a user may also give after the command's name, and command options (every
# command has them) a user may also give before it: moved to where click reads them.
AFTER_COMMAND_ROOT_OPTIONS = ("--no-color", "--traceback")
BEFORE_COMMAND_OPTIONS = ("--json",)


def place_anywhere_options(args: list[str]) -> list[str]:
    """`cachectl stats --no-color` and `cachectl --json stats`, read as `cachectl --no-color
    stats` and `cachectl stats --json`: the flags that mean the same on every command."""
    at = _command_index(args)
    if at is None:
        return args
    end = args.index("--") if "--" in args[at:] else len(args)
    before, command, after, rest = args[:at], args[at], args[at + 1 : end], args[end:]
    moved_back = [arg for arg in before if arg in BEFORE_COMMAND_OPTIONS]
    moved_front = [arg for arg in after if arg in AFTER_COMMAND_ROOT_OPTIONS]
    before = [arg for arg in before if arg not in BEFORE_COMMAND_OPTIONS]
    after = [arg for arg in after if arg not in AFTER_COMMAND_ROOT_OPTIONS]
    return [*dict.fromkeys(moved_front), *before, command, *after, *moved_back, *rest]


def asyncio_cancelled() -> type[BaseException]:
    """asyncio's CancelledError when asyncio is loaded (it is whenever a run could raise it),
    else an exception nothing raises: importing asyncio here would cost every command."""
    asyncio = sys.modules.get("asyncio")
    return asyncio.CancelledError if asyncio is not None else _NeverRaised


class _NeverRaised(BaseException):
    pass


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
        out.traceback = app_ctx.traceback
        out.secrets = app_ctx.secrets
        out.error(err, exc=exc)
    except BrokenPipeError:
        if not _output_closed():
            raise
        raise typer.Exit(ExitCode.CLOSED_PIPE) from None


# Every help text ends with the page of the docs site (docs/, built with mkdocs) that tells the
# whole story: the root's, and each command's reference page (a group's subcommands share it).
ROOT_DOCS_PAGE = "docs/index.md"


def docs_epilog(page: str) -> str:
    return f"Docs: {page}"


def command_docs_page(name: str) -> str:
    return f"docs/reference/{name}.md"


def _point_to_the_docs(target: typer.Typer) -> None:
    for command in target.registered_commands:
        command.epilog = docs_epilog(command_docs_page(command.name))
        command.short_help = SUMMARIES[command.name]
    for group in target.registered_groups:
        name = group.name or group.typer_instance.info.name
        group.epilog = docs_epilog(command_docs_page(name))
        group.short_help = SUMMARIES[name]
        for command in group.typer_instance.registered_commands:
            command.epilog = group.epilog


def _new_app() -> typer.Typer:
    return typer.Typer(
        name="cachectl",
        cls=CachectlGroup,
        help="Run an API-response cache that lives in Redis: warm it, invalidate it, inspect it, "
        "watch it.",
        no_args_is_help=True,
        epilog=docs_epilog(ROOT_DOCS_PAGE),
        # typer's --install-completion and --show-completion; see cachectl/cli/completion.py.
        add_completion=True,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )


def _version(ctx: typer.Context, value: bool) -> None:
    # Not while a shell asks for completions (`cachectl --version <TAB>`): that would be its
    # answer.
    if value and not ctx.resilient_parsing:
        typer.echo(f"cachectl {__version__}")
        raise typer.Exit(0)


def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            "-u",
            metavar="URL",
            help="Redis URL: redis://, rediss:// (TLS) or unix://. "
            "Default: $CACHECTL_URL, $REDIS_URL, the config file, redis://localhost:6379/0.",
        ),
    ] = None,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            metavar="NAME",
            help="Config profile to use ($CACHECTL_PROFILE).",
            autocompletion=complete_profile,
        ),
    ] = None,
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="Config file ($CACHECTL_CONFIG; default ./cachectl.yaml, "
            "then ~/.config/cachectl/config.yaml).",
        ),
    ] = None,
    cluster: Annotated[
        bool | None,
        typer.Option(
            "--cluster/--no-cluster", help="Force Redis Cluster mode on or off (default: detect)."
        ),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option(
            "--username", metavar="NAME", help="ACL username (password: $CACHECTL_PASSWORD)."
        ),
    ] = None,
    tls_ca_file: Annotated[
        str | None, typer.Option("--tls-ca-file", metavar="FILE", help="CA bundle for rediss://.")
    ] = None,
    tls_cert_file: Annotated[
        str | None,
        typer.Option("--tls-cert-file", metavar="FILE", help="Client certificate for rediss://."),
    ] = None,
    tls_key_file: Annotated[
        str | None,
        typer.Option("--tls-key-file", metavar="FILE", help="Client private key for rediss://."),
    ] = None,
    tls_insecure: Annotated[
        bool,
        typer.Option("--tls-insecure", help="Do not verify the server certificate (testing only)."),
    ] = False,
    connect_timeout: Annotated[
        float | None,
        DurationOption("--connect-timeout", help="How long to wait for a connection (5s, 500ms)."),
    ] = None,
    timeout: Annotated[
        float | None, DurationOption("--timeout", help="How long to wait for a command (10s).")
    ] = None,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour (also: NO_COLOR=1).")
    ] = False,
    traceback: Annotated[
        bool, typer.Option("--traceback", help="Show the full traceback of an error.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = None,
) -> None:
    # The options are read from ctx.params, by these parameters' names: shell completion reads
    # them the same way (cachectl/cli/completion.py), before any command runs.
    ctx.obj = AppContext.from_root_params(ctx.params)


# Each command: the cli module that registers it, and the first paragraph of its help, which
# `cachectl --help` lists. main() builds only what a command line needs: typer reads every
# command's signature to build a tree (a third of a command's start-up before its own imports),
# so a command gets only its own, and the root's --help and --version get stand-ins made from
# this table without importing a command module. tests/cli/test_app.py holds the table to the
# commands' own help.
COMMANDS: dict[str, tuple[str, str]] = {
    # commands first, then the groups (typer lists them in that order)
    "doctor": (
        "doctor",
        (
            "Check the connection and the server: settings and where each came from, server mode "
            "and version, latency, memory policy, persistence, ACL permissions. Exit 4 when Redis "
            "cannot be reached."
        ),
    ),
    "demo": (
        "demo",
        (
            "Start a throwaway Redis (redis-server, else valkey-server, on a free port) and a "
            "sample HTTP API, then run the real commands against them one after another, each "
            "printed as you would type it: warm, application traffic through the Python library, "
            "stats, keys, tags, invalidate, the traffic and stats again. Everything is stopped "
            "and removed at the end. Exit 0; a failed step's own exit status; 130 on Ctrl-C "
            "(after cleaning up)."
        ),
    ),
    "stats": (
        "stats",
        (
            "The cache's figures: hits, misses and hit rate overall and per endpoint, "
            "response-time percentiles and the slowest requests, and the server's memory, "
            "evictions, operations and keyspace hit rate (summed over a cluster's primaries, with "
            "per-node detail)."
        ),
    ),
    "exporter": (
        "exporter",
        (
            "Serve the cache's figures to Prometheus: /metrics (Prometheus text, or OpenMetrics "
            "when asked) and /healthz. Each scrape costs a fixed number of Redis round trips "
            "whatever the keyspace size; entries and memory by endpoint come from a paced, "
            "sampled scan in the background. With Redis down a scrape answers at once with "
            "cachectl_up 0. Ctrl-C or SIGTERM stops it (exit 0)."
        ),
    ),
    "check": (
        "check",
        (
            "Hold the cache to thresholds: print every condition with its measured value and "
            "verdict. Exit 0 when all hold, 7 when any fails (or cannot be measured), 2 for an "
            "impossible threshold."
        ),
    ),
    "invalidate": (
        "invalidate",
        (
            "Delete cache entries: by tag, pattern, key, endpoint or dependency (the union of all "
            "given), narrowed by filters. Only cache entries are ever deleted. Asks first on a "
            "terminal (--yes skips it; with no terminal, --yes is required). Ctrl-C stops after "
            "the current batch; rerunning the same command finishes an interrupted run. Exit 0 "
            "done, 2 bad flags (or no terminal to ask on and no --yes), 3 bad graph file, 4 Redis "
            "error before any change, 6 Redis error after some deletions, 130 interrupted (or the "
            "question answered no)."
        ),
    ),
    "prune": (
        "prune",
        (
            "Remove tag and dependency set members whose entry no longer exists (Redis deletes "
            "the sets left empty), trim the write and access logs to live entries and the "
            "response-time log to its last hour. Asks first on a terminal (--yes skips it; with "
            "no terminal, --yes is required). Exit 0 done, 2 no terminal to ask on and no --yes, "
            "4 Redis error before any change, 6 Redis error after some changes, 130 interrupted "
            "(or the question answered no)."
        ),
    ),
    "warm": (
        "warm",
        (
            "Call the endpoints of warm manifests and store each answer as a cache entry, with "
            "its TTL, tags and dependencies. Every manifest is checked before anything is "
            "fetched. Exit 3 for a bad manifest, 4 when Redis is lost (with a report of what was "
            "stored), 6 when more requests failed than --max-failures allows, 130 on Ctrl-C (with "
            "the report so far)."
        ),
    ),
    "keys": (
        "keys",
        (
            "List cache entries with type, TTL, size (MEMORY USAGE) and the endpoint and params "
            "read from the key, streamed as they are found: a table on a terminal, --json, or "
            "--jsonl. SCAN never KEYS; every primary of a cluster. Exit 5 when --tag/--depends-on "
            "names no set; exit 6 when Redis fails part way (the rows listed stand; the error "
            "says how far it got)."
        ),
    ),
    "inspect": (
        "inspect",
        (
            "Show one key: its value (JSON pretty-printed, shortened unless --full), type, "
            "encoding, TTL, memory, idle time, the endpoint and params read from it, its last "
            "write and last access from the logs, and with --tags the sets naming it. Exit 5 when "
            "the key does not exist."
        ),
    ),
    "memory": (
        "memory",
        (
            "Analyse the cache's memory: per endpoint (or key prefix) keys, total, average, "
            "largest and share; entries by TTL bucket; the largest entries; tag/dependency sets, "
            "logs and metrics apart; entries without TTL; recommendations. One SCAN of every "
            "primary; the cache's keys are sized server-side a page per call. Ctrl-C shows what "
            "was gathered (exit 130); a scan cut short by Redis shows what it covered (exit 6)."
        ),
    ),
    "history": (
        "history",
        (
            "The cache's figures as time series in Redis (metric:, meta:, agg: keys): record "
            "them, read them back, keep them in bounds, look for anomalies."
        ),
    ),
    "manifest": (
        "manifest",
        "Check warm manifests and show the requests they expand to (nothing is fetched).",
    ),
    "tags": (
        "tags",
        ("List tag sets (or dependency sets) with member counts; `tags show TAG` lists members."),
    ),
}
# Each command's one-line summary: `cachectl --help` lists it whole (click would cut the help's
# first sentence to fit the line). At most 64 characters, so it fits an 80-column terminal.
SUMMARIES: dict[str, str] = {
    "doctor": "Check the connection, the server and the settings.",
    "demo": "Try the commands on a throwaway Redis and a sample API.",
    "stats": "Hit rates, response times and server figures; --every: live.",
    "check": "Hold the cache to thresholds (exit 7 when one fails).",
    "invalidate": "Delete entries by tag, pattern, key, endpoint or dependency.",
    "prune": "Remove dangling set members and trim the logs.",
    "warm": "Fetch the requests of warm manifests into the cache.",
    "keys": "List entries with their type, TTL, size and endpoint.",
    "inspect": "Show one entry: value, TTL, memory, endpoint, last write.",
    "memory": "Where the memory goes: by endpoint, TTL and size.",
    "history": "Record and read the cache's figures as time series.",
    "manifest": "Check warm manifests and show the requests they expand to.",
    "tags": "List tag or dependency sets; `tags show TAG` lists members.",
    "exporter": "Serve the cache's figures to Prometheus (/metrics, /healthz).",
}
COMMAND_MODULES = {name: module for name, (module, _) in COMMANDS.items()}
# The root options that take a value, to find the command's name after them.
ROOT_VALUE_OPTIONS = frozenset(
    {
        "--url",
        "-u",
        "--profile",
        "-p",
        "--config",
        "-c",
        "--username",
        "--tls-ca-file",
        "--tls-cert-file",
        "--tls-key-file",
        "--connect-timeout",
        "--timeout",
    }
)


def _register(target: typer.Typer, names: Iterable[str] = COMMAND_MODULES) -> None:
    import importlib

    for module in dict.fromkeys(COMMAND_MODULES[name] for name in names):
        importlib.import_module(f"cachectl.cli.{module}").register(target)
    _point_to_the_docs(target)


def _full_app() -> typer.Typer:
    target = _new_app()
    target.callback()(root)
    _register(target)
    return target


def _root_app() -> typer.Typer:
    """The root with a stand-in per command, its help from COMMANDS: enough for `--help`,
    `--version`, no arguments, and a misspelt name (typer suggests from the names)."""
    target = _new_app()
    target.callback()(root)
    for name, (_, help_text) in COMMANDS.items():
        target.command(name, help=help_text, short_help=SUMMARIES[name], add_help_option=False)(
            _stand_in
        )
    return target


def _stand_in() -> None:  # pragma: no cover -- main() never routes a command line here
    raise CachectlError("internal error: a command's stand-in was run")


def __getattr__(name: str):
    # `from cachectl.cli.app import app` (tests, embedding): the whole tree, built on first use.
    if name == "app":
        globals()["app"] = full = _full_app()
        return full
    raise AttributeError(name)


def command_name(args: list[str]) -> str | None:
    """The command a command line runs (`cachectl --url U keys -n 1` -> "keys"); None for the
    root alone (`--help`, `--version`) or a name that is no command (typer then says so)."""
    at = _command_index(args)
    return args[at] if at is not None else None


def _command_index(args: list[str]) -> int | None:
    """Where the command's name stands in a command line; None when it has none."""
    at = 0
    while at < len(args):
        arg = args[at]
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return at if arg in COMMAND_MODULES else None
        at += 2 if arg in ROOT_VALUE_OPTIONS else 1
    return None


def main() -> None:
    args = sys.argv[1:]
    if os.environ.get(COMPLETE_VAR):
        # A shell asking for completions: the command line is in the environment, and the
        # tree is built for it as for a command line run.
        from cachectl.cli.completion import words_before_cursor

        args = words_before_cursor()
    name = command_name(args)
    if name is not None:
        target = _new_app()
        target.callback()(root)
        _register(target, [name])
    elif any(arg in COMMANDS for arg in args):
        target = _full_app()  # a name after `--`, or one that is an option's value: typer decides
    else:
        target = _root_app()
    target(prog_name="cachectl")
