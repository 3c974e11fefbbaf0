"""Connection-level Redis I/O: the one place that reaches below redis-py's public API.

Store (cachectl/store.py) decides what to send and translates what fails; this module sends it
on a pooled connection and reads the replies back as fast as redis-py's own parser allows. Every
use of redis-py's private or connection-level API (`redis._parsers`, a pooled connection's
send/read calls, the connection class) is here, guarded, beside the version bound in
pyproject.toml that names this module: a redis-py that moves them falls back to its public
reading, and tests/unit/test_store_wire.py says which path ran.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis import exceptions as rx


@dataclass(frozen=True)
class NodeRef:
    """A server cachectl talks to: the standalone server or one cluster primary."""

    host: str  # the socket path for a unix socket
    port: int | None = None

    @property
    def name(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


_NAMING: dict[type, type] = {}


def _naming_node(connection_class: type) -> type:
    """`connection_class` whose errors carry the server they came from (`cachectl_node`).

    For the per-node clients: redis-py names the server of a socket error, but not of a
    refused AUTH or command, and a cluster's nodes may differ there (ACL users are per node).
    """
    named = _NAMING.get(connection_class)
    if named is None:

        def naming(method: Callable) -> Callable:
            def call(self, *args, **kwargs):
                try:
                    return method(self, *args, **kwargs)
                except Exception as exc:
                    if getattr(exc, "cachectl_node", None) is None:
                        exc.cachectl_node = NodeRef(self.host, self.port)
                    raise

            return call

        methods = ("connect", "send_packed_command", "read_response")
        named = _NAMING[connection_class] = type(
            f"Naming{connection_class.__name__}",
            (connection_class,),
            {name: naming(getattr(connection_class, name)) for name in methods},
        )
    return named


try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # redis[hiredis] is a dependency, but redis-py works without it
    _hiredis_pack = None


def _pack(conn: Any, commands: list[tuple]) -> list:
    """The commands in RESP, as the chunks send_packed_command takes."""
    if _hiredis_pack is not None:
        try:
            return [b"".join([_hiredis_pack(args) for args in commands])]
        except TypeError:  # an argument hiredis does not take: redis-py says which
            pass
    return conn.pack_commands(commands)


try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _HiredisParser
except ImportError:  # another redis-py: replies are read one call each
    _HiredisParser = _NOT_ENOUGH_DATA = None


def _read_replies(conn: Any, count: int) -> list:
    """`count` replies from the connection, an error reply as its exception in place.

    With redis-py's hiredis parser they are taken from its reader in one loop, the
    socket read as the parser itself does (Connection.read_response costs ~4 us a reply around
    the ~0.3 us of hiredis's own); anything else reads them one call each.
    """
    parser = getattr(conn, "_parser", None)
    reader = getattr(parser, "_reader", None)
    # RESP3 may interleave push messages: they go to the parser's handler, as it does itself.
    push_type = getattr(parser, "_hiredis_PushNotificationType", None)
    if (
        _HiredisParser is None
        or type(conn).__module__ != "redis.connection"  # redis-py's own sockets (not fakeredis's)
        or type(parser) is not _HiredisParser
        or reader is None
        or (push_type is None and str(getattr(conn, "protocol", 2)) == "3")
    ):
        replies: list = []
        for _ in range(count):
            try:
                replies.append(conn.read_response())
            except rx.ResponseError as exc:
                replies.append(exc)
        return replies
    replies = []
    try:
        while len(replies) < count:
            reply = reader.gets()
            if reply is _NOT_ENOUGH_DATA:
                parser.read_from_socket()
            elif isinstance(reply, rx.ConnectionError):  # LOADING and the like: retried
                raise reply
            elif push_type is not None and isinstance(reply, push_type):
                parser.handle_push_response(reply)
            else:
                replies.append(reply)
    except OSError as exc:
        conn.disconnect()
        raise rx.ConnectionError(f"Error while reading from the server: {exc}") from exc
    except BaseException:
        conn.disconnect()  # never leave unread replies on a pooled connection
        raise
    return replies
