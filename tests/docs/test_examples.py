"""The docs' examples run: every block titled `Tested...` in docs/ runs against a throwaway
server (and the sample shop API for warm manifests), in order, page by page.

`redis://localhost:6379/0` in a block stands for the test server's URL; shell blocks also get
CACHECTL_URL set to it, and API_URL to the sample API (the recipes' manifests read
`${API_URL}`). What a block runs is what the page shows: nothing else is added.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cachectl.demo.api import DemoAPI
from tests.docs.blocks import Block, blocks, pages

PLACEHOLDER_URL = "redis://localhost:6379/0"
TESTED_PAGES = [page for page in pages() if any(b.tested for b in blocks(page))]
# Every page that shows a task step by step runs at least one of its examples.
MUST_RUN = ["getting-started.md"] + [
    page for page in pages() if page.startswith("recipes/") and page != "recipes/index.md"
]


def test_every_recipe_and_getting_started_has_a_tested_example():
    assert set(MUST_RUN) <= set(TESTED_PAGES), sorted(set(MUST_RUN) - set(TESTED_PAGES))


def test_a_tested_block_is_shell_or_python():
    for page in pages():
        for block in blocks(page):
            if block.title.startswith("Tested"):
                assert block.tested, f"{block}: only sh, bash and python blocks can be run"


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
def test_the_tested_examples_of_a_page_run(page, request, redis_url, sample_api, tmp_path):
    page_blocks = blocks(page)
    for block in page_blocks:
        if block.file_name:
            target = tmp_path / block.file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
    bin_dir = os.path.dirname(sys.executable)
    for block in (b for b in page_blocks if b.tested):
        url, extra = _server(block, request, redis_url)
        env = {
            **os.environ,
            "CACHECTL_URL": url,
            "API_URL": sample_api.url,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
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
