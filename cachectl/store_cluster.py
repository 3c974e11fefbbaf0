"""How the Store finds out whether a server is a Redis Cluster node, and what this redis-py's
cluster client takes (moved out of cachectl/store.py, which re-exports them)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import redis
from redis import exceptions as rx


def cluster_detection() -> Generator[tuple, Any, bool | None]:
    """The questions that tell whether a server is a cluster node, without I/O (the Store and
    the asyncio library ask them, each its own way): yields each command to send, is sent back
    its reply or the ResponseError it raised, and returns whether the server is a cluster node,
    or None when this user may not find out.

    INFO says it. A user refused INFO (`-@dangerous` takes it) is asked CLUSTER MYID (@slow:
    allowed to anyone who can use a cluster through redis-py, which needs CLUSTER SLOTS), then
    READONLY (@connection; harmless on a primary): a cluster node answers them, a server
    without cluster support refuses both with "cluster support disabled". Never a guess: a
    cluster taken for one server silently covers one node.
    """
    info = yield ("INFO", "cluster")
    if not isinstance(info, rx.ResponseError):  # else NOPERM, or a proxy that keeps INFO
        return str(info.get("cluster_enabled", 0)) == "1"
    for probe in (("CLUSTER", "MYID"), ("READONLY",)):
        answer = yield probe
        if not isinstance(answer, rx.ResponseError):
            return True
        if "cluster support disabled" in str(answer).lower():
            return False
        # refused to this user, or renamed away: ask the next
    return None


def _cluster_enabled(client: redis.Redis) -> bool | None:
    """cluster_detection's questions, asked of `client`."""
    questions = cluster_detection()
    command = next(questions)
    while True:
        try:
            reply = client.execute_command(*command)
        except rx.ResponseError as exc:
            reply = exc
        try:
            command = questions.send(reply)
        except StopIteration as done:
            return done.value


_TAKES_CONNECTION_CLASS: list[bool] = []


def _cluster_takes_connection_class() -> bool:
    """Whether this redis-py's cluster client builds its nodes' pools with a connection_class
    given to it (8.x), rather than passing it to Redis() (7.x, which refuses it)."""
    if not _TAKES_CONNECTION_CLASS:
        import inspect

        from redis.cluster import NodesManager

        try:
            source = inspect.getsource(NodesManager.create_redis_node)
        except (OSError, TypeError):
            source = ""
        _TAKES_CONNECTION_CLASS.append(
            "connection_class" in source or int(redis.__version__.split(".")[0]) >= 8
        )
    return _TAKES_CONNECTION_CLASS[0]
