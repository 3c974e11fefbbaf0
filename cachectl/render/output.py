"""Where every command's output goes: people on a terminal, machines with --json.

Human output goes to stdout; progress, warnings and errors to stderr. Colour and live widgets
only when stdout is a terminal and NO_COLOR is unset. rich is imported on first use, so a
command that fails early, and `cachectl --help`, never pay for it.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from cachectl.errors import CachectlError

JSON_SCHEMA_VERSION = 1
# The console width off a terminal: wider than any table, so that none is folded or padded.
OFF_TERMINAL_WIDTH = 10_000


def to_jsonable(value: Any) -> Any:
    """Makes result data JSON-safe: bytes as text (undecodable bytes escaped), dataclasses via
    to_dict(), sets as sorted lists."""
    if hasattr(value, "to_dict"):
        return to_jsonable(value.to_dict())
    if isinstance(value, dict):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((to_jsonable(v) for v in value), key=str)
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return value


def dumps(value: Any) -> str:
    return json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))


def plain(value: Any, style: str = ""):
    """`value` for rich exactly as it is: a `Text`, which rich never reads as markup. Every
    table cell, title and line that carries data (a key, an endpoint, a tag, a URL, a host, a
    message) goes through this, or through `rich.markup.escape` inside a string that holds
    markup of cachectl's own: a key such as `api_cache:ok:q:"[b]x"` must show as it is, to be
    copied into redis-cli."""
    from rich.text import Text

    return Text(str(value), style=style)


class Output:
    """One per command run. `json_mode` switches stdout to machine output."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        jsonl: bool = False,
        no_color: bool = False,
        command: str | None = None,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ):
        self.json_mode = json_mode
        # --jsonl: stdout holds data rows only, so an error is its line on stderr, no envelope.
        self.jsonl = jsonl
        self.command = command
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.is_terminal = _isatty(self.stdout)
        self.color = self.is_terminal and not no_color and "NO_COLOR" not in os.environ
        self._console = None
        self._err_console = None
        # --traceback: every error line comes after its traceback (secrets scrubbed by the
        # callable's list), also the errors a command reports itself.
        self.traceback = False
        self.secrets: Callable[[], list[str]] = list

    @property
    def live(self) -> bool:
        """Whether progress bars and live views may be drawn: a terminal, people's output."""
        return self.is_terminal and not self.json_mode and _isatty(self.stderr)

    @property
    def console(self):
        if self._console is None:
            self._console = _make_console(self.stdout, self.color, self.is_terminal)
        return self._console

    @property
    def err_console(self):
        if self._err_console is None:
            err_tty = _isatty(self.stderr)
            self._err_console = _make_console(self.stderr, self.color and err_tty, err_tty)
        return self._err_console

    # -- machines -------------------------------------------------------------------------
    def json(self, data: Any, *, ok: bool = True, error: CachectlError | None = None) -> None:
        envelope: dict[str, Any] = {
            "ok": ok,
            "command": self.command,
            "schema_version": JSON_SCHEMA_VERSION,
            "data": data,
        }
        if error is not None:
            envelope["error"] = error.to_dict()
        self.stdout.write(dumps(envelope) + "\n")
        self.stdout.flush()

    def json_line(self, obj: Any) -> None:
        """One JSON object on its own line (streaming output, --jsonl, stats --every off a terminal)."""
        self.stdout.write(dumps(obj) + "\n")
        self.stdout.flush()

    # -- people ---------------------------------------------------------------------------
    def print(self, *renderables: Any, **kw: Any) -> None:
        """rich output. Off a terminal it is sized to its content, for logs: tables are as wide
        as their widest cells (the console is wide enough never to fold them) and no line
        carries trailing blanks (rich pads a table's last column to its width)."""
        if self.is_terminal:
            self.console.print(*renderables, **kw)
            return
        with self.console.capture() as captured:
            self.console.print(*renderables, **kw)
        self.stdout.write("\n".join(_content_wide(captured.get().split("\n"))))
        self.stdout.flush()

    def line(self, text: str = "") -> None:
        """Plain text to stdout, no markup interpretation."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def info(self, text: str) -> None:
        """A note for people on stderr (never in the way of stdout data)."""
        if self.json_mode:
            return
        self._err_line(text, style="dim")

    def warn(self, text: str) -> None:
        self._err_line(f"warning: {text}", style="yellow")

    def error(
        self, err: CachectlError, *, envelope: bool = True, exc: BaseException | None = None
    ) -> None:
        """One clear line on stderr; with --json also the error envelope on stdout (unless the
        command already printed its own envelope holding the error). With --traceback the
        traceback of `exc` (a bug) or of the error comes first."""
        if self.traceback:
            self._write_traceback(exc or err)
        line = f"error: {err.message}"
        if err.hint:
            line += f" ({err.hint})"
        self._err_line(line, style="bold red")
        # A config file or manifest with several problems: every one of them, one a line.
        for problem in (
            err.details.get("problems", [])[1:]
            if _first_in_message(err)
            else err.details.get("problems", [])
        ):
            self._err_line(f"  {problem}", style="red")
        if self.json_mode and envelope and not self.jsonl:
            self.json(None, ok=False, error=err)

    def _write_traceback(self, exc: BaseException) -> None:
        import traceback

        from cachectl.redact import scrub

        text = "".join(traceback.format_exception(exc))
        self.stderr.write(scrub(text, [s for s in self.secrets() if s]))
        self.stderr.flush()

    def _err_line(self, text: str, style: str) -> None:
        if self.color and _isatty(self.stderr):
            from rich.text import Text

            self.err_console.print(Text(text, style=style), soft_wrap=True)
        else:
            self.stderr.write(text + "\n")
            self.stderr.flush()

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[ProgressHandle]:
        """A progress bar on stderr when live; otherwise a handle that draws nothing."""
        if not self.live:
            yield ProgressHandle(None, None)
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # The description and the extra are cachectl's words around data: drawn as text.
        columns = [
            SpinnerColumn(),
            TextColumn("{task.description}", style="progress.description", markup=False),
        ]
        columns += (
            [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed:,}")]
        )
        columns += [TextColumn("{task.fields[extra]}", markup=False), TimeElapsedColumn()]
        if total:
            columns.append(TimeRemainingColumn())
        with Progress(*columns, console=self.err_console, transient=True) as progress:
            task = progress.add_task(description, total=total, extra="")
            yield ProgressHandle(progress, task)


class ProgressHandle:
    def __init__(self, progress, task):
        self._progress = progress
        self._task = task

    def update(
        self,
        *,
        completed: int | None = None,
        advance: int | None = None,
        total: int | None = None,
        extra: str | None = None,
    ) -> None:
        if self._progress is None:
            return
        kw: dict[str, Any] = {}
        if completed is not None:
            kw["completed"] = completed
        if advance is not None:
            kw["advance"] = advance
        if total is not None:
            kw["total"] = total
        if extra is not None:
            kw["extra"] = extra
        self._progress.update(self._task, **kw)


def _content_wide(lines: list[str]) -> list[str]:
    """The lines without trailing blanks, and a table's rules (lines of box-drawing characters
    only) no wider than the widest line that holds something: rich draws them over the last
    column's right padding too."""
    lines = [line.rstrip() for line in lines]
    widest = max((len(line) for line in lines if not _is_rule(line)), default=0)
    return [line[:widest] if _is_rule(line) else line for line in lines]


def _is_rule(line: str) -> bool:
    return bool(line.strip()) and all(ch == " " or "\u2500" <= ch <= "\u257f" for ch in line)


def _first_in_message(err: CachectlError) -> bool:
    problems = err.details.get("problems") or []
    return len(problems) == 1 and str(problems[0]) in err.message


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _make_console(stream: IO[str], color: bool, terminal: bool):
    from rich.console import Console

    # No `:name:` emoji codes: cachectl never writes one, and data is full of them (an entry
    # key of the endpoint `books` holds `:books:`, which rich would draw as a book).
    console = Console(
        file=stream,
        emoji=False,
        force_terminal=terminal,
        no_color=not color,
        color_system="auto" if color else None,
        highlight=color,
        soft_wrap=not terminal,
        # Off a terminal nothing is folded to a guessed width: see Output.print.
        width=None if terminal else OFF_TERMINAL_WIDTH,
    )
    # rich's own answer to a closed pipe is `SystemExit(1)`; cachectl's frame decides instead.
    console.on_broken_pipe = _broken_pipe
    return console


def _broken_pipe() -> None:
    raise BrokenPipeError(errno.EPIPE, "the reader of the output has gone")


# -- a closed pipe (`cachectl keys | head`) -----------------------------------------------------


def stop_writing_to_closed_pipes() -> bool:
    """After a BrokenPipeError: whether stdout or stderr is a pipe whose reader has gone.

    Each that is gets pointed at /dev/null, as Python's documentation on SIGPIPE advises, so
    that nothing (not even the flush at interpreter exit, which would print "Exception
    ignored ... BrokenPipeError") writes to it again. False means the broken pipe was something
    else's, such as a socket: an error to report, not the end of the output.
    """
    closed = False
    for stream in (sys.stdout, sys.stderr):
        fd = _closed_pipe_fd(stream)
        if fd is None:
            continue
        closed = True
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    return closed


def _closed_pipe_fd(stream: IO[str] | None) -> int | None:
    """The stream's file descriptor when it is a pipe (or socket) nobody reads any more."""
    try:
        fd = stream.fileno()  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return None  # not a real file (a test's buffer)
    import select

    if not hasattr(select, "poll"):  # pragma: no cover - Windows: trust the BrokenPipeError
        return fd
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    # A pipe whose read end is closed polls as POLLERR (Linux) or POLLHUP (BSD, macOS).
    events = 0
    for _, mask in poller.poll(0):
        events |= mask
    return fd if events & (select.POLLERR | select.POLLHUP) else None
