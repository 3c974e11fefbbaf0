"""`cachectl doctor`: is this Redis fit to hold the cache, and may we run our jobs on it?"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cachectl.errors import RedisError, RedisPermissionError
from cachectl.layout import Layout

if TYPE_CHECKING:
    from cachectl.config import Settings
    from cachectl.store import Store

PROBE_NAME = "__cachectl_doctor_probe__"

# What each cachectl job sends, and a harmless way to ask whether the ACL user may send it:
# every probe touches a key that does not exist (so it changes nothing), inside the cache's
# own prefixes (so key-pattern ACL rules are checked against the real namespace).
# (operation, command, probe-args builder from (entry_key, tag_key, log_key))
PERMISSION_PROBES: list[tuple[str, str, Any]] = [
    ("read", "SCAN", lambda e, t, z: ("SCAN", 0, "MATCH", e, "COUNT", 1)),
    ("read", "TYPE", lambda e, t, z: ("TYPE", e)),
    ("read", "PTTL", lambda e, t, z: ("PTTL", e)),
    ("read", "GET", lambda e, t, z: ("GET", e)),
    ("read", "MEMORY USAGE", lambda e, t, z: ("MEMORY", "USAGE", e)),
    ("read", "SSCAN", lambda e, t, z: ("SSCAN", t, 0, "COUNT", 1)),
    ("read", "INFO", lambda e, t, z: ("INFO", "server")),
    ("warm", "SET", lambda e, t, z: ("SET", e, "x", "XX", "PX", 1)),
    ("warm", "SADD", lambda e, t, z: ("SMOVE", t, t + ":2", "x")),
    ("warm", "EXPIRE", lambda e, t, z: ("PEXPIRE", t, 1)),
    ("warm", "ZADD", lambda e, t, z: ("ZADD", z, "XX", 0, "x")),
    ("invalidate", "UNLINK", lambda e, t, z: ("UNLINK", e)),
    ("invalidate", "SREM", lambda e, t, z: ("SREM", t, "x")),
    ("invalidate", "ZREM", lambda e, t, z: ("ZREM", z, "x")),
    ("invalidate", "RENAME", lambda e, t, z: ("RENAMENX", t, t + ":2")),
]


@dataclass
class Warning_:
    code: str
    message: str
    level: str = "warning"  # "warning" | "info"


@dataclass
class NodeReport:
    address: str
    role: str
    version: str | None = None
    keys: int | None = None
    used_memory_bytes: int | None = None


@dataclass
class DoctorReport:
    settings: list[dict[str, str]]
    reachable: bool = False
    server_version: str | None = None
    mode: str | None = None  # standalone | cluster | replica
    nodes: list[NodeReport] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    keys_total: int | None = None
    used_memory_bytes: int | None = None
    maxmemory_bytes: int | None = None
    maxmemory_policy: str | None = None
    persistence: dict[str, Any] = field(default_factory=dict)
    acl_user: str | None = None
    permissions: dict[str, dict[str, bool]] = field(default_factory=dict)
    warnings: list[Warning_] = field(default_factory=list)
    failure: RedisError | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("failure")
        out["error"] = self.failure.to_dict() if self.failure else None
        return out


def run_doctor(settings: Settings, store: Store) -> DoctorReport:
    report = DoctorReport(
        settings=[
            {"setting": name, "value": value, "source": source}
            for name, value, source in settings.describe()
        ]
    )
    try:
        _inspect_server(settings, store, report)
    except RedisError as err:
        # The settings part of the report is what helps most when Redis cannot be reached.
        report.failure = err
    return report


def _inspect_server(settings: Settings, store: Store, report: DoctorReport) -> None:
    pings = store.ping_latency(5)
    report.reachable = True
    report.latency_ms = {
        "min": round(min(pings) * 1000, 3),
        "median": round(statistics.median(pings) * 1000, 3),
        "max": round(max(pings) * 1000, 3),
    }
    report.acl_user = _whoami(store)
    report.permissions = _permissions(settings, store)
    try:
        report.mode = store.server_mode()
        infos = store.server_info()  # {address: info} for every primary
    except RedisPermissionError as err:
        # An application user is often denied INFO: the rest of the report still helps.
        report.warnings = [Warning_("info_denied", f"server figures unavailable: {err.message}")]
        report.warnings += _warnings(settings, store, report)
        return
    for address, info in infos.items():
        report.nodes.append(
            NodeReport(
                address=address,
                role=str(info.get("role", "master")),
                version=info.get("redis_version"),
                keys=_keys_in(info),
                used_memory_bytes=_int(info.get("used_memory")),
            )
        )
    first = next(iter(infos.values()), {})
    report.server_version = first.get("redis_version")
    report.keys_total = sum(n.keys or 0 for n in report.nodes)
    report.used_memory_bytes = sum(n.used_memory_bytes or 0 for n in report.nodes)
    report.maxmemory_bytes = _int(first.get("maxmemory"))
    report.maxmemory_policy = first.get("maxmemory_policy")
    report.persistence = {
        "rdb_save_configured": bool(_config_get(store, "save")),
        "aof_enabled": str(first.get("aof_enabled", "0")) == "1",
    }
    report.warnings = _warnings(settings, store, report)


def _keys_in(info: dict) -> int:
    total = 0
    for name, value in info.items():
        if name.startswith("db") and isinstance(value, dict):
            total += int(value.get("keys", 0))
    return total


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _config_get(store: Store, name: str) -> str | None:
    try:
        reply = store.execute("CONFIG", "GET", name)
    except RedisError:
        return None  # CONFIG is often denied to application users; not worth a failure
    if isinstance(reply, dict):
        value = reply.get(name) or reply.get(name.encode())
    elif isinstance(reply, (list, tuple)) and len(reply) >= 2:
        value = reply[1]
    else:
        value = None
    return value.decode() if isinstance(value, bytes) else value


def _whoami(store: Store) -> str | None:
    try:
        name = store.execute("ACL", "WHOAMI")
    except RedisError:
        return None
    return name.decode() if isinstance(name, bytes) else name


def _permissions(settings: Settings, store: Store) -> dict[str, dict[str, bool]]:
    layout = Layout(settings.layout)
    entry = layout.entry(PROBE_NAME)
    tag = layout.tag(PROBE_NAME)
    log = layout.entries_log()
    allowed: dict[str, dict[str, bool]] = {}
    for operation, command, build in PERMISSION_PROBES:
        try:
            store.execute(*build(entry, tag, log))
            ok = True
        except RedisPermissionError:
            ok = False
        except RedisError:
            ok = True  # refused for another reason (e.g. WRONGTYPE): the ACL let it through
        allowed.setdefault(operation, {})[command] = ok
    return allowed


def _warnings(settings: Settings, store: Store, report: DoctorReport) -> list[Warning_]:
    out = _memory_warnings(report) if report.maxmemory_policy is not None else []
    policy = report.maxmemory_policy or ""
    if policy.startswith("volatile-") and report.permissions.get("read", {}).get("SCAN"):
        no_ttl = _tag_sets_without_ttl(settings, store)
        if no_ttl:
            out.append(Warning_(
                "volatile_policy_tag_sets_without_ttl",
                f"maxmemory-policy is {policy} but {no_ttl} sampled tag/dependency sets have no TTL: "
                "they are never evicted and keep growing; prune them or use an allkeys-* policy",
            ))
    if report.persistence.get("aof_enabled"):
        out.append(Warning_(
            "aof_enabled", "AOF persistence is on: a cache rarely needs it and pays for it in writes",
            level="info",
        ))
    if report.mode == "replica":
        out.append(Warning_(
            "replica", "connected to a replica: writes (warm, invalidate, prune) will be refused"
        ))
    denied = [c for cmds in report.permissions.values() for c, ok in cmds.items() if not ok]
    if denied:
        user = report.acl_user or "this user"
        out.append(Warning_(
            "acl_denied", f"the ACL user {user!r} may not run: {', '.join(sorted(set(denied)))}"
        ))
    return out


def _memory_warnings(report: DoctorReport) -> list[Warning_]:
    out: list[Warning_] = []
    policy = report.maxmemory_policy or ""
    if not report.maxmemory_bytes:
        if policy == "noeviction":
            out.append(Warning_(
                "no_maxmemory_noeviction",
                "maxmemory is 0 and the policy is noeviction: the cache grows until the machine "
                "runs out of memory; set maxmemory and an allkeys-lru or allkeys-lfu policy",
            ))
        else:
            out.append(Warning_(
                "no_maxmemory",
                f"maxmemory is 0: {policy} never applies and the cache grows without bound",
            ))
    elif policy == "noeviction":
        out.append(Warning_(
            "noeviction",
            "maxmemory-policy is noeviction: when memory is full every cache write fails; "
            "a cache wants allkeys-lru or allkeys-lfu",
        ))
    return out


def _tag_sets_without_ttl(settings: Settings, store: Store, sample: int = 200) -> int:
    layout = Layout(settings.layout)
    keys: list[bytes] = []
    for pattern in (layout.tag_pattern(), layout.dependency_pattern()):
        for key in store.scan(match=pattern, type="set"):
            keys.append(key)
            if len(keys) >= sample:
                break
    if not keys:
        return 0
    return sum(1 for ttl in store.ttls(keys) if ttl == -1)
