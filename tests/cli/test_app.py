"""The command-line frame every command shares: help, version, exit codes, --json, --traceback."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from cachectl import __version__
from cachectl.cli.app import app
from cachectl.errors import EXIT_CODE_MEANINGS, ExitCode, RedisUnreachable

runner = CliRunner()


def _commands(group, prefix: tuple[str, ...] = ()):
    ctx = typer.Context(group)
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        path = prefix + (name,)
        if hasattr(cmd, "list_commands"):
            yield from _commands(cmd, path)
        else:
            yield path, cmd


ALL_COMMANDS = list(_commands(get_command(app)))


HEAVY = ("redis", "yaml", "aiohttp", "rich", "fakeredis", "pydantic")


def _modules_loaded_by(argv: list[str]) -> tuple[list[str], subprocess.CompletedProcess]:
    """Runs `cachectl *argv` in a fresh interpreter; the heavy modules it had loaded at exit."""
    code = (
        "import sys\n"
        f"sys.argv = ['cachectl', *{argv!r}]\n"
        "from cachectl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})\n"
        "sys.stderr.write('\\nHEAVY=' + repr(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(proc.stderr.rsplit("HEAVY=", 1)[1]), proc


def test_help_loads_no_heavy_module():
    heavy, proc = _modules_loaded_by(["--help"])
    assert heavy == [], proc.stderr
    assert "Usage" in proc.stdout


@pytest.mark.parametrize("path", [p for p, _ in ALL_COMMANDS], ids=lambda p: " ".join(p))
def test_a_commands_help_loads_no_heavy_module(path):
    """typer 0.29 built a pydantic validator for every option (pydantic's import, ~60 ms and
    more, before any command ran): typer is pinned below it, and this holds the line."""
    heavy, proc = _modules_loaded_by([*path, "--help"])
    assert heavy == [], proc.stderr
    assert "Usage" in proc.stdout


def test_a_command_off_a_terminal_with_json_draws_nothing_with_rich(redis_url):
    heavy, proc = _modules_loaded_by(["--url", redis_url, "doctor", "--json"])
    assert json.loads(proc.stdout)["ok"] is True
    assert "redis" in heavy and not [m for m in heavy if m.startswith(("rich", "pydantic"))]


def test_importing_the_library_loads_no_cli():
    code = "import sys, cachectl; print(sorted(m for m in sys.modules if m.startswith(('cachectl.cli', 'typer', 'click'))))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"cachectl {__version__}"


def test_python_dash_m_runs_the_cli():
    proc = subprocess.run(
        [sys.executable, "-m", "cachectl", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0 and __version__ in proc.stdout


@pytest.mark.parametrize("path", [p for p, _ in ALL_COMMANDS], ids=lambda p: " ".join(p))
def test_every_command_has_help_and_json(path):
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "--json" in result.output
    cmd = dict(ALL_COMMANDS)[path]
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help text"


def test_unknown_option_is_a_usage_error():
    result = runner.invoke(app, ["doctor", "--no-such-flag"])
    assert result.exit_code == ExitCode.USAGE


def test_cachectl_error_is_one_line_with_its_exit_code(monkeypatch):
    def boom(settings, store):
        raise RedisUnreachable("cannot connect to Redis at redis://u:****@h:1/0: refused")

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", boom)
    result = runner.invoke(app, ["--url", "redis://127.0.0.1:1/0", "doctor"])
    assert result.exit_code == ExitCode.REDIS
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["error: cannot connect to Redis at redis://u:****@h:1/0: refused"]
    assert "Traceback" not in result.output


def test_json_error_envelope_on_stdout(monkeypatch):
    def boom(settings, store):
        raise RedisUnreachable("cannot connect")

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", boom)
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == ExitCode.REDIS
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False
    assert envelope["command"] == "doctor"
    assert envelope["error"]["code"] == "redis.unreachable"
    assert envelope["error"]["exit_code"] == ExitCode.REDIS


def test_internal_error_is_one_line_and_traceback_only_on_request(monkeypatch):
    def bug(settings, store):
        raise ValueError("something broke")

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", bug)
    plain = runner.invoke(app, ["doctor"])
    assert plain.exit_code == ExitCode.INTERNAL
    assert "Traceback" not in plain.stderr
    assert "internal error: ValueError: something broke" in plain.stderr

    # --traceback works wherever it stands on the line.
    verbose = runner.invoke(app, ["doctor", "--traceback"])
    assert verbose.exit_code == ExitCode.INTERNAL
    assert "Traceback (most recent call last)" in verbose.stderr


def test_ctrl_c_exits_130(monkeypatch):
    def interrupted(settings, store):
        raise KeyboardInterrupt

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", interrupted)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == ExitCode.INTERRUPTED


def test_exit_code_table_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for code in EXIT_CODE_MEANINGS:
        assert f"| {int(code)} |" in readme, f"exit code {int(code)} missing from README"


# --- Ctrl-C at a confirmation prompt ---------------------------------------------------------


def _run_in_pty(argv: list[str], answer: bytes, wait_for: bytes = b"[y/N]") -> tuple[int, str]:
    """Runs argv on a pseudo-terminal (its controlling terminal, so ^C is a real SIGINT from the
    line discipline), types `answer` once `wait_for` shows, and returns (exit status, screen)."""
    import os
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: stdin, stdout and stderr are the terminal
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    screen = b""
    sent = False
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                raise AssertionError(f"no output for 60 s; screen so far: {screen!r}")
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child has closed the terminal
                break
            if not chunk:
                break
            screen += chunk
            if not sent and wait_for in screen:
                os.write(fd, answer)
                sent = True
    except BaseException:
        os.kill(pid, 9)  # a child that hangs must not hang the test run in waitpid below
        raise
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert sent, f"the question never showed: {screen!r}"
    return os.waitstatus_to_exitcode(status), screen.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("answer", "line"),
    [
        (b"\x03", "error: interrupted: nothing deleted"),  # Ctrl-C
        (b"\x04", "error: nothing deleted: not confirmed"),  # Ctrl-D
        (b"n\r", "error: nothing deleted: not confirmed"),
    ],
    ids=["ctrl-c", "ctrl-d", "no"],
)
def test_anything_but_yes_at_the_prompt_deletes_nothing_and_exits_130(redis_url, answer, line):
    import redis

    keys = [f"api_cache:user_profile:id:{i}" for i in range(3)]
    with redis.Redis.from_url(redis_url) as r:
        for key in keys:
            r.set(key, "{}")
    argv = [
        sys.executable,
        "-m",
        "cachectl",
        "--url",
        redis_url,
        "--no-color",
        "invalidate",
        "--pattern",
        "api_cache:user_profile:*",
    ]
    status, screen = _run_in_pty(argv, answer)
    assert status == ExitCode.INTERRUPTED, screen
    lines = [x.strip() for x in screen.replace("\r", "").split("\n") if x.strip()]
    # The question, then exactly one line of ours (the terminal may echo ^C or ^D after it).
    assert lines[-1] == line, screen
    assert lines[-2].startswith("Delete 3 entries? [y/N]"), screen
    assert "Aborted" not in screen and "Traceback" not in screen
    with redis.Redis.from_url(redis_url) as r:
        assert r.exists(*keys) == 3


# --- a closed pipe (`cachectl ... | head`) ---------------------------------------------------


def _read_a_little_then_close(argv: list[str], nbytes: int) -> tuple[int, bytes, bytes]:
    """Runs argv with stdout into a pipe we read `nbytes` of and then close, as `| head -c`
    does; returns (exit status, what was read, all of stderr)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(nbytes)
    proc.stdout.close()
    stderr = proc.stderr.read()
    return proc.wait(timeout=60), head, stderr


@pytest.fixture
def many_entries(redis_url):
    """More entries than a pipe's buffer holds as --jsonl or --json, all in one tag set."""
    import redis

    keys = [f"api_cache:many:id:{i}" for i in range(5000)]
    with redis.Redis.from_url(redis_url) as r:
        pipe = r.pipeline(transaction=False)
        pipe.mset({k: "{}" for k in keys})
        pipe.sadd("tag:many", *keys)
        pipe.execute()
    return keys


@pytest.mark.parametrize(
    "command",
    [
        ["keys", "--jsonl"],
        ["keys"],  # the table for people, drawn by rich
        ["keys", "--json"],
        ["invalidate", "--tag", "many", "--dry-run", "--json"],
        ["invalidate", "--pattern", "api_cache:many:*", "--dry-run", "--show", "5000"],
    ],
    ids=" ".join,
)
def test_a_reader_that_closes_early_ends_the_command_quietly_with_141(
    redis_url, many_entries, command
):
    argv = [sys.executable, "-m", "cachectl", "--url", redis_url, *command]
    status, head, stderr = _read_a_little_then_close(argv, 200)
    assert len(head) == 200
    assert status == ExitCode.CLOSED_PIPE, stderr
    # Nothing at all on stderr: no traceback, no "Exception ignored ... BrokenPipeError" from
    # the flush at interpreter exit, no error line.
    assert stderr == b""
    if command[0] == "invalidate":
        import redis

        with redis.Redis.from_url(redis_url) as r:
            assert r.exists(*many_entries) == len(many_entries)


@pytest.mark.parametrize("command", [["--help"], ["doctor", "--help"], ["--version"]], ids=" ".join)
def test_help_into_a_closed_pipe_ends_quietly(command):
    import os

    # A pipe whose reader is gone before cachectl starts: its first write meets EPIPE.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "cachectl", *command],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert proc.returncode == ExitCode.CLOSED_PIPE, proc.stderr
    assert proc.stderr == b""


def test_a_broken_pipe_that_is_not_stdout_is_an_error_not_silence(monkeypatch):
    """A BrokenPipeError from a socket (stdout still open) is reported, never swallowed."""

    def socket_broke(settings, store):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", socket_broke)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == ExitCode.INTERNAL
    assert "internal error: BrokenPipeError" in result.stderr


# --- main() builds only the command on the line -------------------------------------------------


def test_every_command_is_mapped_to_the_module_that_registers_it():
    from cachectl.cli.app import COMMAND_MODULES, _new_app, _register

    group = get_command(app)
    assert set(COMMAND_MODULES) == set(group.list_commands(typer.Context(group)))
    for name in COMMAND_MODULES:
        alone = _new_app()
        alone.callback()(lambda: None)
        _register(alone, [name])
        one = get_command(alone)
        assert name in one.list_commands(typer.Context(one))


def test_the_root_options_that_take_a_value_are_known():
    from cachectl.cli.app import ROOT_VALUE_OPTIONS

    root = get_command(app)
    takes_value = {
        opt
        for p in root.params
        if not getattr(p, "is_flag", False) and not p.count
        for opt in p.opts
    }
    assert takes_value == ROOT_VALUE_OPTIONS


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["keys", "-n", "1"], "keys"),
        (["--url", "redis://h:1/0", "--no-color", "invalidate", "--tag", "t"], "invalidate"),
        (["-u", "doctor", "keys"], "keys"),  # "doctor" is the URL here
        (["-uredis://h:1/0", "doctor"], "doctor"),
        (["--url=redis://h:1/0", "history", "list"], "history"),
        (["--timeout", "3", "--cluster", "stats"], "stats"),
        (["--help"], None),
        (["--version"], None),
        ([], None),
        (["docter"], None),  # no such command: the whole tree, so typer can suggest "doctor"
        (["--", "keys"], None),
    ],
)
def test_the_command_named_on_the_line(args, name):
    from cachectl.cli.app import command_name

    assert command_name(args) == name


def test_a_command_alone_runs_as_in_the_whole_tree(redis_url):
    proc = subprocess.run(
        [sys.executable, "-m", "cachectl", "--url", redis_url, "--no-color", "doctor", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["command"] == "doctor"
    typo = subprocess.run(
        [sys.executable, "-m", "cachectl", "docter"], capture_output=True, text=True, check=False
    )
    assert typo.returncode == ExitCode.USAGE and "Did you mean 'doctor'" in typo.stderr


def test_the_roots_help_from_stand_ins_is_the_whole_trees_help():
    """`cachectl --help` lists the commands from COMMANDS without importing them: the listing
    must be exactly what the real commands would give."""
    from cachectl.cli.app import _full_app, _root_app

    for args in (["--help"], []):
        stand_ins = runner.invoke(_root_app(), args, prog_name="cachectl", terminal_width=200)
        whole = runner.invoke(_full_app(), args, prog_name="cachectl", terminal_width=200)
        assert stand_ins.output == whole.output
        assert stand_ins.exit_code == whole.exit_code


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["docter"]])
def test_the_root_alone_imports_no_command_module(argv):
    code = (
        "import sys\n"
        f"sys.argv = ['cachectl', *{argv!r}]\n"
        "from cachectl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "from cachectl.cli.app import COMMAND_MODULES\n"
        "loaded = sorted(m for m in COMMAND_MODULES.values() if 'cachectl.cli.' + m in sys.modules)\n"
        "sys.stderr.write('\\nLOADED=' + repr(loaded))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert ast.literal_eval(proc.stderr.rsplit("LOADED=", 1)[1]) == []


def test_an_asyncio_cancellation_escaping_a_command_is_an_interruption(monkeypatch):
    """A stop signal that cancels an asyncio run while it is already stopping: exit 130 and one
    line, never a CancelledError traceback."""
    import asyncio

    def cancelled(settings, store):
        raise asyncio.CancelledError

    monkeypatch.setattr("cachectl.ops.doctor.run_doctor", cancelled)
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == ExitCode.INTERRUPTED
    assert result.stderr.strip() == "error: interrupted"


# --- the README's two opening commands and CI ------------------------------------------------


def test_the_readme_opens_with_the_demo_and_the_test_command_that_ci_runs():
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#", 1)[0].strip() for line in block.splitlines()]
    commands = [command for command in commands if command]  # not the `# Not run:` line
    assert commands == ["./scripts/demo.sh", "./scripts/test.sh"]
    for command in commands:
        script = root / command
        assert script.is_file() and os.access(script, os.X_OK), command
    ci = (root / ".ci" / "run").read_text()
    ran = [line.strip() for line in ci.splitlines() if line.strip().startswith("./scripts/")]
    assert ran == ["./scripts/test.sh"], "CI must run the README's test command"


_INTERRUPTED_WHILE_WAITING = """
import _thread, os, sys, threading
from cachectl.cli.context import ask_yes_no

main = threading.get_native_id()

def interrupt_once_main_waits():
    # Wait until the main thread sleeps in its read of the terminal, then set the interpreter's
    # signal flag as a SIGINT landing just before that read would: no system call is cut short.
    stat = f"/proc/self/task/{main}/stat"
    while open(stat).read().rsplit(")", 1)[1].split()[0] != "S":
        pass
    _thread.interrupt_main()

threading.Thread(target=interrupt_once_main_waits, daemon=True).start()
try:
    ask_yes_no("Delete 3 entries?")
except KeyboardInterrupt:
    print("interrupted")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_ctrl_c_landing_before_the_read_still_ends_the_question():
    """A SIGINT that sets Python's flag after the question is shown but before the read begins
    must still end the question (input() would wait on with ^C on the screen)."""
    import os
    import pty

    controller, terminal = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _INTERRUPTED_WHILE_WAITING],
            stdin=terminal,
            capture_output=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert proc.stdout.decode().strip() == "interrupted", proc.stderr.decode()
    assert proc.stderr.decode().startswith("Delete 3 entries? [y/N]: ")
