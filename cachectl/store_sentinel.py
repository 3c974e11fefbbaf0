"""Redis Sentinel for the Store (cachectl/store.py) and the asyncio library: which sentinels and
service the settings name, the options of the connections to them, and what they say of the
deployment (for `doctor`).

redis-py's own Sentinel support does the rest: its SentinelConnectionPool asks the sentinels for
the primary whenever a connection is made, so after a failover (a broken connection, or the old
primary answering READONLY as a replica now) the store's retry reconnects to the new primary.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from redis import exceptions as rx

from cachectl.errors import ConfigError, RedisUnreachable, UsageError
from cachectl.keytext import reply_text
from cachectl.redact import scrub

if TYPE_CHECKING:
    from redis.sentinel import Sentinel

    from cachectl.config import SentinelTarget, Settings


class Plan(NamedTuple):
    """How to reach a Sentinel deployment: the sentinels, the service (master name), the
    options of the connections to the sentinels and those of the connections to its servers."""

    sentinels: list[tuple[str, int]]
    service: str
    to_sentinels: dict[str, Any]
    to_servers: dict[str, Any]


def target(settings: Settings, secrets: list[str]) -> SentinelTarget | None:
    """The Sentinel deployment the settings name, or None; a ConfigError for one that cannot
    work, before any connection."""
    try:
        found = settings.sentinel_target()
    except ValueError as exc:
        reason = scrub(str(exc), secrets)
        raise ConfigError(f"invalid Redis URL {settings.masked_url()}: {reason}") from None
    if found is None:
        return None
    if not found.service:
        raise ConfigError(
            "sentinel.hosts is set but sentinel.service is not: name the service (the master "
            "name the sentinels watch)"
        )
    if settings.cluster:
        raise ConfigError(
            "cluster mode is on, but the settings name a Sentinel deployment (a primary with "
            "replicas), not a Redis Cluster: turn cluster mode off or leave it to auto"
        )
    return found


def plan(settings: Settings, found: SentinelTarget, kwargs: dict[str, Any]) -> Plan:
    """The servers get `kwargs` (the Store's connection options: user, password, database,
    timeouts, TLS) without a host; the sentinels the same timeouts and TLS, and their own ACL
    user and password (`sentinel.username`, `sentinel.password`)."""
    to_servers = {k: v for k, v in kwargs.items() if k not in ("host", "port", "unix_socket_path")}
    to_sentinels = {k: v for k, v in to_servers.items() if k not in ("db", "username", "password")}
    to_sentinels.update(username=settings.sentinel.username, password=settings.sentinel.password)
    return Plan(list(found.sentinels), found.service, to_sentinels, to_servers)


def connect(way: Plan, retry: Callable[[], Any], shown_url: str) -> tuple[Sentinel, Any]:
    """(the Sentinel, a client of the current primary). No I/O until the first command."""
    del shown_url  # the primary's errors are translated where they happen
    sentinel = _sentinel(way, retry)
    return sentinel, sentinel.master_for(way.service, retry=retry(), **way.to_servers)


def connect_replica(way: Plan, retry: Callable[[], Any], shown_url: str) -> tuple[Sentinel, Any]:
    """(the Sentinel, a plain client of one replica the sentinels list as up, the first one).
    A read job keeps to that replica: if it fails mid-job, the job fails (exit 4) rather than
    move to another whose keys may differ. No replica up is one line, exit 4."""
    import redis

    sentinel = _sentinel(way, retry)
    replicas = sentinel.discover_slaves(way.service)
    if not replicas:
        close(sentinel)
        raise RedisUnreachable(
            f"the sentinels of {shown_url} list no replica of service '{way.service}' that is up",
            hint="drop --replica to read from the primary",
        )
    host, port = replicas[0]
    client = redis.Redis(host=reply_text(host), port=int(port), retry=retry(), **way.to_servers)
    return sentinel, client


def replica_needs_sentinel() -> UsageError:
    return UsageError(
        "--replica reads from a replica the sentinels name: it needs a Redis Sentinel "
        "deployment (a redis+sentinel:// URL or the sentinel: settings); to read from a "
        "replica you know, give its own URL"
    )


def _sentinel(way: Plan, retry: Callable[[], Any]) -> Sentinel:
    from redis.sentinel import Sentinel

    return Sentinel(way.sentinels, sentinel_kwargs={**way.to_sentinels, "retry": retry()})


def close(sentinel: Sentinel) -> None:
    for conn in sentinel.sentinels:
        conn.close()


def view(sentinel: Sentinel, service: str, secrets: list[str]) -> dict[str, Any]:
    """Each sentinel (answering or not, and the primary it names), and the primary and its
    replicas as the first answering sentinel sees them."""
    sentinels: list[dict[str, Any]] = []
    primary: dict[str, Any] | None = None
    replicas: list[dict[str, Any]] = []
    for conn in sentinel.sentinels:
        where = conn.connection_pool.connection_kwargs
        row: dict[str, Any] = {"address": f"{where['host']}:{where['port']}"}
        try:
            state = _pairs(conn.execute_command("SENTINEL", "MASTER", service))
            row.update(ok=True, primary=_address(state))
            if primary is None:
                primary = {
                    "address": _address(state),
                    "flags": reply_text(state.get("flags", "")),
                    "quorum": int(state.get("quorum", 0)),
                    "other_sentinels": int(state.get("num-other-sentinels", 0)),
                }
                for raw in conn.execute_command("SENTINEL", "REPLICAS", service):
                    replica = _pairs(raw)
                    replicas.append(
                        {
                            "address": _address(replica),
                            "flags": reply_text(replica.get("flags", "")),
                            "link": reply_text(replica.get("master-link-status", "")),
                        }
                    )
        except rx.RedisError as exc:
            row.update(ok=False, error=scrub(str(exc) or type(exc).__name__, secrets))
        sentinels.append(row)
    return {"service": service, "sentinels": sentinels, "primary": primary, "replicas": replicas}


def _address(state: dict[str, Any]) -> str:
    return f"{reply_text(state['ip'])}:{reply_text(state['port'])}"


def _pairs(reply: Any) -> dict[str, Any]:
    """A sentinel's reply as a dict with text keys: redis-py parses some to dicts, RESP2 lists
    name, value pairs."""
    if not isinstance(reply, dict):
        reply = dict(zip(reply[::2], reply[1::2], strict=False))
    return {reply_text(k): v for k, v in reply.items()}
