"""The docs' examples run: every block titled `Tested...` in docs/ and the README runs against a
throwaway server (and the sample shop API for warm manifests), in order, page by page; every
other shell or Python block says why it is not run (tests/docs/blocks.py).

`redis://localhost:6379/0` in a block stands for the test server's URL; shell blocks also get
CACHECTL_URL set to it, API_URL to the sample API (the recipes' manifests read `${API_URL}`),
API_TOKEN to a made-up token, and a config file (CACHECTL_CONFIG) that defines the `prod`
profile the pages name. What a block runs is what the page shows: nothing else is added.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cachectl.demo.api import DemoAPI
from tests.docs.blocks import Block, blocks, pages

# The examples show how to use cachectl; how Redis and Valkey differ is tested elsewhere. Against
# the first --server kind only: both would double the docs' minutes for no new failure.
pytestmark = pytest.mark.one_server_kind

PLACEHOLDER_URL = "redis://localhost:6379/0"
FORKSERVER = str(Path(__file__).with_name("forkserver.py"))
TESTED_PAGES = [page for page in pages() if any(b.tested for b in blocks(page))]
# Every page that shows a task step by step runs at least one of its examples.
MUST_RUN = ["docs/getting-started.md"] + [
    page for page in pages() if page.startswith("docs/recipes/") and page != "docs/recipes/index.md"
]


def test_every_recipe_and_getting_started_has_a_tested_example():
    assert set(MUST_RUN) <= set(TESTED_PAGES), sorted(set(MUST_RUN) - set(TESTED_PAGES))


def test_a_tested_block_is_shell_or_python():
    for page in pages():
        for block in blocks(page):
            if block.title.startswith("Tested"):
                assert block.tested, f"{block}: only sh, bash and python blocks can be run"


def _written_and_named(block: Block, page_blocks: list[Block]) -> bool:
    """A file-named example that a tested block of its page runs (by name, or as a module)."""
    if not block.file_name:
        return False
    stem = Path(block.file_name).stem
    names = re.compile(rf"(?<![\w.]){re.escape(block.file_name)}\b|\bimport {re.escape(stem)}\b")
    return any(b.tested and names.search(b.text) for b in page_blocks)


def _unaccounted(read=blocks) -> list[str]:
    left = []
    for page in pages():
        page_blocks = read(page)
        for block in page_blocks:
            if not block.example or block.tested or block.not_run_reason:
                continue
            if not _written_and_named(block, page_blocks):
                left.append(str(block))
    return left


def test_every_example_runs_or_says_why_not():
    """A shell or Python example that is neither run nor marked `Not run: <why>` fails here:
    an example nobody runs is one that can stop working unseen."""
    assert _unaccounted() == [], (
        "title each block `Tested: ...` (it then runs in tests/docs/test_examples.py) or "
        "`Not run: <why>` (a README block: a first line `# Not run: <why>`)"
    )


def test_an_unmarked_example_is_caught():
    """The check above can fail: an example with neither mark is reported by its place."""

    def with_a_bare_example(page):
        found = blocks(page)
        if page == "README.md":
            found.append(Block(page, 999, "sh", "", "cachectl keys\n"))
            found.append(Block(page, 1000, "sh", "", "# Not run\ncachectl keys\n"))
            found.append(Block(page, 1001, "python", "app.py", "import flask\n"))
            found.append(Block(page, 1002, "console", "Not run: a made-up reason", "$ ls\n"))
            found.append(Block(page, 1003, "sh", "", "# Not run: a made-up reason\nls\n"))
        return found

    assert _unaccounted() == []
    assert _unaccounted(with_a_bare_example) == [
        "README.md:999 (sh)",
        "README.md:1000 (sh)",  # no reason given
        "README.md:1001 (app.py)",  # written to a file no tested block runs
    ]


SHELL = {"sh", "bash", "shell", "console"}
# Where the cachectl command of a shell line ends: a pipe, a redirection, the next command.
_COMMAND_END = re.compile(r"^(\||\|\||&&|;|&|\)|[0-9]?>.*|<.*)$")


def cachectl_commands(block: Block) -> list[list[str]]:
    """The cachectl command lines of a shell block: the words after `cachectl`, up to a pipe,
    a redirection or the next command (`\\` continuations joined, `$ ` prompts dropped)."""
    import shlex

    commands = []
    for line in block.text.replace("\\\n", " ").splitlines():
        line = line.removeprefix("$ ")
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue  # not a shell line (a heredoc's body, output shown after a prompt)
        for at, word in enumerate(words):
            if word == "cachectl" or word.endswith(("/cachectl", "=cachectl")):
                args = []
                for arg in words[at + 1 :]:
                    if _COMMAND_END.match(arg):
                        break
                    args.append(arg)
                commands.append(args)
                break
    return commands


def test_the_commands_of_examples_not_run_still_parse():
    """An example shown but not run (it runs until Ctrl-C, needs a TLS server...) can still go
    stale by its options: each of its cachectl lines must parse (the line with --help: an
    unknown option, a bad choice or a missing argument fails before help is shown)."""
    from typer.testing import CliRunner

    from cachectl.cli.app import app

    runner = CliRunner()
    stale = []
    checked = 0
    for page in pages():
        for block in blocks(page):
            if block.language not in SHELL or block.tested:
                continue
            for args in cachectl_commands(block):
                checked += 1
                result = runner.invoke(app, [*args, "--help"])
                if result.exit_code != 0:
                    error = (result.stderr or result.stdout).strip().splitlines()
                    stale.append(f"{block}: cachectl {' '.join(args)}: {error[-1:]}")
    assert checked > 50  # the pages' untested examples were found
    assert stale == []


def test_a_stale_option_in_an_example_not_run_is_caught():
    from typer.testing import CliRunner

    from cachectl.cli.app import app

    block = Block("README.md", 1, "sh", "Not run: an example", "cachectl stats --watch | tee x\n")
    (args,) = cachectl_commands(block)
    assert args == ["stats", "--watch"]
    assert CliRunner().invoke(app, [*args, "--help"]).exit_code != 0


@pytest.fixture(scope="module")
def cachectl_bin(tmp_path_factory):
    """A folder whose `cachectl` runs each command in a fork of one process that has imported
    cachectl already (tests/docs/forkserver.py): the same main() as the installed script, without
    paying the imports again for each of the blocks' hundred-odd commands."""
    folder = tmp_path_factory.mktemp("docs-bin")
    socket_path = folder / "cachectl.sock"
    server = subprocess.Popen([sys.executable, FORKSERVER, str(socket_path)])
    try:
        deadline = time.monotonic() + 30
        while not socket_path.exists():
            assert server.poll() is None, "tests/docs/forkserver.py did not start"
            assert time.monotonic() < deadline, "tests/docs/forkserver.py did not listen"
            time.sleep(0.02)
        script = folder / "cachectl"
        script.write_text(
            f"#!{sys.executable} -S\n"
            "import sys\n"
            f"sys.path.insert(0, {str(Path(FORKSERVER).parent)!r})\n"
            "import forkserver\n"
            f"sys.exit(forkserver.client({str(socket_path)!r}, sys.argv[1:]))\n"
        )
        script.chmod(0o755)
        yield str(folder)
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def sample_api():
    with DemoAPI(latency=0) as api:
        yield api


def _server(block: Block, request, redis_url: str) -> tuple[str, dict[str, str]]:
    """The URL a block runs against, and any settings that server needs."""
    if block.server == "cluster":
        return request.getfixturevalue("cluster_url"), {}
    if block.server == "tls":
        tls = request.getfixturevalue("tls_redis")
        return tls.url, {"CACHECTL_TLS_CA_FILE": tls.files.ca_file}
    if block.server == "acl":
        request.getfixturevalue("acl_url")
        acl = request.getfixturevalue("acl_redis")
        return acl.url_for("reader", "reader-pass"), {"ADMIN_URL": acl.admin_url}
    if block.server == "replica":
        primary_url = redis_url
        make_redis = request.getfixturevalue("make_redis")
        host, port = primary_url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
        replica = make_redis(extra_args=["--replicaof", host, port])
        return replica.url, {"PRIMARY_URL": primary_url}
    if block.server == "sentinel":
        return request.getfixturevalue("sentinel_url"), {}
    return redis_url, {}


@pytest.mark.parametrize("page", TESTED_PAGES)
def test_the_tested_examples_of_a_page_run(
    page, request, redis_url, sample_api, cachectl_bin, tmp_path, tmp_path_factory
):
    page_blocks = blocks(page)
    for block in page_blocks:
        if block.file_name:
            target = tmp_path / block.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text.replace(PLACEHOLDER_URL, redis_url))
    # The `prod` profile the pages name (`cachectl --profile prod ...`): CACHECTL_URL, set
    # below, says which server it is.
    config = tmp_path_factory.mktemp("config") / "cachectl.yaml"
    config.write_text("profiles:\n  prod: {}\n")
    bin_dir = os.path.dirname(sys.executable)
    for block in (b for b in page_blocks if b.tested):
        url, extra = _server(block, request, redis_url)
        env = {
            **os.environ,
            "CACHECTL_URL": url,
            "CACHECTL_CONFIG": str(config),
            "API_URL": sample_api.url,
            "API_TOKEN": "docs-example-token",
            "PATH": os.pathsep.join([cachectl_bin, bin_dir, os.environ.get("PATH", "")]),
            "NO_COLOR": "1",
            "COLUMNS": "160",
            **extra,
        }
        env.pop("REDIS_URL", None)
        text = block.text.replace(PLACEHOLDER_URL, url)
        if block.language in ("python", "py"):
            argv = [sys.executable, "-c", text]
        else:
            argv = ["bash", "-euo", "pipefail", "-c", text]
        proc = subprocess.run(
            argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180, check=False
        )
        assert proc.returncode == 0, (
            f"{block} exited {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}"
            f"\n--- stderr\n{proc.stderr[-3000:]}"
        )
