"""Connection-level Redis I/O: the one place that reaches below redis-py's public API.

Store (cachectl/store.py) decides what to send and translates what fails; this module sends it
on a pooled connection and reads the replies back as fast as redis-py's own parser allows. Every
use of redis-py's private or connection-level API (`redis._parsers`, a pooled connection's
send/read calls, the connection class) is here, guarded, beside the version bound in
pyproject.toml that names this module: a redis-py that moves them falls back to its public
reading, and tests/unit/test_store_wire.py says which path ran.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from redis import exceptions as rx

T = TypeVar("T")


@dataclass(frozen=True)
class NodeRef:
    """A server cachectl talks to: the standalone server or one cluster primary."""

    host: str  # the socket path for a unix socket
    port: int | None = None

    @property
    def name(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"


_NAMING: dict[type, type] = {}


def naming_node(connection_class: type) -> type:
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
        # redis-py before 8.0 hands bytearray and memoryview to hiredis as they are, and fails.
        commands = [tuple(_as_bytes(arg) for arg in args) for args in commands]
    return conn.pack_commands(commands)


def _as_bytes(arg: Any) -> Any:
    return bytes(arg) if isinstance(arg, (bytearray, memoryview)) else arg


try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _NOT_ENOUGH_DATA
    from redis._parsers.hiredis import _HiredisParser
except ImportError:  # another redis-py: replies are read one call each
    _HiredisParser = _NOT_ENOUGH_DATA = None


# How replies are read back: by redis-py's hiredis reader in one loop, or one read_response()
# call each (redis-py without hiredis, another redis-py, fakeredis's sockets, RESP3 without push
# support in the parser).
HIREDIS, ONE_BY_ONE = "hiredis", "one by one"


def reply_path(conn: Any) -> str:
    """Which way `_read_replies` reads `conn`'s replies: HIREDIS or ONE_BY_ONE."""
    parser = getattr(conn, "_parser", None)
    if (
        _HiredisParser is None
        or type(conn).__module__ != "redis.connection"  # redis-py's own sockets (not fakeredis's)
        or type(parser) is not _HiredisParser
        or getattr(parser, "_reader", None) is None
        or (
            getattr(parser, "_hiredis_PushNotificationType", None) is None
            and str(getattr(conn, "protocol", 2)) == "3"
        )
    ):
        return ONE_BY_ONE
    return HIREDIS


def _read_replies(conn: Any, count: int) -> list:
    """`count` replies from the connection, an error reply as its exception in place.

    With redis-py's hiredis parser they are taken from its reader in one loop, the
    socket read as the parser itself does (Connection.read_response costs ~4 us a reply around
    the ~0.3 us of hiredis's own); anything else reads them one call each.
    """
    if reply_path(conn) == ONE_BY_ONE:
        replies: list = []
        for _ in range(count):
            try:
                replies.append(conn.read_response())
            except rx.ResponseError as exc:
                replies.append(exc)
        return replies
    parser = conn._parser
    reader = parser._reader
    # RESP3 may interleave push messages: they go to the parser's handler, as it does itself.
    push_type = getattr(parser, "_hiredis_PushNotificationType", None)
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


def round_trip(client: Any, commands: list[tuple]) -> list:
    """Commands sent in one write and their raw replies read back (an error reply as its
    exception, in place), on one connection of a single server's pool, retried as a
    pipeline is on a lost connection. No reply callbacks: a QUEUED stays a QUEUED.

    What redis-py's pipeline does, without its per-command bookkeeping (packing, reply
    parsing and callbacks cost ~20 us a command there, which the warm writer felt).
    """
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        packed = _pack(conn, commands)

        def exchange() -> list:
            conn.send_packed_command(packed)
            return _read_replies(conn, len(commands))

        return conn.retry.call_with_retry(exchange, lambda error: conn.disconnect())
    finally:
        pool.release(conn)


def dialogue(client: Any, talk: Generator[list[tuple], list, T]) -> T:
    """`talk` on one connection of the client's pool: it yields the commands of each write and
    is sent their raw replies (an error reply as its exception, in place); what it returns is
    returned. Nothing is retried: a dialogue may leave the connection in a state (MULTI) that a
    resend would not find. A connection the dialogue did not finish on cleanly (an error, a
    half-read reply) is dropped, never given back to the pool as it is."""
    pool = client.connection_pool
    conn = pool.get_connection()
    clean = False
    try:
        commands = next(talk)
        while True:
            conn.send_packed_command(_pack(conn, commands))
            replies = _read_replies(conn, len(commands))
            try:
                commands = talk.send(replies)
            except StopIteration as done:
                clean = True
                return done.value
    finally:
        if not clean:
            conn.disconnect()
        pool.release(conn)


class SentAhead:
    """A chain of requests on one connection of a client's pool, each next one sent before the
    caller works on the reply just read, so the server works on it meanwhile. A lost connection
    is retried with the connection's own retries and backoff: the unanswered request is sent
    again on a fresh connection."""

    def __init__(self, client: Any):
        self.client = client
        self._conn: Any = None
        self._sent = False

    def call(self, request: tuple) -> Any:
        """The reply to `request`, the first of the chain."""
        self._conn = self.client.connection_pool.get_connection()
        return self.receive(request)

    def send(self, request: tuple) -> None:
        """Sends `request` ahead; a failure is left for `receive` to retry and report."""
        try:
            self._conn.send_command(*request)
            self._sent = True
        except Exception:  # noqa: BLE001 -- receive resends it, and reports what keeps failing
            self._conn.disconnect()
            self._sent = False

    def receive(self, request: tuple) -> Any:
        """The reply to `request` (sent ahead or not), resending it on a new connection after a
        connection error, with the connection's retries and backoff."""
        conn = self._conn

        def attempt() -> Any:
            if not self._sent:
                conn.send_command(*request)
                self._sent = True
            reply = conn.read_response()
            self._sent = False
            return reply

        def failed(_error: Exception) -> None:
            self._sent = False
            conn.disconnect()

        return conn.retry.call_with_retry(attempt, failed)

    def close(self) -> None:
        if self._conn is None:
            return
        if self._sent:
            # A request sent ahead is still unanswered: the connection cannot be reused as is.
            self._conn.disconnect()
        self.client.connection_pool.release(self._conn)
        self._conn = None
