"""`cachectl` for the docs' shell blocks without a new interpreter per command.

A shell block runs a dozen `cachectl` commands, and each new Python process spends most of its
time importing (typer, rich, redis-py). This server imports cachectl's CLI once, then forks for
each command: the child takes the caller's arguments, environment, working directory and its
standard input, output and error (passed as file descriptors), runs `cachectl.cli.app.main()`
exactly as the installed `cachectl` script does, and its exit status goes back to the caller.

    python -m tests.docs.forkserver SOCKET        # serve until killed
    python -S tests/docs/forkserver.py --client SOCKET ARGS...   # what `cachectl` on PATH runs
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import struct
import sys


def _recv_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def client(path: str, args: list[str]) -> int:
    request = json.dumps({"argv": args, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(path)
        socket.send_fds(conn, [struct.pack("!I", len(request))], [0, 1, 2])
        conn.sendall(request)
        try:
            return struct.unpack("!i", _recv_exactly(conn, 4))[0]
        except EOFError:
            sys.stderr.write("cachectl (tests/docs/forkserver.py): the command died unanswered\n")
            return 1


def _run(conn: socket.socket) -> None:
    """In the forked child: become the command, run it, exit with its status as the script
    would (atexit handlers and thread joins included); the caller hears the status last."""
    header, fds, _, _ = socket.recv_fds(conn, 4, 3)
    request = json.loads(_recv_exactly(conn, struct.unpack("!I", header)[0]))
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["cachectl", *request["argv"]]
    status = [1]  # an exception out of main() is a traceback and 1, as in the script

    def answer() -> None:  # registered first, so run after every other atexit handler
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (BrokenPipeError, ValueError):
                pass
        conn.sendall(struct.pack("!i", status[0]))

    atexit.register(answer)
    from cachectl.cli.app import main

    try:
        main()
        status[0] = 0
    except SystemExit as done:
        code = done.code
        status[0] = code if isinstance(code, int) else (0 if code is None else 1)
        raise


def serve(path: str) -> None:
    # What the commands import, imported once: the CLI, and every module of the package (the
    # commands import theirs when they run, to keep `cachectl --help` fast).
    import importlib
    import pkgutil

    import cachectl

    for module in pkgutil.walk_packages(cachectl.__path__, "cachectl."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(path)
        listener.listen(16)
        while True:
            conn, _ = listener.accept()
            pid = os.fork()
            if pid == 0:
                listener.close()
                _run(conn)
                sys.exit(0)
            conn.close()
            while True:  # reap finished children
                try:
                    done, _ = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if done == 0:
                    break


if __name__ == "__main__":
    if sys.argv[1] == "--client":
        sys.exit(client(sys.argv[2], sys.argv[3:]))
    serve(sys.argv[1])
