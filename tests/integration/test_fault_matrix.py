"""The fault matrix: each long-running command against each fault a real server can have mid-run.

Every case holds the same two rules (README, "Exit codes"):
- exit 0 only when the whole job was done, as read back from the server afterwards; any other
  ending exits non-zero, with one `error:` line, and its output names what was left;
- nothing outside the job's selection changed, whatever happened.

How a case runs: a real redis-server (append-only, so a kill keeps what was written) and the CLI
as a real process (`python -m cachectl`), so signals and restarts are real. The job is paced
(--rate, a slow origin, --every) so that it is still running when the test sees its first
effect on the server or its first line. The test then stops the CLI (SIGSTOP, and waits until
the kernel says it is stopped), applies the fault and lets the CLI go on (SIGCONT): the fault
lands between two steps of the job, at a point the test chose, never at a time it guessed.

The faults, applied while the CLI is stopped:
  killed          SIGKILL, left down until the CLI has exited (then restarted, to read it)
  restarted       SIGKILL and started again with its data (the append-only file)
  rolled-back     SIGKILL, started again, and given back the data of before the run (a
                  failover to a lagging replica, a restored backup): what the run deleted is
                  back. Deleting jobs only: they are the ones whose work a rollback undoes
                  in a way the job can still see and finish.
  frozen          SIGSTOP for longer than the CLI's timeout: until the CLI has exited
  client-killed   CLIENT KILL of every connection of the CLI's user
  script-flush    SCRIPT FLUSH: the CLI's loaded scripts are gone
  out-of-memory   maxmemory 1 byte under noeviction: every write that needs memory is refused
  acl-refusal     the CLI's ACL user loses a permission the job needs

The deleting jobs meet a restart and a rollback again as a user whose ACL denies INFO (as
many do: it is in @dangerous), who cannot read a server's run_id (the `-no-info` cases).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cachectl.layout import Layout

ROOT = Path(__file__).resolve().parents[2]
LAYOUT = Layout()
ADMIN_PASSWORD = "admin-pass"
JOB_USER, JOB_PASSWORD = "job", "job-pass"
DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]
# Short, so that a frozen or lost server ends a run in about a second; one retry, so that a
# restart is ridden out but a lasting outage is not waited on for long.
CLI_OPTIONS = ["--connect-timeout", "0.5", "--timeout", "0.5"]
CLI_ENV = {"CACHECTL_RETRIES": "1", "NO_COLOR": "1", "API_TOKEN": "t0ken"}
BOUND_SECONDS = 60  # a run or a wait still going after this has hung: the case fails, saying so


# --- the CLI as a process ------------------------------------------------------------------------


class Run:
    """A `python -m cachectl` process, its stdout and stderr lines gathered as they come."""

    def __init__(self, argv: list[str], cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cachectl", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=cwd,
            env={**os.environ, "PYTHONPATH": str(ROOT), **CLI_ENV},
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=lambda s=s, out=out: out.extend(iter(s.readline, "")))
            for s, out in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))
        ]
        for reader in self._readers:
            reader.daemon = True
            reader.start()

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout if line.startswith("{")]

    def error_line(self) -> str:
        said = [line.strip() for line in self.stderr if line.strip()]
        return said[-1] if said else ""

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: _state(self.proc.pid) in ("T", "t"), "the CLI to be stopped")

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def finish(self) -> int:
        try:
            self.proc.wait(timeout=BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the run hung\n{self.output()}") from None
        for reader in self._readers:
            reader.join(10)
        return self.proc.returncode

    def output(self) -> str:
        return f"stdout:\n{''.join(self.stdout)[-2500:]}stderr:\n{''.join(self.stderr)[-1500:]}"


def _state(pid: int) -> str:
    """The process state letter from /proc (T: stopped). comm may hold spaces: split after ')'."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def wait_until(condition: Callable[[], bool], what: str, run: Run | None = None) -> None:
    """Polls an observable state (the server's keys, a line printed) until it holds."""
    deadline = time.monotonic() + BOUND_SECONDS
    while not condition():
        if run is not None and run.proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}\n{run.output()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


# --- outside every job's selection ---------------------------------------------------------------

OTHER_ENTRIES = [LAYOUT.entry("other", {"id": i}) for i in range(20)]


def seed_outside(conn) -> None:
    """Another application's keys; live entries of another endpoint, in their tag set and in
    the entries log. No job here may change any of it."""
    pipe = conn.pipeline(transaction=False)
    for i, key in enumerate(OTHER_ENTRIES):
        pipe.set(f"session:{i}", f"s{i}")
        pipe.set(key, json.dumps({"other": i}))
        pipe.sadd(LAYOUT.tag("keep"), key)
        pipe.zadd(LAYOUT.entries_log(), {key: 1_000 + i})
    pipe.hset("app:config", mapping={"a": "1"})
    pipe.execute()


def outside(conn) -> dict:
    """The outside as it is now (of the entries log, only the outside entries' members)."""
    return {
        "sessions": [conn.get(f"session:{i}") for i in range(len(OTHER_ENTRIES))],
        "entries": [conn.get(key) for key in OTHER_ENTRIES],
        "tag": conn.smembers(LAYOUT.tag("keep")),
        "logged": [conn.zscore(LAYOUT.entries_log(), key) for key in OTHER_ENTRIES],
        "app": conn.hgetall("app:config"),
    }


# --- the jobs ------------------------------------------------------------------------------------


@dataclass
class Job:
    """A long-running command: its data, its command line, how the test sees that it has begun,
    what of it is left undone (read from the server; nothing left = fully done), whether its
    output names what was left, and the ACL rules that take away what it needs."""

    name: str
    command: Callable[[Path, object], str]  # after `cachectl --url ...`, shell words
    seed: Callable[[object], None]
    begun: Callable[[object, Run], bool]
    left: Callable[[object, Run], list[str]]
    names_left: Callable[[Run], bool]
    revoke: str
    deletes: bool = False


# invalidate: entries of endpoint k in tag t and the entries log, deleted 10 at a time, paced.
N_SELECTED = 200
SELECTED = [LAYOUT.entry("k", {"id": i}) for i in range(N_SELECTED)]
# The pacer starts with one second of tokens: at 150 keys a second 150 of the 200 go at once and
# the rest over a third of a second, time enough for the fault to land part way through (at 400
# all went at once, and a loaded machine could see the run done before the fault).
PACED = "--batch-size 10 --count 10 --rate 150"


def seed_selected(conn) -> None:
    pipe = conn.pipeline(transaction=False)
    for key in SELECTED:
        pipe.set(key, "{}")
        pipe.sadd(LAYOUT.tag("t"), key)
        pipe.zadd(LAYOUT.entries_log(), {key: 2_000})
    pipe.execute()


def entries_left(conn, run) -> list[str]:
    n = sum(conn.exists(key) for key in SELECTED)
    return [f"{n} of {N_SELECTED} selected entries"] if n else []


def tag_left(conn, run) -> list[str]:
    tag = LAYOUT.tag("t")
    sets = [k for k in (tag, LAYOUT.pending_set(tag)) if conn.exists(k)]
    return entries_left(conn, run) + [f"the set {k}" for k in sets]


def deleting_begun(conn, run) -> bool:
    return conn.exists(*SELECTED) < N_SELECTED


def says_rerun(run: Run) -> bool:
    """The error line says the run stopped part way and that a rerun finishes it."""
    return "rerun" in run.error_line()


INVALIDATE_TAG = Job(
    name="invalidate-tag",
    command=lambda tmp, origin: f"invalidate --tag t --yes --json {PACED}",
    seed=seed_selected,
    begun=deleting_begun,
    left=tag_left,
    names_left=says_rerun,
    revoke="-unlink -del",
    deletes=True,
)

INVALIDATE_PATTERN = Job(
    name="invalidate-pattern",
    command=lambda tmp, origin: f"invalidate --pattern 'api_cache:k:*' --yes --json {PACED}",
    seed=seed_selected,
    begun=deleting_begun,
    left=entries_left,
    names_left=says_rerun,
    revoke="-unlink -del",
    deletes=True,
)

# prune: ten tag sets and the entries log, holding members whose entries are gone.
DANGLING = [LAYOUT.entry("gone", {"id": i}) for i in range(N_SELECTED)]
DANGLING_SETS = [LAYOUT.tag(f"d{i}") for i in range(10)]


def seed_dangling(conn) -> None:
    pipe = conn.pipeline(transaction=False)
    for i, key in enumerate(DANGLING):
        pipe.sadd(DANGLING_SETS[i % 10], key)
        pipe.zadd(LAYOUT.entries_log(), {key: 3_000})
    pipe.execute()


def dangling_left(conn, run) -> list[str]:
    in_sets = sum(conn.scard(key) for key in DANGLING_SETS)
    logged = sum(conn.zscore(LAYOUT.entries_log(), key) is not None for key in DANGLING)
    return [
        f"{n} dangling {where}"
        for n, where in ((in_sets, "tag set members"), (logged, "entries log members"))
        if n
    ]


PRUNE = Job(
    name="prune",
    command=lambda tmp, origin: f"prune --yes --json {PACED}",
    seed=seed_dangling,
    begun=lambda conn, run: sum(conn.scard(key) for key in DANGLING_SETS) < N_SELECTED,
    left=dangling_left,
    names_left=says_rerun,
    revoke="-zrem",  # its sets are done with SREM; the entries log needs ZREM
    deletes=True,
)

# warm: a manifest of 30 slow answers (50 ms), two at a time.
N_WARM = 30
WARMED = [LAYOUT.entry("w", {"id": i}) for i in range(1, N_WARM + 1)]


def warm_command(tmp: Path, origin) -> str:
    manifest = tmp / "warm.yaml"
    manifest.write_text(
        textwrap.dedent(f"""\
        version: 1
        defaults: {{base_url: "{origin.url}", ttl: 10m, retries: 0}}
        endpoints:
          - name: w
            url: "/slow/{{id}}?delay=0.05"
            matrix: {{id: {{range: [1, {N_WARM}]}}}}
        """)
    )
    return f"warm {shlex.quote(str(manifest))} --concurrency 2 --json"


def warm_left(conn, run) -> list[str]:
    missing = sum(not conn.exists(key) for key in WARMED)
    return [f"{missing} of {N_WARM} entries not stored"] if missing else []


def warm_accounts_for_every_request(run: Run) -> bool:
    """The report says what became of each planned request, and that not all were stored."""
    (envelope,) = run.json_lines()
    data = envelope["data"]
    ends = ("stored", "interrupted", "not_attempted")
    accounted = sum(data[k] for k in ends) + data["failed"]["total"] + data["skipped"]["total"]
    return accounted == data["planned"] == N_WARM and data["stored"] < N_WARM


WARM = Job(
    name="warm",
    command=warm_command,
    seed=lambda conn: None,
    begun=lambda conn, run: conn.exists(*WARMED) > 0,
    left=warm_left,
    names_left=warm_accounts_for_every_request,
    revoke="-@write",
)

# The loops, for a number of rounds. Fully done: every round's sample stored (history record,
# stats --every --record), every round evaluated and passed (check --every).
ROUNDS = 3
SERIES = "redis.used_memory_bytes"  # one point a sample


def samples_left(conn, run) -> list[str]:
    """A sample is stored once its raw point is there and the 1m aggregate counts it."""
    raw = conn.zcard(LAYOUT.metric(SERIES))
    buckets = conn.scan_iter(LAYOUT.agg(SERIES, "1m", 0).rsplit(":", 1)[0] + ":*")
    counted = sum(json.loads(conn.hget(b, "data"))["count"] for b in buckets)
    return [
        f"{ROUNDS - n} of {ROUNDS} samples not {what}"
        for n, what in ((raw, "stored as points"), (counted, "counted in the 1m aggregates"))
        if n < ROUNDS
    ]


def a_round_names_its_error(run: Run) -> bool:
    # history record puts a failed tick in `error`; stats --every --record keeps `error` for
    # the sample and says why its figures were not stored in `record_error`.
    return any(line.get("error") or line.get("record_error") for line in run.json_lines())


def first_line(conn, run) -> bool:
    return len(run.json_lines()) >= 1


HISTORY_RECORD = Job(
    name="history-record",
    command=lambda tmp, origin: f"history record --every 150ms --rounds {ROUNDS} --json",
    seed=lambda conn: None,
    begun=first_line,
    left=samples_left,
    names_left=a_round_names_its_error,
    revoke="-@write",
)

STATS_WATCH_RECORD = Job(
    name="stats-watch-record",
    command=lambda tmp, origin: f"stats --every 0.15 --record --rounds {ROUNDS} --json",
    seed=lambda conn: None,
    begun=first_line,
    left=samples_left,
    names_left=a_round_names_its_error,
    revoke="-@write",
)


def rounds_left(conn, run) -> list[str]:
    passed = [r for r in run.json_lines() if r["ok"] is True and r["error"] is None]
    return [f"{ROUNDS - len(passed)} of {ROUNDS} rounds not passed"] if len(passed) < ROUNDS else []


CHECK_EVERY = Job(
    name="check-every",
    command=lambda tmp, origin: (
        f"check --every 150ms --rounds {ROUNDS} --sample 50ms --max-memory 100% --json"
    ),
    seed=lambda conn: None,
    begun=first_line,
    left=rounds_left,
    names_left=lambda run: any(not r["ok"] for r in run.json_lines()),
    revoke="-info",
)

JOBS = [
    INVALIDATE_TAG,
    INVALIDATE_PATTERN,
    PRUNE,
    WARM,
    HISTORY_RECORD,
    STATS_WATCH_RECORD,
    CHECK_EVERY,
]


# --- the faults ----------------------------------------------------------------------------------


@dataclass
class Case:
    """What a fault needs: the server, an admin connection, the job, the data of before."""

    server: object
    admin: object
    job: Job
    before_run: dict[bytes, bytes]


def _signal_server(server, sig) -> None:
    os.kill(server._process.pid, sig)


def _roll_back(case: Case) -> None:
    case.server.kill()
    case.server.restart()
    with case.server.client() as admin:
        admin.flushall()
        pipe = admin.pipeline(transaction=False)
        for key, dumped in case.before_run.items():
            pipe.restore(key, 0, dumped)
        pipe.execute()


def _acl_refusal(case: Case) -> None:
    case.admin.execute_command("ACL", "SETUSER", JOB_USER, *case.job.revoke.split())


def _out_of_memory(case: Case) -> None:
    case.admin.config_set("maxmemory-policy", "noeviction")
    case.admin.config_set("maxmemory", "1")


FAULTS: dict[str, Callable[[Case], None]] = {
    "killed": lambda case: case.server.kill(),
    "restarted": lambda case: (case.server.kill(), case.server.restart()),
    "rolled-back": _roll_back,
    "frozen": lambda case: _signal_server(case.server, signal.SIGSTOP),
    "client-killed": lambda case: case.admin.execute_command("CLIENT", "KILL", "USER", JOB_USER),
    "script-flush": lambda case: case.admin.script_flush(),
    "out-of-memory": _out_of_memory,
    "acl-refusal": _acl_refusal,
}


def after_the_run(server, fault: str) -> None:
    """The server made readable again: woken, started, or given its memory back."""
    if fault == "frozen":
        _signal_server(server, signal.SIGCONT)
    elif fault == "killed":
        server.restart()
    elif fault == "out-of-memory":
        with server.client() as admin:
            admin.config_set("maxmemory", "0")


ALL_RIGHTS = "~* &* +@all"
# INFO is in @dangerous, which many ACLs deny: a deleting job must still see a restart (by the
# connections it broke) and go through its selection again.
NO_INFO = f"{ALL_RIGHTS} -info"

CASES = [
    pytest.param(job, fault, ALL_RIGHTS, id=f"{job.name}-{fault}")
    for job in JOBS
    for fault in FAULTS
    if fault != "rolled-back" or job.deletes
] + [
    pytest.param(job, fault, NO_INFO, id=f"{job.name}-{fault}-no-info")
    for job in JOBS
    for fault in ("restarted", "rolled-back")
    if job.deletes
]


# --- the matrix ----------------------------------------------------------------------------------


@pytest.fixture
def matrix_server(make_redis, rights):
    """A durable server; the CLI connects as JOB_USER (with `rights` until a fault takes some)."""
    server = make_redis(
        password=ADMIN_PASSWORD,
        acl_users=[f"{JOB_USER} on >{JOB_PASSWORD} {rights}"],
        extra_args=DURABLE,
    )
    yield server
    if server.running:  # woken, should a failed case have left it frozen, so it stops at once
        _signal_server(server, signal.SIGCONT)


@pytest.fixture
def cli(tmp_path):
    """Starts the CLI; a run a failed case left behind (stopped, maybe) is killed."""
    runs: list[Run] = []

    def start(argv: list[str]) -> Run:
        runs.append(Run(argv, tmp_path))
        return runs[-1]

    yield start
    for run in runs:
        if run.proc.poll() is None:
            run.proc.kill()  # SIGKILL ends a stopped process too
            run.proc.wait()


@pytest.mark.parametrize(("job", "fault", "rights"), CASES)
def test_exit_0_only_when_the_job_was_wholly_done(
    job, fault, rights, matrix_server, cli, request, tmp_path
):
    server = matrix_server
    origin = request.getfixturevalue("origin") if job is WARM else None
    with server.client() as admin:
        seed_outside(admin)
        job.seed(admin)
        before = outside(admin)
        before_run = {key: admin.dump(key) for key in admin.scan_iter(count=1000)}
    url = f"redis://{JOB_USER}:{JOB_PASSWORD}@{server.host}:{server.port}/0"
    run = cli(["--url", url, *CLI_OPTIONS, *shlex.split(job.command(tmp_path, origin))])

    with server.client() as admin:
        wait_until(lambda: job.begun(admin, run), f"{job.name} to begin", run)
        run.pause()
        assert job.left(admin, run), f"{job.name} was done before the fault: pace it slower"
        FAULTS[fault](Case(server, admin, job, before_run))
    run.resume()
    code = run.finish()
    after_the_run(server, fault)

    with server.client() as admin:
        left = job.left(admin, run)
        assert outside(admin) == before, f"keys outside the selection changed\n{run.output()}"
    if code == 0:
        assert not left, f"exit 0, yet left: {left}\n{run.output()}"
    else:
        assert run.error_line().startswith("error: "), f"exit {code}, no error line\n{run.output()}"
        assert job.names_left(run), f"exit {code}; what was left is not named\n{run.output()}"
