"""The demo's in-process Redis, for machines without a `redis-server`: fakeredis's TCP server
on 127.0.0.1 and a free port, in a thread of the demo's own process.

fakeredis answers the data commands but not the server's introspection, which cachectl reads:
INFO (cluster detection, `stats`, `invalidate`), MEMORY USAGE (`keys`) and OBJECT. This module
adds those three to the fake, for this process only, with figures that are estimates (memory from
the stored bytes, no keyspace hit counters). Every figure of the cache itself (entries, tags,
counters, logs) is exact. It needs `pip install 'cachectl[demo]'` (fakeredis, and lupa for the
server-side scripts; without lupa, `keys` pages without them and the library's stampede locks
expire instead of being released).
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from typing import TYPE_CHECKING

from cachectl.errors import RedisError

if TYPE_CHECKING:
    from typing_extensions import Self

HOST = "127.0.0.1"
SERVER_VERSION = (7, 2, 0)
STOP_TIMEOUT_SECONDS = 10.0
_OVERHEAD_BYTES = 56  # per key, roughly what Redis spends besides the key and value bytes
_MEMBER_OVERHEAD_BYTES = 16

_patched = False
_patch_lock = threading.Lock()


class InProcessServerError(RedisError):
    code = "redis.devserver"


def fakeredis_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("fakeredis")
    except Exception:  # noqa: BLE001 -- not installed, or no metadata: either way unusable
        return None


def available() -> bool:
    """Whether the installed fakeredis has the TCP server this needs."""
    try:
        import fakeredis
    except ImportError:
        return False
    return hasattr(fakeredis, "TcpFakeServer")


class InProcessRedis:
    """fakeredis's TcpFakeServer, served from a daemon thread. A context manager."""

    kind = "in-process"

    def __init__(self) -> None:
        self.host = HOST
        self.port: int | None = None
        self._server = None
        self._thread: threading.Thread | None = None
        self.started = time.time()
        self.run_id = secrets.token_hex(20)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> InProcessRedis:
        if not available():
            raise InProcessServerError(
                "no redis-server on PATH, and no fakeredis with a TCP server for the in-process "
                "fallback",
                hint="install redis-server (apt-get install redis-server), or "
                "pip install 'cachectl[demo]'",
            )
        from fakeredis import TcpFakeServer

        add_introspection_commands()
        try:
            self._server = TcpFakeServer(
                (HOST, 0), server_type="redis", server_version=SERVER_VERSION[:2]
            )
        except TypeError:  # an older fakeredis without those arguments
            self._server = TcpFakeServer((HOST, 0))
        self._server.daemon_threads = True  # a client that never hangs up must not block stop()
        self.port = self._server.server_address[1]
        _SERVERS[id(self._server.fake_server)] = self
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="cachectl-demo-redis",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the listening socket; the data goes with it."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.shutdown()  # returns once serve_forever has stopped
        server.server_close()
        _SERVERS.pop(id(server.fake_server), None)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT_SECONDS)
            self._thread = None


_SERVERS: dict[int, InProcessRedis] = {}


# ---- the commands fakeredis lacks --------------------------------------------------------------


def add_introspection_commands() -> None:
    """Teaches fakeredis's command table INFO, MEMORY USAGE and OBJECT ENCODING/IDLETIME/FREQ.

    fakeredis finds a command's method by the name its `command` decorator registers; these are
    added to its FakeSocket class under names of their own, so nothing of fakeredis is replaced.
    """
    global _patched
    with _patch_lock:
        if _patched:
            return
        try:
            from fakeredis._commands import SUPPORTED_COMMANDS, command
            from fakeredis._socket._fakesocket import FakeSocket
        except ImportError as exc:
            raise InProcessServerError(
                f"this fakeredis ({fakeredis_version()}) cannot serve the demo: {exc}",
                hint="install redis-server (apt-get install redis-server)",
            ) from None
        methods = {
            "cachectl_demo_info": (_info, {"name": "INFO", "fixed": (), "repeat": (bytes,)}),
            "cachectl_demo_memory_usage": (
                _memory_usage, {"name": "MEMORY USAGE", "fixed": (bytes,), "repeat": (bytes,)}
            ),
            "cachectl_demo_object_encoding": (
                _object_encoding, {"name": "OBJECT ENCODING", "fixed": (bytes,)}
            ),
            "cachectl_demo_object_idletime": (
                _object_idletime, {"name": "OBJECT IDLETIME", "fixed": (bytes,)}
            ),
            "cachectl_demo_object_freq": (_object_freq, {"name": "OBJECT FREQ", "fixed": (bytes,)}),
        }  # fmt: skip
        for attribute, (function, spec) in methods.items():
            if spec["name"].lower() in SUPPORTED_COMMANDS:
                continue  # a newer fakeredis has it: keep its own
            function.__name__ = attribute
            setattr(FakeSocket, attribute, command(**spec)(function))
        _patched = True


def _simple_error(message: str) -> Exception:
    from fakeredis._helpers import SimpleError

    return SimpleError(message)


def _item(sock, key: bytes):
    db = sock._db
    return db.get(key)


def _approx_bytes(key: bytes, value) -> int:
    size = _OVERHEAD_BYTES + len(key)
    if isinstance(value, (bytes, bytearray)):
        return size + len(value)
    items = getattr(value, "items", None)
    members = items() if callable(items) else value
    try:
        for member in members:
            parts = member if isinstance(member, tuple) else (member,)
            size += _MEMBER_OVERHEAD_BYTES + sum(
                len(p) if isinstance(p, (bytes, str)) else 8 for p in parts
            )
    except TypeError:
        size += _MEMBER_OVERHEAD_BYTES
    return size


def _memory_usage(self, key: bytes, *options: bytes):
    if options and (len(options) != 2 or options[0].upper() != b"SAMPLES"):
        raise _simple_error("ERR syntax error")
    item = _item(self, key)
    return None if item is None else _approx_bytes(key, item.value)


def _object_encoding(self, key: bytes):
    item = _item(self, key)
    if item is None:
        return None
    value = item.value
    if isinstance(value, (bytes, bytearray)):
        return (
            b"int"
            if value.lstrip(b"-").isdigit() and len(value) < 20
            else (b"embstr" if len(value) <= 44 else b"raw")
        )
    return b"hashtable"


def _object_idletime(self, key: bytes):
    return None if _item(self, key) is None else 0


def _object_freq(self, key: bytes):
    raise _simple_error(
        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
        "that when switching between policies at runtime LRU and LFU data will take some time "
        "to adjust."
    )


def _info(self, *sections: bytes):
    server = self._server
    owner = _SERVERS.get(id(server))
    now = time.time()
    started = owner.started if owner else now
    used = 0
    keyspace = []
    for index, db in sorted(server.dbs.items()):
        keys = expires = 0
        for key in list(db):
            if key not in db:
                continue
            item = db[key]
            keys += 1
            expires += item.expireat is not None
            used += _approx_bytes(key, item.value)
        if keys:
            keyspace.append((f"db{index}", f"keys={keys},expires={expires},avg_ttl=0"))
    used += 900_000  # an empty Redis uses about this much
    try:
        system_memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        system_memory = 0
    version = ".".join(str(part) for part in SERVER_VERSION)
    all_sections = {
        "server": [
            ("redis_version", version),
            ("redis_mode", "standalone"),
            ("os", "in-process (fakeredis, for cachectl demo)"),
            ("process_id", os.getpid()),
            ("run_id", owner.run_id if owner else "0" * 40),
            ("tcp_port", owner.port if owner else 0),
            ("uptime_in_seconds", int(now - started)),
            ("uptime_in_days", int((now - started) // 86400)),
        ],
        "clients": [("connected_clients", 1), ("blocked_clients", 0)],
        "memory": [
            ("used_memory", used),
            ("used_memory_rss", used),
            ("used_memory_peak", used),
            ("total_system_memory", system_memory),
            ("maxmemory", 0),
            ("maxmemory_policy", "noeviction"),
            ("mem_fragmentation_ratio", "1.00"),
        ],
        "persistence": [("loading", 0), ("aof_enabled", 0), ("rdb_changes_since_last_save", 0)],
        "stats": [
            ("total_connections_received", 0),
            ("total_commands_processed", 0),
            ("instantaneous_ops_per_sec", 0),
            ("expired_keys", 0),
            ("evicted_keys", 0),
            ("keyspace_hits", 0),
            ("keyspace_misses", 0),
        ],
        "replication": [("role", "master"), ("connected_slaves", 0)],
        "cluster": [("cluster_enabled", 0)],
        "keyspace": keyspace,
    }
    wanted = {s.decode("utf-8", "replace").lower() for s in sections}
    if not wanted or wanted & {"default", "all", "everything"}:
        wanted = set(all_sections)
    lines = []
    for name, fields in all_sections.items():
        if name in wanted:
            lines.append(f"# {name.capitalize()}")
            lines += [f"{field}:{value}" for field, value in fields]
            lines.append("")
    return "\r\n".join(lines).encode()
