"""Real redis-server processes for the tests that need them, started on free ports by us.

Servers are session-scoped (a cluster takes about two seconds to come up); the function
fixtures hand each test a flushed one. A test never touches a Redis it did not start.
Without redis-server on PATH, tests that need it fail: a skipped integration suite in CI
looks green and proves nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from cachectl.devserver import (
    RedisCluster,
    RedisServer,
    TLSFiles,
    find_redis_server,
    make_tls_files,
)
from tests.origin import origin, origin_server  # noqa: F401 -- the local HTTP origin fixtures

ACL_ADMIN_PASSWORD = "s3cret-pass"
ACL_USERS = {
    "limited": ("limited-pass", "~* &* +@all -unlink -del -flushall -flushdb"),
    "reader": ("reader-pass", "~* +@read +@connection +info +scan"),
    "noinfo": ("noinfo-pass", "~* &* +@all -info"),
}

_MARKERS_BY_FIXTURE = {
    "redis_cluster": "cluster",
    "cluster_url": "cluster",
    "tls_redis": "tls",
}


# What a developer's shell or a CI job may set that would change what cachectl connects to or
# reads: the tests name their servers and files themselves, so none of it may leak in.
_OUTSIDE_SETTINGS = ("REDIS_URL", "NO_COLOR", "FORCE_COLOR", "DEMO_API_URL")


@pytest.fixture(scope="session", autouse=True)
def _shielded_from_the_environment(tmp_path_factory):
    """No CACHECTL_* or REDIS_URL from the environment, and an empty user config folder (no
    ~/.config/cachectl/config.yaml). A cachectl.yaml in the working directory would be read
    too: the session refuses to start with one there."""
    from pathlib import Path

    if Path("cachectl.yaml").is_file():
        pytest.exit(
            "a cachectl.yaml in the working directory would be read by the tests' "
            "commands: run pytest from elsewhere or move it",
            returncode=4,
        )
    saved = {
        k: v
        for k, v in os.environ.items()
        if k.startswith("CACHECTL_") or k in _OUTSIDE_SETTINGS or k == "XDG_CONFIG_HOME"
    }
    for name in saved:
        del os.environ[name]
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))
    try:
        yield
    finally:
        os.environ.pop("XDG_CONFIG_HOME", None)
        os.environ.update(saved)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "cluster: needs a three-primary Redis Cluster of real redis-server processes"
    )
    config.addinivalue_line("markers", "tls: needs a TLS-enabled redis-server")


def pytest_collection_modifyitems(items):
    # `-m "not cluster"` then works without every test repeating the marker its fixture implies.
    for item in items:
        for fixture, marker in _MARKERS_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def _require_redis_server() -> None:
    if find_redis_server() is None:
        pytest.fail(
            "redis-server not found on PATH: install it (apt-get install redis-server)",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def redis_server():
    _require_redis_server()
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> str:
    with redis_server.client() as conn:
        conn.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster():
    _require_redis_server()
    with RedisCluster(3) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster) -> str:
    redis_cluster.flushall()
    return redis_cluster.url


@dataclass
class TLSRedis:
    server: RedisServer
    files: TLSFiles

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory):
    _require_redis_server()
    files = make_tls_files(tmp_path_factory.mktemp("tls"))
    with RedisServer(tls=files) as server:
        yield TLSRedis(server, files)


@dataclass
class ACLRedis:
    """A server whose default user needs ACL_ADMIN_PASSWORD, with the users of ACL_USERS."""

    server: RedisServer

    def url_for(self, user: str, password: str) -> str:
        auth = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return f"redis://{auth}@{self.server.host}:{self.server.port}/0"

    @property
    def admin_url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def acl_redis():
    _require_redis_server()
    users = [f"{name} on >{password} {rules}" for name, (password, rules) in ACL_USERS.items()]
    with RedisServer(password=ACL_ADMIN_PASSWORD, acl_users=users) as server:
        yield ACLRedis(server)


@pytest.fixture
def acl_url(acl_redis) -> str:
    """The admin URL of `acl_redis` after FLUSHALL; ask for `acl_redis` too for `url_for`."""
    with acl_redis.server.client() as conn:
        conn.flushall()
    return acl_redis.admin_url


@pytest.fixture
def make_redis():
    """Start an extra RedisServer(**options) for this test alone (kill and restart freely)."""
    _require_redis_server()
    servers: list[RedisServer] = []

    def start(**options) -> RedisServer:
        server = RedisServer(**options)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
