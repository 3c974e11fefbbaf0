"""Shell completion end to end: the real `cachectl` in a subprocess, asked as the scripts typer
installs ask it (`_CACHECTL_COMPLETE=complete_bash` with COMP_WORDS and COMP_CWORD;
`complete_zsh` and `complete_fish` with _TYPER_COMPLETE_ARGS), against a real server, a server
that never answers, and a port nobody listens on."""

from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import redis

from cachectl.layout import Layout

LAYOUT = Layout()
# Far above any completion's run on a loaded machine, far below what the configured timeouts
# below (30 s, 3 retries) would take if the completer used them.
PATIENCE = 20


# A lookup's bound in the tests that expect an answer: a loaded machine must not make a healthy
# server look dead. The tests of a server that does not answer keep the default.
GENEROUS = "5"


def complete(
    line: str,
    shell: str = "bash",
    cwd: Path | None = None,
    env: dict | None = None,
    budget: str | None = GENEROUS,
) -> subprocess.CompletedProcess:
    """Asks `cachectl` for the completions of `line` (the cursor at its end) as `shell`'s script
    does, with CACHECTL_COMPLETION_TIMEOUT=`budget` (None: unset, the default); stdout is parsed
    into `.candidates`."""
    run_env = {**os.environ, **(env or {}), "_CACHECTL_COMPLETE": f"complete_{shell}"}
    if budget is not None:
        run_env["CACHECTL_COMPLETION_TIMEOUT"] = budget
    if shell == "bash":
        words = shlex.split(line)
        run_env["COMP_WORDS"] = line
        run_env["COMP_CWORD"] = str(len(words) if line.endswith(" ") else len(words) - 1)
    else:
        run_env["_TYPER_COMPLETE_ARGS"] = line
        run_env["_TYPER_COMPLETE_FISH_ACTION"] = "get-args"
    proc = subprocess.run(
        [sys.executable, "-m", "cachectl"],
        capture_output=True,
        text=True,
        env=run_env,
        cwd=cwd,
        timeout=PATIENCE,
        check=False,
    )
    proc.candidates = _candidates(shell, proc.stdout)  # type: ignore[attr-defined]
    return proc


def _candidates(shell: str, out: str) -> list[str]:
    if shell == "zsh":
        # _arguments '*: :(("value":"help"\n"value"))', or `_files` for none
        body = out.strip().removeprefix("_arguments '*: :((").removesuffix("))'")
        return [
            _zsh_unescape(m.group(1))
            for m in (re.match(r'"((?:[^"]|"")*)"', line) for line in body.splitlines())
            if m
        ]
    if shell == "fish":
        return [line.split("\t")[0] for line in out.splitlines() if line]
    return [line for line in out.splitlines() if line]


@pytest.fixture
def tagged(redis_url):
    """Tag and dependency sets, a half-finished invalidation's pending set (not a tag), and a
    tag whose name a shell cannot take as one word."""
    with redis.Redis.from_url(redis_url) as client:
        entry = LAYOUT.entry("users", {"id": 1})
        client.set(entry, "{}")
        for tag in ("users", "user_profile", "orders", "with space"):
            client.sadd(LAYOUT.tag(tag), entry)
        client.sadd(LAYOUT.dependency("user_1"), entry)
        client.sadd(LAYOUT.pending_set(LAYOUT.tag("orders")), entry)
    return redis_url


@pytest.fixture
def silent_server():
    """A port that accepts connections and never answers (the connections are held open)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0", held
    finally:
        listener.close()
        for conn in held:
            conn.close()


def _zsh_unescape(text: str) -> str:
    return (
        text.replace('""', '"').replace("''", "'").replace("\\$", "$").replace("\\`", "`")
    ).replace("\\\\:", ":")


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_command_and_option_names(shell):
    assert complete("cachectl ke", shell).candidates == ["keys"]
    options = complete("cachectl keys --t", shell).candidates
    assert {"--tag", "--type"} <= set(options)
    assert "--show-completion" in complete("cachectl --sh", shell).candidates


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_profile_names_from_the_config_file(tmp_path, shell):
    (tmp_path / "cachectl.yaml").write_text(
        "url: redis://127.0.0.1:1/0\nprofiles:\n  prod: {timeout: 30}\n  staging: {}\n"
    )
    (tmp_path / "other.yaml").write_text("profiles:\n  eu: {}\n")
    assert complete("cachectl --profile ", shell, cwd=tmp_path).candidates == ["prod", "staging"]
    assert complete("cachectl -p st", shell, cwd=tmp_path).candidates == ["staging"]
    assert complete("cachectl -c other.yaml -p ", shell, cwd=tmp_path).candidates == ["eu"]


def test_no_config_file_or_a_broken_one_offers_no_profile_and_says_nothing(tmp_path):
    assert complete("cachectl --profile ", cwd=tmp_path).candidates == []
    (tmp_path / "cachectl.yaml").write_text("profiles: [unclosed\n")
    proc = complete("cachectl --profile ", cwd=tmp_path)
    assert (proc.returncode, proc.candidates, proc.stderr) == (0, [], "")


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_tag_names_from_redis(tagged, shell):
    proc = complete(f"cachectl --url {tagged} keys --tag ", shell)
    # not the pending set, not the name with a space
    assert proc.candidates == ["orders", "user_profile", "users"], proc.stderr
    assert complete(f"cachectl --url {tagged} invalidate --tag user", shell).candidates == [
        "user_profile",
        "users",
    ]


def test_the_word_typed_is_matched_literally_not_as_a_glob(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        for tag in ("star*ed", "starred", "st?r"):
            client.sadd(LAYOUT.tag(tag), "x")
    assert complete(f"cachectl --url {redis_url} keys --tag star*").candidates == ["star*ed"]
    assert complete(f"cachectl --url {redis_url} keys --tag st?").candidates == ["st?r"]


def test_dependency_names_and_tags_show(tagged):
    assert complete(f"cachectl --url {tagged} keys --depends-on ").candidates == ["user_1"]
    assert complete(f"cachectl --url {tagged} invalidate --depends-on u").candidates == ["user_1"]
    assert complete(f"cachectl --url {tagged} tags show o").candidates == ["orders"]
    assert complete(f"cachectl --url {tagged} tags show -d ").candidates == ["user_1"]


def test_the_tags_group_offers_show_and_then_the_names(tagged):
    assert complete(f"cachectl --url {tagged} tags ").candidates == [
        "show",
        "orders",
        "user_profile",
        "users",
    ]
    assert complete(f"cachectl --url {tagged} tags s").candidates == ["show"]
    assert complete(f"cachectl --url {tagged} tags -d ").candidates == ["show", "user_1"]


def test_tag_names_from_every_primary_of_a_cluster(cluster_url):
    client = redis.RedisCluster.from_url(cluster_url)
    try:
        names = [f"t{i}" for i in range(30)]  # spread over the three primaries' slots
        for name in names:
            client.sadd(LAYOUT.tag(name), "x")
    finally:
        client.close()
    proc = complete(f"cachectl --url {cluster_url} keys --tag t")
    assert proc.candidates == sorted(names), proc.stderr


def test_the_url_may_come_from_the_config_file_or_the_environment(tagged, tmp_path):
    (tmp_path / "cachectl.yaml").write_text(f"profiles:\n  here: {{url: '{tagged}'}}\n")
    assert complete("cachectl -p here keys --tag us", cwd=tmp_path).candidates == [
        "user_profile",
        "users",
    ]
    env = {"CACHECTL_URL": tagged}
    assert complete("cachectl keys --tag or", env=env).candidates == ["orders"]


def _command_flags(client: redis.Redis, name: str) -> list[bytes]:
    """COMMAND INFO's flags of a command (a subcommand's container's), read raw: redis-py's
    parsing of the reply differs between its releases."""
    conn = redis.Connection(**client.connection_pool.connection_kwargs)
    try:
        conn.send_command("COMMAND", "INFO", name.split("|")[0])
        [info] = conn.read_response()
    finally:
        conn.disconnect()
    return list(info[2]) if info else []


def test_completing_sends_redis_nothing_that_writes(tagged):
    with redis.Redis.from_url(tagged) as client:
        client.config_resetstat()
        assert complete(f"cachectl --url {tagged} keys --tag ").candidates
        used = {name.removeprefix("cmdstat_") for name in client.info("commandstats")}
        writes = {name for name in used if b"write" in _command_flags(client, name)}
    assert "scan" in used, used
    assert writes == set(), used


def test_a_server_that_never_answers_gives_nothing_within_the_completion_bound(
    silent_server, tmp_path
):
    """The user's own timeouts (30 s, 3 retries) would hold the shell for minutes; completion
    uses its own, so it returns, empty, long before the test's patience runs out."""
    url, held = silent_server
    (tmp_path / "cachectl.yaml").write_text(
        f"url: '{url}'\nconnect_timeout: 30\ntimeout: 30\nretries: 3\n"
    )
    proc = complete("cachectl keys --tag ", cwd=tmp_path, budget=None)
    assert (proc.returncode, proc.candidates, proc.stderr) == (0, [], "")
    assert held, "the completer never connected: the test shows nothing"
    proc = complete(f"cachectl --url {url} --timeout 30 tags show -d ", budget=None)
    assert (proc.returncode, proc.candidates, proc.stderr) == (0, [], "")


def test_a_dead_server_or_no_connection_configured_gives_nothing_and_says_nothing(tmp_path):
    for line in (
        f"cachectl --url {closed_port_url()} keys --tag ",
        "cachectl keys --tag ",  # no URL anywhere: not even a try at localhost:6379
        "cachectl --url nonsense:// keys --tag ",
    ):
        proc = complete(line, cwd=tmp_path, budget=None)
        assert (proc.returncode, proc.candidates, proc.stderr) == (0, [], ""), line


def test_no_secret_and_no_traceback_when_the_lookup_fails(silent_server):
    url, _ = silent_server
    secret_url = url.replace("redis://", "redis://alice:s3cr3t-pw@")
    for target in (secret_url, closed_port_url().replace("redis://", "redis://:s3cr3t-pw@")):
        proc = complete(f"cachectl --traceback --url {target} keys --tag ", budget=None)
        output = proc.stdout + proc.stderr
        assert "s3cr3t-pw" not in output
        assert "Traceback" not in output
        assert proc.candidates == []


def test_endpoint_names_of_the_manifests_on_the_line(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\nendpoints:\n"
        "  - {name: products, url: 'http://x/p', ttl: 60}\n"
        "  - {name: profile, url: 'http://x/q', ttl: 60}\n"
        "  - {name: orders, url: 'http://x/o', ttl: 60}\n"
    )
    assert complete("cachectl warm m.yaml --endpoint pro", cwd=tmp_path).candidates == [
        "products",
        "profile",
    ]
    assert complete("cachectl manifest expand m.yaml --endpoint ", cwd=tmp_path).candidates == [
        "orders",
        "products",
        "profile",
    ]
    proc = complete("cachectl warm missing.yaml --endpoint ", cwd=tmp_path)
    assert (proc.returncode, proc.candidates, proc.stderr) == (0, [], "")


def test_version_is_not_an_answer_while_completing():
    proc = complete("cachectl --version ")
    assert proc.returncode == 0
    assert not any("cachectl " in c for c in proc.candidates), proc.stdout
    assert "keys" in proc.candidates


def test_completing_a_command_name_loads_nothing_heavy():
    """`cachectl <TAB>` costs what `cachectl --help` does: no redis, yaml or rich, no command
    module."""
    code = (
        "import sys\n"
        "from cachectl.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('redis', 'yaml', 'aiohttp', 'rich') or m.startswith('cachectl.cli.keys'))\n"
        "sys.stderr.write('\\nHEAVY=' + repr(heavy))\n"
    )
    env = {
        **os.environ,
        "_CACHECTL_COMPLETE": "complete_bash",
        "COMP_WORDS": "cachectl k",
        "COMP_CWORD": "1",
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert proc.stdout.split() == ["keys"]
    assert ast.literal_eval(proc.stderr.rsplit("HEAVY=", 1)[1]) == []


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_bash_script_from_show_completion_completes_in_bash(tagged):
    """What a user installs: `cachectl --show-completion` run from bash prints the script;
    sourced, its function fills COMPREPLY by asking `cachectl`."""
    bin_dir = str(Path(sys.executable).parent)
    script = (
        "source <(cachectl --show-completion) || exit 9\n"
        f"COMP_WORDS=(cachectl --url {tagged} keys --tag us); COMP_CWORD=5\n"
        "_cachectl_completion cachectl\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "CACHECTL_COMPLETION_TIMEOUT": GENEROUS,
    }
    if not Path(bin_dir, "cachectl").exists():
        pytest.skip("no cachectl script next to the interpreter")
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        timeout=PATIENCE,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["user_profile", "users"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_install_completion_from_bash_writes_the_script_and_hooks_it(tmp_path):
    """Run from bash (not exec'd by it: `&& echo ok` keeps bash the parent typer detects)."""
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = subprocess.run(
        [
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            f"'{sys.executable}' -m cachectl --install-completion && echo ok",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=PATIENCE,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    script = tmp_path / ".bash_completions" / "cachectl.sh"
    assert "_CACHECTL_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


@pytest.mark.parametrize(
    ("shell", "line"),
    [
        ("bash", "complete -o default -F _cachectl_completion cachectl"),
        ("zsh", "compdef _cachectl_completion cachectl"),
        ("fish", "complete --command cachectl"),
    ],
)
def test_each_shells_script(shell, line):
    """The scripts `--install-completion` writes, printed for a shell named outright."""
    env = {**os.environ, "_CACHECTL_COMPLETE": f"source_{shell}"}
    proc = subprocess.run(
        [sys.executable, "-m", "cachectl"], capture_output=True, text=True, env=env, check=True
    )
    assert line in proc.stdout
    assert f"_CACHECTL_COMPLETE=complete_{shell}" in proc.stdout


class _Root:
    def __init__(self, **params):
        self.params = params

    def find_root(self):
        return self


def test_the_lookup_uses_completions_timeouts_and_only_a_configured_url(tmp_path, monkeypatch):
    from cachectl.cli import completion

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CACHECTL_COMPLETION_TIMEOUT", raising=False)
    assert completion._configured_settings(_Root()) is None  # the default URL: no lookup
    (tmp_path / "cachectl.yaml").write_text(
        "url: redis://127.0.0.1:1/0\nconnect_timeout: 30\ntimeout: 30\nretries: 3\n"
    )
    settings = completion._configured_settings(_Root())
    assert settings is not None
    default = completion.DEFAULT_BUDGET_SECONDS
    assert (settings.connect_timeout, settings.timeout, settings.retries) == (default, default, 0)
    flagged = completion._configured_settings(_Root(url="redis://h:2/0", timeout=30.0))
    assert flagged is not None
    assert (flagged.url, flagged.timeout) == ("redis://h:2/0", default)
    assert completion._configured_settings(_Root(url="nonsense://")) is None
    monkeypatch.setenv("CACHECTL_COMPLETION_TIMEOUT", "2")
    assert completion._configured_settings(_Root()).timeout == 2.0


@pytest.mark.parametrize(
    ("raw", "seconds"), [("", 0.15), ("0.5", 0.5), ("0", 0.15), ("nan", 0.15), ("11", 0.15)]
)
def test_the_completion_timeout_variable(raw, seconds):
    from cachectl.cli.completion import lookup_budget

    assert lookup_budget({"CACHECTL_COMPLETION_TIMEOUT": raw}) == seconds
