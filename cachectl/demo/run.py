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

REDIS_CHOICES = ("auto", "redis-server", "in-process")
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


@dataclass
class DemoRedis:
    """The Redis the demo started: a redis-server process, or the in-process fallback."""

    server: Any
    kind: str  # "redis-server" or "in-process"
    note: str | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def stop(self) -> None:
        self.server.stop()


def start_redis(choice: str = "auto") -> DemoRedis:
    """A throwaway Redis on 127.0.0.1 and a free port (never 6379 unless the OS picks it free).

    auto: redis-server from PATH, else the in-process server; redis-server or in-process: that one.
    """
    from cachectl.devserver import RedisServer, find_redis_server

    if choice not in REDIS_CHOICES:
        raise UsageError(f"--redis must be one of {', '.join(REDIS_CHOICES)}, not {choice!r}")
    binary = find_redis_server() if choice != "in-process" else None
    if binary is not None:
        server = RedisServer(binary=binary).start()
        return DemoRedis(server, "redis-server")
    if choice == "redis-server":
        from cachectl.devserver import DevServerError

        raise DevServerError(
            "redis-server not found on PATH",
            hint="install it (apt-get install redis-server), or run the demo with "
            "--redis in-process",
        )
    from cachectl.demo.fakeserver import InProcessRedis

    server = InProcessRedis().start()
    why = "no redis-server on PATH" if choice == "auto" else "--redis in-process"
    note = (
        f"{why}: using an in-process Redis (fakeredis) instead; the cache's entries, tags and "
        "counters are exact, the server's figures (memory, keyspace hits) are estimates. "
        "Install redis-server for the real thing."
    )
    return DemoRedis(server, "in-process", note)


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


def plan_steps(manifest: str) -> list[Step]:
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
             ["cachectl", "stats"]),
        Step("keys", f"the first {KEYS_SHOWN} entries", ["cachectl", "keys", "--limit", str(KEYS_SHOWN)]),
        Step("tags", "the tag sets", ["cachectl", "tags"]),
        Step("invalidate", f"invalidate every entry tagged {INVALIDATED_TAG}",
             ["cachectl", "invalidate", "--tag", INVALIDATED_TAG, "--yes"]),
        again,
        Step("stats_again", "the figures again", ["cachectl", "stats"]),
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
    redis_kind: str | None = None
    redis_note: str | None = None
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
            "redis": {"url": self.redis_url, "kind": self.redis_kind, "note": self.redis_note},
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
