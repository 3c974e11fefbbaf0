"""What every command shares: the root options, the resolved settings, the store, the output.

Settings and the store are built on first use, so `--help` and commands that fail on their own
arguments never read a config file or touch Redis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cachectl.render.output import Output

if TYPE_CHECKING:
    from cachectl.config import Settings
    from cachectl.store import Store


JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print machine-readable JSON on stdout (docs/reference/output.md)."
    ),
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]


# The root options that are settings, by the flag key load_settings takes (--tls-insecure is
# `tls_verify`, set below).
_ROOT_SETTING_FLAGS = (
    "url",
    "cluster",
    "username",
    "tls_ca_file",
    "tls_cert_file",
    "tls_key_file",
    "connect_timeout",
    "timeout",
)


@dataclass
class AppContext:
    """Root options as given on the command line; None means 'not given'."""

    flags: dict[str, Any] = field(default_factory=dict)
    config_path: str | None = None
    profile: str | None = None
    no_color: bool = False
    traceback: bool = False
    output: Output | None = None
    _settings: Settings | None = None
    _store: Store | None = None
    replica: bool = False  # --replica of a reading command: a replica the sentinels name

    @classmethod
    def from_root_params(cls, params: Mapping[str, Any]) -> AppContext:
        """The context of the root options as click parsed them (`ctx.params` of the root), by
        their parameter names: the root command's, and shell completion's, one reading."""
        flags = {name: params.get(name) for name in _ROOT_SETTING_FLAGS}
        flags["tls_verify"] = False if params.get("tls_insecure") else None
        return cls(
            flags={k: v for k, v in flags.items() if v is not None},
            config_path=params.get("config"),
            profile=params.get("profile"),
            no_color=bool(params.get("no_color")),
            traceback=bool(params.get("traceback")),
        )

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from cachectl.config import load_settings

            self._settings = load_settings(
                flags=self.flags, config_path=self.config_path, profile=self.profile
            )
        return self._settings

    @property
    def store(self) -> Store:
        if self._store is None:
            from cachectl.store import Store

            self._store = Store(self.settings, on_warning=self._warn, replica=self.replica)
        return self._store

    def secrets(self) -> list[str]:
        """The password of the settings and of their URL, for scrubbing tracebacks."""
        if self._settings is None:
            return []
        from cachectl.store_errors import secrets

        return secrets(self._settings)

    def _warn(self, code: str, message: str) -> None:
        """A warning from the store (a cluster node used as one server): one line on stderr."""
        del code  # people read the message; doctor keeps the code in its report
        (self.output or Output(no_color=self.no_color)).warn(message)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def command_context(
    ctx: typer.Context, *, json_mode: bool = False, jsonl: bool = False
) -> AppContext:
    """Called first by every command: sets up its output (people, --json, or --jsonl: rows on
    stdout and errors on stderr only)."""
    root = ctx.find_root()
    app_ctx = root.obj if isinstance(root.obj, AppContext) else AppContext()
    root.obj = app_ctx
    name = " ".join(ctx.command_path.split()[1:]) or None
    app_ctx.output = Output(
        json_mode=json_mode or jsonl, jsonl=jsonl, no_color=app_ctx.no_color, command=name
    )
    app_ctx.output.traceback = app_ctx.traceback
    app_ctx.output.secrets = app_ctx.secrets
    return app_ctx


def confirm_destructive(app_ctx: AppContext, prompt: str, *, yes: bool) -> None:
    """Asks on a terminal; refuses (usage error) when there is no terminal and no --yes.

    Anything but a yes deletes nothing and exits 130 (Interrupted) with one line: a no, Ctrl-C
    or Ctrl-D at the prompt. (click's own answer to Ctrl-C at a prompt, "Aborted!" and exit 1,
    would read like a failure.)
    """
    import sys

    from cachectl.errors import ConfirmationRequired, Interrupted

    if yes:
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise ConfirmationRequired(
            "refusing to delete without confirmation: no terminal to ask on",
            hint="pass --yes to confirm, or --dry-run to see what would be deleted",
        )
    try:
        confirmed = ask_yes_no(prompt)
    except (KeyboardInterrupt, EOFError) as exc:
        # The cursor is still after the question: end that line first, so ours is one of its own.
        sys.stderr.write("\n")
        if isinstance(exc, EOFError):
            raise Interrupted("nothing deleted: not confirmed") from None
        raise Interrupted("interrupted: nothing deleted") from None
    if not confirmed:
        raise Interrupted("nothing deleted: not confirmed")


_YES = ("y", "yes")
_NO = ("", "n", "no")


def can_ask() -> bool:
    """Whether a question can be asked (as confirm_destructive decides)."""
    import sys

    return sys.stdin.isatty() and sys.stdout.isatty()


def ask_yes_no(prompt: str) -> bool:
    """Asks `prompt [y/N]: ` on stderr and reads a line of the terminal; no by default.

    Not input(): a Ctrl-C that lands after the question is shown but before input() has begun
    its read sets Python's signal flag and nothing looks at it again while the read blocks, so
    the question hangs with ^C on the screen. Waiting in select() with a short timeout gives
    the interpreter a moment to act on a pending signal at least every `_TICK` seconds.
    Ctrl-C raises KeyboardInterrupt, Ctrl-D (an empty read) EOFError.
    """
    import select
    import sys

    while True:
        sys.stderr.write(f"{prompt} [y/N]: ")
        sys.stderr.flush()
        while not select.select([sys.stdin], [], [], _TICK)[0]:
            pass
        line = sys.stdin.readline()
        if not line:
            raise EOFError
        answer = line.strip().lower()
        if answer in _YES:
            return True
        if answer in _NO:
            return False
        sys.stderr.write("Please answer y or n.\n")


_TICK = 0.2
