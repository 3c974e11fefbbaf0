"""Redis Sentinel settings and the `redis+sentinel://` URL form, read without I/O (cachectl/config.py
re-exports them; cachectl/store_sentinel.py connects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote


@dataclass(frozen=True)
class SentinelConfig:
    """Redis Sentinel: the sentinels to ask (`host:port`) and the service (master name) they
    watch. `username` and `password` are the sentinels' own, when they require AUTH; the Redis
    servers' are the top-level ones (or the URL's)."""

    hosts: tuple[str, ...] = ()
    service: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)


SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelTarget:
    """Where a Sentinel deployment is: its sentinels, the service, and the URL's database and
    credentials (for the Redis servers)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def is_sentinel_url(url: str) -> bool:
    return url.partition("://")[0].lower() in SENTINEL_SCHEMES


def parse_sentinel_url(url: str) -> SentinelTarget:
    """`redis+sentinel://[user:pass@]host1:26379,host2:26379/SERVICE/DB` read, or ValueError in
    words that never quote the credentials."""
    _, _, rest = url.partition("://")
    # The user part first: a password may hold a '/' (no host, service or database holds '@').
    userinfo, at, rest = rest.rpartition("@")
    hostlist, _, path = rest.partition("/")
    path = path.partition("?")[0].partition("#")[0]
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else unquote(user)
        if not colon:
            username = None  # redis://secret@host: a lone userinfo is the password
    sentinels = tuple(sentinel_host(h) for h in hostlist.split(","))
    pieces = [p for p in path.split("/") if p]
    if not pieces:
        raise ValueError("no service name (for example redis+sentinel://host:26379/mymaster/0)")
    if len(pieces) > 2:
        raise ValueError("expected /SERVICE/DB after the sentinels")
    db = pieces[1] if len(pieces) == 2 else "0"
    if not db.isdigit():
        raise ValueError(f"the database '{db}' is not a number")
    return SentinelTarget(sentinels, unquote(pieces[0]), int(db), username, password)


def sentinel_host(text: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port` as (host, port); port 26379 when none is given."""
    text = text.strip()
    if not text:
        raise ValueError("an empty sentinel address (expected host:port, comma-separated)")
    if text.startswith("["):
        host, _, tail = text[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not port_text:
        return host, SENTINEL_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"the sentinel port of {host!r} is not a number in 1-65535")
    return host, int(port_text)
