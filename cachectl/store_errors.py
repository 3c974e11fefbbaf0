"""Every redis-py (or socket) error as one CachectlError line: URL masked, no secret, the
server that failed named. `Store.translate` and `Store.errors` apply it.
"""

from __future__ import annotations

import re
import ssl
from typing import TYPE_CHECKING

from redis import exceptions as rx
from redis.connection import parse_url
from redis.sentinel import MasterNotFoundError

from cachectl.errors import (
    CachectlError,
    RedisAuthError,
    RedisClusterDown,
    RedisError,
    RedisOutOfMemory,
    RedisPermissionError,
    RedisReadOnly,
    RedisTimeout,
    RedisTLSError,
    RedisUnreachable,
)
from cachectl.redact import scrub
from cachectl.store_wire import NodeRef

if TYPE_CHECKING:
    from cachectl.config import Settings

# What redis-py and ssl wrap around an error's own words: "Error 111 connecting to h:p. ...",
# "Error while reading from h:p : (104, '...')", "[SSL: CERTIFICATE_VERIFY_FAILED] ... (_ssl.c:1006)".
_REPLY_BYTE = re.compile(r'got "(?P<byte>.)" as reply type byte', re.IGNORECASE)
_WRAPPERS = (
    re.compile(r"^Error -?\d+ connecting to \S+?\. "),
    re.compile(r"^Error while reading from \S+ ?: \(\d+, '(?P<reason>[^']*)'\)$"),
    re.compile(r"\[SSL: [A-Z_]+\] "),
    re.compile(r" \(_ssl\.c:\d+\)"),
)
_NOPERM_COMMAND = re.compile(r"run the '(?P<command>[^']+)' command")
# Where redis-py says a socket error happened: "Error 111 connecting to 10.0.0.3:6379.",
# "Error while reading from 10.0.0.3:6379 : (104, ...)", "Timeout reading from 10.0.0.3:6379".
_FAILED_AT = re.compile(r"(?:connecting to|reading from|writing to) (?P<host>\S+):(?P<port>\d+)")
# A (masked) URL around its host and port: what url_of swaps for another node's.
_URL_HOST = re.compile(
    r"(?P<head>[a-z]+://(?:[^@/?#]*@)?)[^/?#]*(?P<tail>.*)", re.IGNORECASE | re.DOTALL
)
_DNS_FAILURES = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated",
    "getaddrinfo failed",
)


def translate(
    settings: Settings,
    exc: BaseException,
    command: str | None = None,
    node: NodeRef | None = None,
    *,
    cluster: bool = False,
) -> CachectlError:
    """The CachectlError for a redis-py (or socket) error: one line, URL masked, no secret.

    It names the server that failed: `node` when given, else the one redis-py's words name
    (a cluster node other than the URL's is shown as the URL with its host and port).
    `cluster`: whether the deployment is a Redis Cluster.
    """
    if isinstance(exc, CachectlError):
        return exc
    if isinstance(exc, MasterNotFoundError):
        return _no_primary(settings, exc)
    if isinstance(exc, rx.RedisClusterException) and "cluster mode is not enabled" in (
        _chain_text(exc).lower()
    ):
        source = settings.sources.get("cluster")
        return RedisError(
            f"the server at {settings.masked_url()} is not a cluster node, "
            "but cluster mode is on" + (f" ({source})" if source else ""),
            hint="drop --cluster, or set `cluster: auto` in the profile",
        )
    if isinstance(exc, rx.RedisClusterException) and isinstance(
        exc.__cause__, (rx.RedisError, OSError)
    ):
        # "Redis Cluster cannot be connected...": the startup node's own error says why.
        return translate(settings, exc.__cause__, command, node, cluster=cluster)
    node = node or getattr(exc, "cachectl_node", None) or _failed_node(exc)
    url = url_of(settings, node)
    # redis-py wraps socket and TLS errors in its own; the original says what happened.
    root = exc.__context__ if isinstance(exc.__context__, OSError) else exc
    detail = scrub(_reason(exc), secrets(settings))
    lowered = detail.lower()
    tls = settings.url.startswith(("rediss://", "rediss+sentinel://"))
    if node is None and cluster:
        # Not said by redis-py ("Timeout connecting to server", a refused AUTH): say only
        # what is known, rather than blame the URL's node, which answered.
        where = f"a node of the Redis Cluster at {url}"
    else:
        where = f"Redis at {url}"
    # A node other than the URL's (ACL users, like keys, are per node in a cluster).
    elsewhere = f" on {node.name}" if url != settings.masked_url() else ""

    if isinstance(exc, (rx.AuthenticationError, rx.AuthorizationError)) or lowered.startswith(
        ("wrongpass", "noauth")
    ):
        if not secrets(settings):
            return RedisAuthError(
                f"{where} requires a password and none was given",
                hint="put the password in the URL or in the profile's settings",
            )
        return RedisAuthError(
            f"{where} refused the user name or password: {detail}",
            hint="check the password, and the ACL user name if there is one",
        )
    if isinstance(exc, rx.NoPermissionError):
        refused = _refused_command(exc, command)
        what = f"may not run {refused}" if refused else f"was refused: {detail}"
        return RedisPermissionError(
            f"the ACL user '{user(settings)}' {what}{elsewhere}",
            command=refused,
            hint="grant it with ACL SETUSER, or connect as a user that may",
        )
    if isinstance(exc, rx.ReadOnlyError):
        return RedisReadOnly(
            f"{where} is a read-only replica and refused {command or 'a write'}",
            hint="connect to the primary",
        )
    if isinstance(exc, rx.OutOfMemoryError) or "used memory > 'maxmemory'" in lowered:
        return RedisOutOfMemory(
            f"{where} is full and refused {command or 'a write'}: {detail}",
            hint="free memory, raise maxmemory, or set a maxmemory-policy that may evict",
        )
    if isinstance(exc, (rx.ClusterDownError, rx.SlotNotCoveredError)) or lowered.startswith(
        "clusterdown"
    ):
        return RedisClusterDown(f"the Redis Cluster at {url} is down: {detail}")
    if isinstance(exc, rx.MovedError):
        return RedisError(
            f"Redis at {url} is a cluster node (it answered MOVED) but was used as one server",
            hint="set `cluster: true` in the profile",
        )
    if isinstance(exc, (rx.TimeoutError, TimeoutError)):
        if "connecting" in lowered and tls and _answers_plain_redis(settings, node):
            return RedisTLSError(
                f"{where} does not speak TLS: it answered a plain-text PING",
                hint="use a redis:// URL, or turn TLS on at the server",
            )
        if "connecting" in lowered:
            attempts = settings.retries + 1
            return RedisTimeout(
                f"timed out connecting to {where} ({attempts} attempt"
                f"{'s' if attempts > 1 else ''}, {settings.connect_timeout:g}s each)",
                hint="a server that does not speak TLS never answers a rediss:// handshake"
                if tls
                else None,
            )
        return RedisTimeout(
            f"{where} did not answer {command or 'a command'} within {settings.timeout:g}s",
            hint="the server may be overloaded; raise the timeout or lower the batch size",
        )
    if isinstance(exc, (rx.ConnectionError, OSError)):
        if any(marker in lowered for marker in _DNS_FAILURES):
            return RedisUnreachable(f"cannot connect to {where}: the host name does not resolve")
        if isinstance(root, ssl.SSLError) or (tls and isinstance(root, FileNotFoundError)):
            return RedisTLSError(
                f"TLS with {where} failed: {detail}",
                hint="check the TLS files (tls.ca_file, tls.cert_file, tls.key_file) "
                "and that the server name matches its certificate",
            )
        reset = isinstance(root, ConnectionResetError) or "reset by peer" in lowered
        return RedisUnreachable(
            f"cannot connect to {where}: {detail}",
            hint="a TLS server drops plain connections: use a rediss:// URL"
            if reset and not tls
            else None,
        )
    if isinstance(exc, rx.InvalidResponse) or lowered.startswith("protocol error"):
        return _not_redis(where, detail)
    if "db index is out of range" in lowered:
        return _no_such_database(settings, where)
    return RedisError(f"Redis{elsewhere} refused {command or 'the command'}: {detail}")


def _not_redis(where: str, detail: str) -> RedisError:
    """A server that answered, but not in the Redis protocol: an HTTP server (a URL with the
    web port, a proxy) answers `HTTP/1.x ...`, or its error page's `<html>` to a request it
    cannot read."""
    match = _REPLY_BYTE.search(detail)
    first = match["byte"] if match else ""
    said = "HTTP" if first in ("H", "<") else "something that is not the Redis protocol"
    return RedisError(
        f"{where.removeprefix('Redis at ')} is not a Redis server (it answered {said})",
        hint="check the host and port of the URL",
    )


def _no_such_database(settings: Settings, where: str) -> RedisError:
    """`SELECT n` refused (a URL ending in /99): which database, and how many there are."""
    try:
        db = int(parse_url(settings.url).get("db") or 0)
    except (ValueError, TypeError):
        db = None
    count = _database_count(settings)
    has = f" (the server has {count})" if count else ""
    which = f"database {db}" if db is not None else "the URL's database"
    return RedisError(f"{which} does not exist on {where}{has}")


def _answers_plain_redis(settings: Settings, node: NodeRef | None) -> bool:
    """Whether the server a rediss:// handshake timed out on answers a plain PING: a Redis
    without TLS waits for a line the TLS hello never ends, so the handshake only times out."""
    import socket

    try:
        parsed = parse_url(settings.url)
        host = node.host if node and node.port else parsed.get("host")
        port = node.port if node and node.port else parsed.get("port", 6379)
        if not host:
            return False
        with socket.create_connection((host, int(port)), timeout=1) as sock:
            sock.settimeout(1)
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
    except (OSError, ValueError, TypeError):
        return False
    return reply.startswith((b"+PONG", b"-NOAUTH", b"-ERR", b"-WRONGPASS"))


def _database_count(settings: Settings) -> int | None:
    """The server's `databases` setting, asked on database 0 with a short timeout; None when it
    cannot be read (CONFIG refused by an ACL or a managed service, a TLS server)."""
    if settings.url.startswith("rediss://"):
        return None
    import redis

    try:
        kwargs = parse_url(settings.url)
        kwargs.update(db=0, socket_timeout=1, socket_connect_timeout=1)
        if settings.password and not kwargs.get("password"):
            kwargs["password"] = settings.password
        if settings.username and not kwargs.get("username"):
            kwargs["username"] = settings.username
        with redis.Redis(**kwargs) as client:
            value = client.config_get("databases").get("databases")
        return int(value) if value else None
    except (redis.RedisError, OSError, ValueError, TypeError):
        return None


def url_of(settings: Settings, node: NodeRef | None) -> str:
    """The masked URL, or for another node of the deployment the same URL with that
    node's host and port: `redis://app:****@10.0.0.3:6379/0`."""
    url = settings.masked_url()
    if node is None or node.port is None:
        return url
    try:
        parsed = parse_url(settings.url)
    except ValueError:
        return url
    if (parsed.get("host"), parsed.get("port", 6379)) == (node.host, node.port):
        return url
    match = _URL_HOST.match(url)
    if match is None:
        return node.name
    host = f"[{node.host}]" if ":" in node.host else node.host
    return f"{match['head']}{host}:{node.port}{match['tail']}"


def secrets(settings: Settings) -> list[str]:
    found = [settings.password, settings.sentinel.password, _from_url(settings, "password")]
    return [s for s in found if s]


def _no_primary(settings: Settings, exc: MasterNotFoundError) -> CachectlError:
    """No sentinel named a primary: each sentinel's reason as redis-py words it, without the
    client reprs it wraps them in."""
    text = scrub(str(exc), secrets(settings))
    service = re.search(r"for '([^']*)'", text)
    reasons = [
        f"{address}: {reason.strip().lower()}"
        for address, reason in re.findall(r"connecting to (\S+?)\.? ([^.,:]+)", text)
    ]
    why = "; ".join(reasons) or "they answer, but none names a primary (up) for that service"
    return RedisUnreachable(
        f"no sentinel of {settings.masked_url()} names a primary for service "
        f"'{service[1] if service else '?'}': {why}",
        hint="check the sentinels' addresses and the service name (SENTINEL MASTERS lists "
        "the services a sentinel watches)",
    )


def user(settings: Settings) -> str:
    return settings.username or _from_url(settings, "username") or "default"


def _from_url(settings: Settings, part: str) -> str | None:
    from cachectl.config import is_sentinel_url, parse_sentinel_url

    try:
        if is_sentinel_url(settings.url):
            return getattr(parse_sentinel_url(settings.url), part)
        return parse_url(settings.url).get(part)
    except ValueError:
        return None


def _failed_node(exc: BaseException) -> NodeRef | None:
    """The server redis-py's message says a socket error happened with, if it says."""
    match = _FAILED_AT.search(_chain_text(exc))
    return NodeRef(match["host"], int(match["port"])) if match else None


def _chain_text(exc: BaseException) -> str:
    """The words of the error and of the errors it was raised from."""
    texts = []
    seen: BaseException | None = exc
    while seen is not None and len(texts) < 5:
        texts.append(str(seen))
        seen = seen.__cause__
    return " ".join(texts)


def _reason(exc: BaseException) -> str:
    """The error's own words, without redis-py's "Error 111 connecting to h:p." wrapping."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    for pattern in _WRAPPERS:
        text = pattern.sub(lambda m: m.groupdict().get("reason", ""), text)
    text = text.strip().rstrip(".")
    # "Connection refused" reads better mid-sentence as "connection refused"; "DEBUG ..." stays.
    if text[1:2].islower():
        text = text[:1].lower() + text[1:]
    return text


def _refused_command(exc: BaseException, command: str | None) -> str | None:
    match = _NOPERM_COMMAND.search(str(exc))
    if match:
        return match["command"].replace("|", " ").upper()
    return command
