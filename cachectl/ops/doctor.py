"""`cachectl doctor`: is this Redis fit to hold the cache, and may we run our jobs on it?"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Generator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cachectl.errors import RedisError, RedisPermissionError, RedisUnreachable
from cachectl.layout import Layout

if TYPE_CHECKING:
    from cachectl.config import Settings
    from cachectl.store import Store

PROBE_NAME = "__cachectl_doctor_probe__"
# A SHA1 no script has: EVALSHA of it is refused with NOSCRIPT once the ACL lets it through.
NO_SUCH_SCRIPT = "0" * 40


@dataclass(frozen=True)
class ProbeKeys:
    """Names inside the cache's own prefixes (so key-pattern ACL rules are checked against the
    real namespace) of keys that do not exist."""

    entry: str
    tag: str
    pending: str
    log: str
    access: str
    metric: str
    meta: str
    agg: str
    counters: str
    response_times: str

    @classmethod
    def of(cls, layout: Layout) -> ProbeKeys:
        tag = layout.tag(PROBE_NAME)
        return cls(
            entry=layout.entry(PROBE_NAME),
            tag=tag,
            pending=layout.pending_set(tag),
            log=layout.entries_log(),
            access=layout.access_log(),
            metric=layout.metric(PROBE_NAME),
            meta=layout.meta(PROBE_NAME),
            agg=layout.agg(PROBE_NAME, "1m", 0),
            counters=layout.hits_endpoint(PROBE_NAME)[0],
            response_times=layout.response_times(),
        )


@dataclass(frozen=True)
class Probe:
    """One command a job sends, asked about with the arguments it is sent with.

    `args` builds the command from ProbeKeys. `harmless`: the same command may also be sent for
    real, changing nothing (read-only, or a write to a key that does not exist); used only when
    the user may not run MULTI (see _permissions). `note`: when the job needs it, for a command
    it can do without (None: always needed).
    """

    operation: str
    command: str
    args: Callable[[ProbeKeys], tuple]
    harmless: bool = True
    note: str | None = None


_RECORDING = "recording the run for `history` (skipped quietly without it)"
_RECORDING_COMMANDS = [
    ("ZADD", lambda k: ("ZADD", k.metric, "XX", 0, "x")),
    ("HSET", lambda k: ("HSET", k.meta, "lastUpdate", "0")),
    ("SCRIPT LOAD", lambda k: ("SCRIPT", "LOAD", "return 0")),
    ("EVALSHA", lambda k: ("EVALSHA", NO_SUCH_SCRIPT, 1, k.agg, "0", 0, 0, 0)),
]


def _recording(operation: str) -> list[Probe]:
    harmless = {"ZADD", "EVALSHA"}
    return [
        Probe(operation, command, args, command in harmless, _RECORDING)
        for command, args in _RECORDING_COMMANDS
    ]


# What each cachectl job sends (grep the ops modules for the commands when one changes), and how
# to ask whether the ACL user may send it. Commands of the key-listing family are under "read".
PERMISSION_PROBES: list[Probe] = [
    # keys, inspect, tags, memory
    Probe("read", "SCAN", lambda k: ("SCAN", 0, "MATCH", k.entry, "COUNT", 1)),
    Probe(
        "read",
        "EVAL",
        lambda k: ("EVAL", "return 0", 0),
        note="the sized SCAN of keys and memory (slower pipelines without it)",
    ),
    Probe("read", "TYPE", lambda k: ("TYPE", k.entry)),
    Probe("read", "PTTL", lambda k: ("PTTL", k.entry)),
    Probe("read", "MEMORY USAGE", lambda k: ("MEMORY", "USAGE", k.entry)),
    Probe("read", "EXISTS", lambda k: ("EXISTS", k.entry)),
    Probe("read", "DBSIZE", lambda k: ("DBSIZE",)),
    Probe("read", "INFO", lambda k: ("INFO", "server")),
    Probe("read", "SSCAN", lambda k: ("SSCAN", k.tag, 0, "COUNT", 1)),
    Probe("read", "SCARD", lambda k: ("SCARD", k.tag)),
    Probe("read", "SMEMBERS", lambda k: ("SMEMBERS", k.tag)),
    Probe("read", "SRANDMEMBER", lambda k: ("SRANDMEMBER", k.tag, 1)),
    Probe("read", "SISMEMBER", lambda k: ("SISMEMBER", k.tag, k.entry)),
    Probe("read", "SMISMEMBER", lambda k: ("SMISMEMBER", k.tag, k.entry)),
    Probe("read", "GET", lambda k: ("GET", k.entry), note="inspect"),
    Probe("read", "GETRANGE", lambda k: ("GETRANGE", k.entry, 0, 0), note="inspect"),
    Probe("read", "STRLEN", lambda k: ("STRLEN", k.entry), note="inspect"),
    Probe("read", "OBJECT", lambda k: ("OBJECT", "ENCODING", k.entry), note="inspect"),
    Probe("read", "ZSCORE", lambda k: ("ZSCORE", k.log, k.entry), note="inspect"),
    Probe("read", "HSCAN", lambda k: ("HSCAN", k.entry, 0), note="inspect of a hash"),
    Probe("read", "LRANGE", lambda k: ("LRANGE", k.entry, 0, 0), note="inspect of a list"),
    Probe("read", "ZRANGE", lambda k: ("ZRANGE", k.entry, 0, 0), note="inspect of a sorted set"),
    Probe(
        "read",
        "XRANGE",
        lambda k: ("XRANGE", k.entry, "-", "+", "COUNT", 1),
        note="inspect of a stream",
    ),
    # warm (MULTI/EXEC on a single server; in a cluster the same writes, pipelined)
    Probe("warm", "PING", lambda k: ("PING",)),
    Probe("warm", "TYPE", lambda k: ("TYPE", k.tag)),
    Probe("warm", "PTTL", lambda k: ("PTTL", k.entry)),
    Probe("warm", "SET", lambda k: ("SET", k.entry, "x", "XX", "PX", 1)),
    Probe("warm", "SADD", lambda k: ("SADD", k.tag, k.entry), harmless=False),
    Probe("warm", "PEXPIRE", lambda k: ("PEXPIRE", k.tag, 1, "GT")),
    Probe("warm", "ZADD", lambda k: ("ZADD", k.log, "XX", 0, k.entry)),
    Probe("warm", "MULTI", lambda k: ("MULTI",), harmless=False),  # see _permissions
    Probe("warm", "EXEC", lambda k: ("EXEC",)),  # outside MULTI: refused, after the ACL check
    Probe("warm", "UNLINK", lambda k: ("UNLINK", k.entry)),  # an entry whose index write failed
    Probe("warm", "ZREM", lambda k: ("ZREM", k.log, k.entry)),
    Probe("warm", "ZREVRANGE", lambda k: ("ZREVRANGE", k.access, 0, 0), note="--from-access-log"),
    *_recording("warm"),
    # invalidate
    Probe("invalidate", "SCAN", lambda k: ("SCAN", 0, "MATCH", k.entry, "COUNT", 1)),
    Probe("invalidate", "DBSIZE", lambda k: ("DBSIZE",)),
    Probe("invalidate", "SSCAN", lambda k: ("SSCAN", k.tag, 0, "COUNT", 1)),
    Probe("invalidate", "TYPE", lambda k: ("TYPE", k.tag)),
    Probe("invalidate", "EXISTS", lambda k: ("EXISTS", k.tag)),
    Probe("invalidate", "RENAMENX", lambda k: ("RENAMENX", k.tag, k.pending)),
    Probe("invalidate", "UNLINK", lambda k: ("UNLINK", k.entry)),
    Probe("invalidate", "ZREM", lambda k: ("ZREM", k.log, k.entry)),
    Probe("invalidate", "SREM", lambda k: ("SREM", k.tag, k.entry)),
    Probe(
        "invalidate",
        "INFO",
        lambda k: ("INFO", "server"),
        note="noticing a server restart during a scan",
    ),
    Probe("invalidate", "PTTL", lambda k: ("PTTL", k.entry), note="--ttl-below/--ttl-above"),
    Probe("invalidate", "ZMSCORE", lambda k: ("ZMSCORE", k.log, k.entry), note="--older-than"),
    Probe(
        "invalidate", "MEMORY USAGE", lambda k: ("MEMORY", "USAGE", k.entry), note="--larger-than"
    ),
    Probe("invalidate", "OBJECT", lambda k: ("OBJECT", "IDLETIME", k.entry), note="--idle-above"),
    *_recording("invalidate"),
    # prune
    Probe("prune", "SCAN", lambda k: ("SCAN", 0, "TYPE", "set", "COUNT", 1)),
    Probe("prune", "SSCAN", lambda k: ("SSCAN", k.tag, 0, "COUNT", 1)),
    Probe("prune", "EXISTS", lambda k: ("EXISTS", k.entry)),
    Probe("prune", "SREM", lambda k: ("SREM", k.tag, k.entry)),
    Probe("prune", "SADD", lambda k: ("SADD", k.tag, k.entry), harmless=False),
    Probe("prune", "TIME", lambda k: ("TIME",)),
    Probe("prune", "ZSCAN", lambda k: ("ZSCAN", k.log, 0, "COUNT", 1)),
    Probe("prune", "ZCOUNT", lambda k: ("ZCOUNT", k.log, "-inf", "(0")),
    Probe("prune", "ZRANGE", lambda k: ("ZRANGE", k.log, "-inf", "(0", "BYSCORE", "LIMIT", 0, 1)),
    Probe("prune", "ZREM", lambda k: ("ZREM", k.log, k.entry)),
    Probe("prune", "ZADD", lambda k: ("ZADD", k.log, "XX", "GT", 0, k.entry)),
    Probe("prune", "INFO", lambda k: ("INFO", "server"), note="noticing a server restart"),
    *_recording("prune"),
    # stats (also `check`, which reads the same)
    Probe("stats", "INFO", lambda k: ("INFO", "stats")),
    Probe("stats", "HGETALL", lambda k: ("HGETALL", k.counters)),
    Probe(
        "stats",
        "ZREVRANGEBYSCORE",
        lambda k: ("ZREVRANGEBYSCORE", k.response_times, 1, 0, "LIMIT", 0, 1),
    ),
    Probe("stats", "SCAN", lambda k: ("SCAN", 0, "MATCH", k.counters, "COUNT", 1)),
    # history (record, show, list, anomalies...; `stats --record` and `check` too)
    Probe("history", "SCAN", lambda k: ("SCAN", 0, "MATCH", k.metric, "COUNT", 1)),
    Probe("history", "ZRANGEBYSCORE", lambda k: ("ZRANGEBYSCORE", k.metric, 0, 1)),
    Probe("history", "ZREVRANGEBYSCORE", lambda k: ("ZREVRANGEBYSCORE", k.metric, 1, 0)),
    Probe("history", "HKEYS", lambda k: ("HKEYS", k.meta)),
    Probe("history", "HMGET", lambda k: ("HMGET", k.meta, "x")),
    Probe("history", "HGETALL", lambda k: ("HGETALL", k.agg)),
    Probe("history", "ZCARD", lambda k: ("ZCARD", k.metric), note="history list"),
    Probe("history", "ZRANGE", lambda k: ("ZRANGE", k.metric, 0, 0), note="history list"),
    Probe(
        "history",
        "MEMORY USAGE",
        lambda k: ("MEMORY", "USAGE", k.metric),
        note="history list, compact",
    ),
    Probe("history", "ZADD", lambda k: ("ZADD", k.metric, "XX", 0, "x"), note="recording"),
    Probe(
        "history",
        "HSET",
        lambda k: ("HSET", k.meta, "lastUpdate", "0"),
        harmless=False,
        note="recording, compact",
    ),
    Probe(
        "history",
        "SCRIPT LOAD",
        lambda k: ("SCRIPT", "LOAD", "return 0"),
        harmless=False,
        note="recording",
    ),
    Probe(
        "history",
        "EVALSHA",
        lambda k: ("EVALSHA", NO_SUCH_SCRIPT, 1, k.agg, "0", 0, 0, 0),
        note="recording",
    ),
    Probe(
        "history",
        "ZREMRANGEBYSCORE",
        lambda k: ("ZREMRANGEBYSCORE", k.metric, "-inf", "(0"),
        note="history prune",
    ),
    Probe("history", "UNLINK", lambda k: ("UNLINK", k.agg), note="history prune"),
    Probe("history", "HDEL", lambda k: ("HDEL", k.meta, "x"), note="history compact"),
    Probe("history", "ZREM", lambda k: ("ZREM", k.metric, "x"), note="history compact"),
]


@dataclass
class Warning_:
    code: str
    message: str
    level: str = "warning"  # "warning" | "info"


@dataclass
class NodeReport:
    """One primary. An unreachable one (a cluster node down) has `reachable` false, its
    `error`, and None for the figures only its INFO could give."""

    address: str
    role: str
    version: str | None = None
    keys: int | None = None
    used_memory_bytes: int | None = None
    reachable: bool = True
    error: str | None = None


@dataclass
class DoctorReport:
    settings: list[dict[str, str]]
    reachable: bool = False
    server_version: str | None = None
    mode: str | None = None  # standalone | cluster | replica | sentinel
    # Behind Sentinel: the service, each sentinel (`ok`, the primary it names, or `error`), the
    # primary and its replicas as the first answering sentinel sees them (Store.sentinel_view).
    sentinel: dict[str, Any] | None = None
    nodes: list[NodeReport] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    keys_total: int | None = None
    used_memory_bytes: int | None = None
    maxmemory_bytes: int | None = None
    maxmemory_policy: str | None = None
    persistence: dict[str, Any] = field(default_factory=dict)
    acl_user: str | None = None
    permissions: dict[str, dict[str, bool | None]] = field(default_factory=dict)
    warnings: list[Warning_] = field(default_factory=list)
    failure: RedisError | None = field(default=None, repr=False)

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("failure")
        out["error"] = self.failure.to_dict() if self.failure else None
        return out


def run_doctor(settings: Settings, store: Store) -> DoctorReport:
    """The report; `failure` holds the Redis error that cut it short or left part of it out
    (a cluster node unreachable), which the CLI exits 4 with.

    Figures that may be None although Redis answered: `server_version`, `mode`, `keys_total`,
    `used_memory_bytes`, `maxmemory_bytes`, `maxmemory_policy` (INFO refused to the ACL user;
    `persistence` is then empty too), and with a cluster node unreachable `keys_total` and
    `used_memory_bytes` (a sum without that node is no total) and that node's `version`,
    `keys` and `used_memory_bytes`.
    """
    report = DoctorReport(
        settings=[
            {"setting": name, "value": value, "source": source}
            for name, value, source in settings.describe()
        ]
    )
    # What the store warns about (a cluster node used as one server) belongs in the report,
    # not on stderr as well.
    store_warnings: list[Warning_] = []
    on_warning = store.on_warning
    store.on_warning = lambda code, message: store_warnings.append(Warning_(code, message))
    try:
        if store.is_sentinel:
            # First: with no primary to reach, what the sentinels say is what helps.
            report.sentinel = store.sentinel_view()
        _inspect_server(settings, store, report)
    except RedisError as err:
        # The settings part of the report is what helps most when Redis cannot be reached.
        report.failure = err
    finally:
        store.on_warning = on_warning
    report.warnings = store_warnings + report.warnings
    return report


def _inspect_server(settings: Settings, store: Store, report: DoctorReport) -> None:
    pings = store.ping_latency(5)
    report.reachable = True
    report.latency_ms = {
        "min": round(min(pings) * 1000, 3),
        "median": round(statistics.median(pings) * 1000, 3),
        "max": round(max(pings) * 1000, 3),
    }
    report.acl_user = _whoami(store) or _configured_user(settings)
    report.permissions = _permissions(settings, store)
    try:
        report.mode = store.server_mode()
        if report.sentinel is not None and report.mode == "standalone":
            report.mode = "sentinel"
        infos, unreachable = _node_infos(store)
    except RedisPermissionError as err:
        # An application user is often denied INFO: the rest of the report still helps.
        report.warnings = [Warning_("info_denied", f"server figures unavailable: {err.message}")]
        report.warnings += _warnings(settings, store, report)
        return
    for address, info in infos.items():
        if info is None:
            report.nodes.append(NodeReport(
                address=address, role="master", reachable=False,
                error=unreachable[address].message,
            ))  # fmt: skip
            continue
        report.nodes.append(
            NodeReport(
                address=address,
                role=str(info.get("role", "master")),
                version=info.get("redis_version"),
                keys=_keys_in(info),
                used_memory_bytes=_int(info.get("used_memory")),
            )
        )
    first = next((info for info in infos.values() if info is not None), {})
    report.server_version = first.get("redis_version")
    if not unreachable:
        report.keys_total = sum(n.keys or 0 for n in report.nodes)
        report.used_memory_bytes = sum(n.used_memory_bytes or 0 for n in report.nodes)
    report.maxmemory_bytes = _int(first.get("maxmemory"))
    report.maxmemory_policy = first.get("maxmemory_policy")
    report.persistence = {
        "rdb_save_configured": bool(_config_get(store, "save")),
        "aof_enabled": str(first.get("aof_enabled", "0")) == "1",
    }
    report.warnings = _warnings(settings, store, report, scan=not unreachable)
    if unreachable:
        report.failure = _unreachable_nodes(unreachable, len(infos))


def _node_infos(store: Store) -> tuple[dict[str, dict | None], dict[str, RedisError]]:
    """INFO of every primary ({address: info}, None for a node that cannot be reached), and
    the error of each unreachable one. A node down leaves the others to report on."""
    infos: dict[str, dict | None] = {}
    unreachable: dict[str, RedisError] = {}
    for node in store.primaries():
        try:
            infos[node.name] = store.execute_on(node, "INFO")
        except RedisPermissionError:
            raise
        except RedisError as err:
            infos[node.name] = None
            unreachable[node.name] = err
    return infos, unreachable


def _unreachable_nodes(unreachable: dict[str, RedisError], total: int) -> RedisError:
    if len(unreachable) == 1:
        return next(iter(unreachable.values()))
    names = ", ".join(unreachable)
    first = next(iter(unreachable.values()))
    return RedisUnreachable(
        f"{len(unreachable)} of {total} cluster primaries cannot be reached ({names}); "
        f"the first: {first.message}",
        details={"unreachable_nodes": list(unreachable)},
    )


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


def _configured_user(settings: Settings) -> str:
    """The user cachectl logs in as, when the server will not say (ACL WHOAMI refused)."""
    if settings.username:
        return settings.username
    from urllib.parse import unquote, urlsplit

    try:
        user = urlsplit(settings.url).username
    except ValueError:
        user = None
    return unquote(user) if user else "default"


def _whoami(store: Store) -> str | None:
    try:
        name = store.execute("ACL", "WHOAMI")
    except RedisError:
        return None
    return name.decode() if isinstance(name, bytes) else name


def _permissions(settings: Settings, store: Store) -> dict[str, dict[str, bool | None]]:
    """operation -> command -> may the ACL user run it (None: not found out).

    Every probe is queued inside MULTI and thrown away with DISCARD, so none of them runs: Redis
    checks the ACL (command and keys) when it queues a command, and answers NOPERM then. MULTI
    is confirmed alone first, since after a refused MULTI the commands would run for real. A
    user who may not run MULTI is asked with the harmless probes only, sent for real (reads, and
    writes to keys that do not exist); the others stay None.
    """
    keys = ProbeKeys.of(Layout(settings.layout))
    commands = [probe.args(keys) for probe in PERMISSION_PROBES]
    # Never queued: MULTI is what queues, and EXEC would run everything queued before it.
    to_queue = [c for c, p in zip(commands, PERMISSION_PROBES) if p.command not in _NOT_QUEUED]
    node, _ = store.reachable_primary()
    queued = store.exchange(node, _queued(to_queue), "MULTI")
    allowed: dict[str, dict[str, bool | None]] = {}
    answers = iter(queued or ())
    for probe, command in zip(PERMISSION_PROBES, commands):
        if probe.command == "MULTI":
            ok: bool | None = queued is not None
        elif probe.command == "EXEC":
            ok = _sent(store, command)  # outside MULTI: "EXEC without MULTI", after the ACL
        elif queued is not None:
            ok = next(answers)
        elif probe.harmless:
            ok = _sent(store, command)
        else:
            ok = None
        allowed.setdefault(probe.operation, {})[probe.command] = ok
    return allowed


_NOT_QUEUED = ("MULTI", "EXEC")


def _queued(commands: list[tuple]) -> Generator[list[tuple], list, list[bool] | None]:
    """Queues each command in one MULTI, then DISCARDs it; per command whether the ACL let it
    be queued. None when MULTI itself is refused (nothing else was sent). A dialogue for
    `Store.exchange`: MULTI goes alone, and only once it is confirmed the rest follows."""
    [multi] = yield [("MULTI",)]
    if isinstance(multi, RedisPermissionError):
        return None
    if isinstance(multi, Exception):
        raise multi
    *answers, discarded = yield [*commands, ("DISCARD",)]
    if isinstance(discarded, Exception):
        raise discarded  # still in MULTI: the store drops the connection
    # QUEUED; a refusal other than the ACL's (MOVED in a cluster...) came after the ACL check.
    return [not isinstance(answer, RedisPermissionError) for answer in answers]


def _sent(store: Store, command: tuple) -> bool:
    try:
        store.execute(*command)
    except RedisPermissionError:
        return False
    except RedisError as err:
        # Refused for another reason (WRONGTYPE, NOSCRIPT...): the ACL let it through. EXEC
        # says its NOPERM inside an EXECABORT.
        return "NOPERM" not in err.message
    return True


def denied_commands(report: DoctorReport) -> tuple[list[str], list[str]]:
    """("SCAN (read, invalidate)"-style names of commands a job always needs that the user may
    not run, the same for commands needed only by some options or with a fallback)."""
    notes: dict[tuple[str, str], str | None] = {}
    for p in PERMISSION_PROBES:  # a command listed twice for a job is needed if either says so
        key = (p.operation, p.command)
        notes[key] = None if key in notes and notes[key] is None else p.note
    needed: dict[str, list[str]] = {}
    optional: dict[str, list[str]] = {}
    for operation, commands in report.permissions.items():
        for command, ok in commands.items():
            if ok is False:
                note = notes.get((operation, command))
                where = optional if note else needed
                where.setdefault(command, []).append(f"{operation}: {note}" if note else operation)
    return (
        [f"{c} ({', '.join(ops)})" for c, ops in sorted(needed.items())],
        [f"{c} ({'; '.join(ops)})" for c, ops in sorted(optional.items())],
    )


def _warnings(
    settings: Settings, store: Store, report: DoctorReport, scan: bool = True
) -> list[Warning_]:
    """`scan`: whether the keyspace may be sampled (not with a cluster node down)."""
    out = _memory_warnings(report) if report.maxmemory_policy is not None else []
    policy = report.maxmemory_policy or ""
    if scan and policy.startswith("volatile-") and report.permissions.get("read", {}).get("SCAN"):
        no_ttl = _tag_sets_without_ttl(settings, store)
        if no_ttl:
            out.append(
                Warning_(
                    "volatile_policy_tag_sets_without_ttl",
                    f"maxmemory-policy is {policy} but {no_ttl} sampled tag/dependency sets have no TTL: "
                    "they are never evicted and keep growing; prune them or use an allkeys-* policy",
                )
            )
    if report.persistence.get("aof_enabled"):
        out.append(
            Warning_(
                "aof_enabled",
                "AOF persistence is on: a cache rarely needs it and pays for it in writes",
                level="info",
            )
        )
    if report.mode == "replica":
        out.append(
            Warning_(
                "replica",
                "connected to a replica: writes (warm, invalidate, prune) will be refused",
            )
        )
    needed, optional = denied_commands(report)
    user = report.acl_user or "this user"
    if needed:
        out.append(
            Warning_("acl_denied", f"the ACL user {user!r} may not run: {', '.join(needed)}")
        )
    if optional:
        out.append(
            Warning_(
                "acl_denied_optional",
                f"the ACL user {user!r} may not run what some options or steps use: "
                f"{', '.join(optional)}",
                level="info",
            )
        )
    unknown = sorted(
        {c for cmds in report.permissions.values() for c, ok in cmds.items() if ok is None}
    )
    if unknown:
        out.append(
            Warning_(
                "acl_unknown",
                f"without MULTI these could not be checked without running them: {', '.join(unknown)}",
                level="info",
            )
        )
    return out


def _memory_warnings(report: DoctorReport) -> list[Warning_]:
    out: list[Warning_] = []
    policy = report.maxmemory_policy or ""
    if not report.maxmemory_bytes:
        if policy == "noeviction":
            out.append(
                Warning_(
                    "no_maxmemory_noeviction",
                    "maxmemory is 0 and the policy is noeviction: the cache grows until the machine "
                    "runs out of memory; set maxmemory and an allkeys-lru or allkeys-lfu policy",
                )
            )
        else:
            out.append(
                Warning_(
                    "no_maxmemory",
                    f"maxmemory is 0: {policy} never applies and the cache grows without bound",
                )
            )
    elif policy == "noeviction":
        out.append(
            Warning_(
                "noeviction",
                "maxmemory-policy is noeviction: when memory is full every cache write fails; "
                "a cache wants allkeys-lru or allkeys-lfu",
            )
        )
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
