"""Hostile and absurd input: each case run as a `cachectl` subprocess, its peak memory and time.

Every file cachectl reads and every numeric flag must be refused (or handled) in bounded memory
and time: the target is under 200 MB and 5 s each on a 2-core machine. Each case is one command
line; the peak resident memory is the child's own (`os.wait4`'s ru_maxrss, the kernel's figure,
not a sampling), the time is wall-clock from start to exit. A case that runs past --timeout is
killed and reported as such, and every child runs under an address-space cap (`ulimit -v`,
--cap-mb) so that a case that goes wrong cannot take the machine down.

The cases: `manifest validate` of /dev/zero and /dev/urandom; a matrix `{file: /dev/zero}`; a
"billion laughs" YAML file (nested aliases) as a manifest, as a dependency graph
(`invalidate --graph`) and as a config file; `matrix: {i: {range: [1, 10^21]}}`; a manifest
nested 5,000 levels deep; `--delay 99999999999999999999h`; a 4 MiB manifest (the largest
accepted) of one long string and one of 99,990 tiny values (the most accepted): the worst that
is read in full; and `warm` against a local
origin of 50 MB answers (with Content-Length, and chunked) with --concurrency 1 and 50, into
a throwaway redis-server. A chunked answer is read up to the limit (8 MiB) before it is refused,
so 50 of them at once hold up to 50 x 8 MiB: the last row shows the same with a 2 MiB limit.

`--pythonpath DIR` runs the cases against another checkout (`git archive COMMIT | tar -x -C DIR`),
for a before/after comparison; it is imported first on the path.

Usage: python benchmarks/hostile_input.py [--timeout 30] [--cap-mb 2048] [--pythonpath DIR]
       [--out benchmarks/results/hostile_input.txt]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
TARGET_MB, TARGET_S = 200, 5.0

LAUGHS = textwrap.dedent(
    """\
    a: &a [x, x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
    """
)


def manifest(endpoint: str) -> str:
    return (
        "version: 1\nendpoints:\n  - name: items\n    url: 'http://127.0.0.1:1/items/{i}'\n"
        "    ttl: 60\n" + textwrap.indent(textwrap.dedent(endpoint), "    ")
    )


def long_alias(text: str) -> str:
    out = f"s: &l0 {text}\n"
    for level in range(1, 5):
        out += f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]\n"
    return out


def write_inputs(directory: Path) -> dict[str, Path]:
    files = {
        "laughs": LAUGHS,
        "zero_matrix": manifest("matrix: {i: {file: /dev/zero}}\n"),
        "range": manifest("matrix: {i: {range: [1, 1000000000000000000000]}}\n"),
        "deep": "version: 1\nendpoints: " + "[" * 5000 + "]" * 5000 + "\n",
        # The most values a document may hold by default, each as small as can be: read in full.
        "wide": "version: 1\nx: [" + ",".join(["1"] * 99_990) + "]\n",
        # The largest document accepted by default (4 MiB), of long text: read in full.
        "large": "version: 1\nx: '" + "abc " * (MiB - 8) + "'\n",
        # One 2 MiB text anchored and used 10,000 times through nested aliases (few values).
        "alias_text": long_alias("x" * (2 * MiB)),
        "alias_text_var": long_alias("${HOME}" + "x" * (2 * MiB)),
        # 12 anchors each 90 levels deep, each ending in an alias of the one before.
        "alias_depth": "".join(
            f"k{n}: &a{n} " + "[" * 90 + (f"*a{n - 1}" if n else "0") + "]" * 90 + "\n"
            for n in range(12)
        ),
        # A problem about a 200 KB key: the line quoting it, and masking URLs in it.
        "long_key": "? " + "k" * 200_000 + "\n: 1\n",
        # A dependency graph of one id with 99,990 dependents.
        "wide_graph": "a: [" + ", ".join(f"id{i}" for i in range(99_990)) + "]\n",
        "deep_json_matrix": manifest("matrix: {i: {file: deep_json.txt}}\n"),
        "inf_matrix": manifest("matrix: {i: {file: inf.txt}}\n"),
    }
    (directory / "deep_json.txt").write_text("[" * 30_000 + "]" * 30_000 + "\n")
    (directory / "inf.txt").write_text("1\n1e400\n")
    (directory / "loop1").symlink_to(directory / "loop2")
    (directory / "loop2").symlink_to(directory / "loop1")
    paths = {}
    for name, text in files.items():
        paths[name] = directory / f"{name}.yaml"
        paths[name].write_text(text)
    return paths


class Origin:
    """A local HTTP origin answering 50 MB of JSON, with a Content-Length or chunked."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.port = 0
        threading.Thread(target=self._serve, daemon=True).start()
        self.ready.wait(10)

    def _serve(self) -> None:
        from aiohttp import web

        async def big(request: web.Request) -> web.StreamResponse:
            size = 50 * MiB
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            if request.match_info["kind"] == "length":
                response.content_length = size
            else:
                response.enable_chunked_encoding()
            await response.prepare(request)
            piece = b"x" * (64 * 1024)
            try:
                await response.write(b'"')
                left = size - 2
                while left > 0:
                    await response.write(piece[:left])
                    left -= len(piece)
                await response.write(b'"')
                await response.write_eof()
            except (ConnectionError, RuntimeError):
                pass
            return response

        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_get("/{kind}/{i}", big)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()


def warm_manifest(directory: Path, origin: Origin, kind: str) -> Path:
    path = directory / f"warm_{kind}.yaml"
    path.write_text(
        "version: 1\nendpoints:\n"
        f"  - {{name: big, url: 'http://127.0.0.1:{origin.port}/{kind}/{{i}}', ttl: 60,"
        " retries: 0, timeout: 60, matrix: {i: {range: [1, 50]}}}\n"
    )
    return path


def run_case(
    argv: list[str], env: dict, timeout: float, cap_mb: int
) -> tuple[int | str, float, float]:
    """(exit code or "killed", peak RSS in MB, seconds) of one cachectl run."""

    # `ulimit -v` in a shell that then execs cachectl: the same process, capped.
    command = [
        "/bin/sh",
        "-c",
        f'ulimit -v {cap_mb * 1024}; exec "$0" "$@"',
        sys.executable,
        "-m",
        "cachectl",
        *argv,
    ]
    started = time.perf_counter()
    # Run from HOME (a temporary directory): `-m` puts the working directory first on the path,
    # before PYTHONPATH, and it must not be a checkout.
    process = subprocess.Popen(
        command, env=env, cwd=env["HOME"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    timer = threading.Timer(timeout, lambda: process.send_signal(signal.SIGKILL))
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        timer.cancel()
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode(errors="replace").strip().splitlines()
    process.stderr.close()
    code: int | str = process.returncode
    if process.returncode == -signal.SIGKILL:
        code = "killed"
    elif process.returncode < 0 or "MemoryError" in " ".join(stderr):
        code = f"{process.returncode} (memory cap)"
    return code, usage.ru_maxrss / 1024, seconds, (stderr[0] if stderr else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--cap-mb", type=int, default=2048)
    parser.add_argument("--pythonpath", help="run another checkout's cachectl")
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/hostile_input.txt"))
    parser.add_argument("--no-warm", action="store_true", help="skip the warm cases")
    parser.add_argument("--only", help="run only the cases whose name holds this text")
    args = parser.parse_args()

    from cachectl.devserver import RedisServer

    env = {**os.environ, "NO_COLOR": "1", "CACHECTL_RETRIES": "0"}
    env.pop("CACHECTL_CONFIG", None)
    env["PYTHONPATH"] = args.pythonpath or str(ROOT)
    dead = "redis://127.0.0.1:1/0"
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        env["HOME"] = tmp  # no user config file
        paths = write_inputs(directory)
        cases = [
            ("manifest validate /dev/zero", ["manifest", "validate", "/dev/zero"]),
            ("manifest validate /dev/urandom", ["manifest", "validate", "/dev/urandom"]),
            ("matrix {file: /dev/zero}", ["manifest", "validate", str(paths["zero_matrix"])]),
            ("billion laughs: manifest validate", ["manifest", "validate", str(paths["laughs"])]),
            (
                "billion laughs: invalidate --graph",
                [
                    "--url",
                    dead,
                    "invalidate",
                    "--depends-on",
                    "a",
                    "--graph",
                    str(paths["laughs"]),
                    "--yes",
                ],
            ),
            ("billion laughs: config file", ["--config", str(paths["laughs"]), "doctor"]),
            ("range [1, 10^21]", ["manifest", "validate", str(paths["range"])]),
            ("nested 5,000 levels", ["manifest", "validate", str(paths["deep"])]),
            (
                "--delay 99999999999999999999h",
                [
                    "--url",
                    dead,
                    "invalidate",
                    "--tag",
                    "t",
                    "--yes",
                    "--delay",
                    "99999999999999999999h",
                ],
            ),
            (
                "YAML of 99,990 values (the limit: 100,000)",
                ["manifest", "validate", str(paths["wide"])],
            ),
            (
                "YAML of 4 MiB (the limit), one long string",
                ["manifest", "validate", str(paths["large"])],
            ),
            (
                "audit: 2 MiB text aliased 10,000 times",
                ["manifest", "validate", str(paths["alias_text"])],
            ),
            (
                "audit: 2 MiB text with ${HOME} aliased 10,000 times",
                ["manifest", "validate", str(paths["alias_text_var"])],
            ),
            (
                "audit: 2 MiB text aliased, config file",
                ["--config", str(paths["alias_text"]), "doctor"],
            ),
            (
                "audit: 2 MiB text aliased, invalidate --graph",
                [
                    "--url",
                    dead,
                    "invalidate",
                    "--depends-on",
                    "a",
                    "--graph",
                    str(paths["alias_text"]),
                    "--yes",
                ],
            ),
            (
                "audit: 12 x 90 levels stacked through aliases",
                ["manifest", "validate", str(paths["alias_depth"])],
            ),
            (
                "audit: a 200 KB key in a problem line",
                ["manifest", "validate", str(paths["long_key"])],
            ),
            (
                "audit: graph of 99,990 dependents",
                [
                    "--url",
                    dead,
                    "invalidate",
                    "--depends-on",
                    "zz",
                    "--graph",
                    str(paths["wide_graph"]),
                    "--dry-run",
                ],
            ),
            (
                "audit: matrix line of 30,000 nested [",
                ["manifest", "expand", str(paths["deep_json_matrix"])],
            ),
            ("audit: matrix line 1e400", ["manifest", "expand", str(paths["inf_matrix"])]),
            ("audit: -c /dev/null", ["-c", "/dev/null", "doctor"]),
            ("audit: -c a directory", ["-c", str(directory), "doctor"]),
            ("audit: -c a symlink loop", ["-c", str(directory / "loop1"), "doctor"]),
        ]
        if args.only:
            cases = [(name, argv) for name, argv in cases if args.only in name]
        rows = [(name, *run_case(argv, env, args.timeout, args.cap_mb)) for name, argv in cases]
        if not args.no_warm:
            origin = Origin()
            with RedisServer() as server:
                for kind, concurrency in [
                    ("length", 1),
                    ("chunked", 1),
                    ("length", 50),
                    ("chunked", 50),
                ]:
                    path = warm_manifest(directory, origin, kind)
                    argv = [
                        "--url",
                        server.url,
                        "warm",
                        str(path),
                        "--concurrency",
                        str(concurrency),
                    ]
                    shown = "Content-Length" if kind == "length" else "chunked"
                    name = f"warm 50 x 50 MB ({shown}), --concurrency {concurrency}"
                    rows.append((name, *run_case(argv, env, args.timeout, args.cap_mb)))
                path = warm_manifest(directory, origin, "chunked")
                argv = [
                    "--url",
                    server.url,
                    "warm",
                    str(path),
                    "--concurrency",
                    "50",
                    "--max-response-bytes",
                    "2MiB",
                ]
                rows.append(
                    (
                        "warm 50 x 50 MB (chunked), --max-response-bytes 2MiB",
                        *run_case(argv, env, args.timeout, args.cap_mb),
                    )
                )

    lines = [
        (
            f"hostile input: peak RSS (the child's ru_maxrss) and wall time per case; target "
            f"under {TARGET_MB} MB and {TARGET_S:g} s"
        ),
        (
            f"cachectl {_revision(args.pythonpath or ROOT)}; {os.cpu_count()} cores; load average "
            f"{os.getloadavg()[0]:.1f}; address space capped at {args.cap_mb} MB, killed after "
            f"{args.timeout:g} s"
        ),
        "",
        f"{'case':<58} {'exit':>6} {'peak MB':>8} {'seconds':>8}  ok  first line of stderr",
    ]
    for name, code, peak, seconds, first in rows:
        ok = code != "killed" and peak < TARGET_MB and seconds < TARGET_S and code != 1
        lines.append(
            f"{name:<58} {code!s:>6} {peak:8.1f} {seconds:8.2f}  {'yes' if ok else 'NO ':<3} "
            f"{first[:110]}"
        )
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()


def _revision(checkout) -> str:
    """The commit measured (never the machine's path to it)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "(not a git checkout)"
    return f"at commit {out.stdout.strip()}"
