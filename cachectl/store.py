"""The Redis service layer: how to connect to Redis and how to send to it in bulk.

What to send is decided in `cachectl.ops`. This module owns the rest: building the client from
the settings (URL, TLS, ACL user, cluster detection), retries with backoff, pacing, SCAN over
every primary, pipelined batches grouped by hash slot, and turning every redis-py error into one
CachectlError line with the URL masked (cachectl/store_errors.py words them). Connection-level
I/O (reading replies, sending ahead, dialogues on one connection) is in cachectl/store_wire.py;
no module outside these three, cachectl/library/ and cachectl/devserver.py imports redis. The
CLI imports it only inside commands, so the redis import at the top never slows `cachectl --help`.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import redis
from redis import exceptions as rx
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.connection import SSLConnection as ssl_connection
from redis.connection import parse_url
from redis.retry import Retry

from cachectl import store_sentinel
from cachectl.batches import batched
from cachectl.errors import (
    CachectlError,
    ConfigError,
    RedisPermissionError,
    RedisTimeout,
    RedisUnreachable,
)
from cachectl.keytext import reply_text
from cachectl.redact import scrub
from cachectl.store_cluster import (  # cluster_detection: re-exported
    _cluster_enabled,
    _cluster_takes_connection_class,
    cluster_detection,
)
from cachectl.store_errors import secrets, translate, user
from cachectl.store_policy import (  # Pacer, Epoch, BLIND_NOTE, worth_retrying: re-exported
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    BLIND_NOTE,
    Epoch,
    Pacer,
    _Retry,
    worth_retrying,
)
from cachectl.store_wire import (
    NodeRef,
    Reconnects,
    SentAhead,
    counting_reconnects,
    dialogue,
    naming_node,
    round_trip,
)

if TYPE_CHECKING:
    from typing_extensions import Self

    from cachectl.config import SentinelTarget, Settings

log = logging.getLogger("cachectl")

T = TypeVar("T")


class Store:
    """One Redis deployment, standalone or cluster, reached lazily on first use.

    `client` may be given (an application's own redis.Redis, or fakeredis in tests); the store
    then uses it as it is and leaves closing it to its owner. `on_warning(code, message)` hears
    what the store finds worth a warning (a cluster node used as one server); without it the
    warning goes to the "cachectl" logger.
    """

    def __init__(
        self,
        settings: Settings,
        client: Any = None,
        on_warning: Callable[[str, str], None] | None = None,
        *,
        replica: bool = False,
    ):
        # `replica`: read from a replica the sentinels name (a read-only job's --replica).
        self.replica = replica
        self.settings = settings
        self._client = client
        self._owns_client = client is None
        self._node_clients: dict[str, redis.Redis] = {}
        self.on_warning = on_warning
        self._alone_checked = False
        self._reconnects = Reconnects()
        self._info_refused = False
        self._counting: dict[type, type] = {}
        self._sentinel: Any = None  # redis.sentinel.Sentinel, for a Sentinel deployment

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for client in self._node_clients.values():
            client.close()
        self._node_clients.clear()
        if self._client is not None and self._owns_client:
            self._client.close()
            self._client = None
        if self._sentinel is not None:
            store_sentinel.close(self._sentinel)
            self._sentinel = None

    # -- connecting ------------------------------------------------------------------------

    @property
    def client(self) -> redis.Redis | RedisCluster:
        if self._client is None:
            with self.errors():
                self._client = self._connect()
        return self._client

    @property
    def is_cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    @property
    def is_sentinel(self) -> bool:
        """Whether the store reaches its primary through Redis Sentinel."""
        return self._sentinel is not None or (
            self._client is None and self.settings_sentinel() is not None
        )

    def settings_sentinel(self) -> SentinelTarget | None:
        """The Sentinel deployment the settings name, or None (a ConfigError for one that
        cannot work)."""
        return store_sentinel.target(self.settings, self._secrets())

    def sentinel_plan(self) -> store_sentinel.Plan | None:
        """How to reach a Sentinel deployment, without I/O (store_sentinel.Plan); None for a
        plain server or a cluster."""
        target = self.settings_sentinel()
        if target is None:
            return None
        kwargs = self.connection_kwargs()
        if kwargs.get("ssl"):
            self._check_tls_files()
        return store_sentinel.plan(self.settings, target, kwargs)

    def sentinel_view(self) -> dict[str, Any]:
        """What the sentinels say of the deployment (store_sentinel.view), for doctor."""
        self.client  # noqa: B018 -- connects, making self._sentinel
        target = self.settings_sentinel()
        assert target is not None and self._sentinel is not None
        return store_sentinel.view(self._sentinel, target.service, self._secrets())

    def _connect(self) -> redis.Redis | RedisCluster:
        sentinel = self.sentinel_plan()
        if sentinel is not None:
            connect = store_sentinel.connect_replica if self.replica else store_sentinel.connect
            self._sentinel, client = connect(sentinel, self._retry, self.settings.masked_url())
            return self._watched(client)
        if self.replica:
            raise store_sentinel.replica_needs_sentinel()
        plan = self.connection_plan()
        probe: redis.Redis | None = None
        try:
            step = _step(plan, None)
            if isinstance(step, dict):
                probe = self._watched(redis.Redis(retry=self._retry(), **step))
                step = _step(plan, _cluster_enabled(probe))
            cluster, kwargs = step
            if cluster:
                return self._cluster_client(kwargs)
            if probe is not None and kwargs["db"] == 0:
                # Keep the client we asked: one connection (and TLS handshake), not two.
                client, probe = probe, None
                return client
            return self._watched(redis.Redis(retry=self._retry(), **kwargs))
        finally:
            if probe is not None:
                probe.close()

    def connection_plan(
        self,
    ) -> Generator[dict[str, Any], bool | None, tuple[bool, dict[str, Any]]]:
        """How to connect for these settings, without I/O: the one set of decisions the Store
        and the asyncio library (cachectl/library/connect.py) each drive their own way.

        When cluster mode must be found out, yields the options of a client to ask
        `cluster_detection`'s questions of (database 0: a cluster node refuses to SELECT any
        other) and is sent the answer. Returns (cluster?, the options of the client to make);
        raises the ConfigError of a setting that cannot work, before any connection where it can.
        """
        kwargs = self.connection_kwargs()
        if kwargs.get("ssl"):
            self._check_tls_files()
        cluster = self.settings.cluster
        if "unix_socket_path" in kwargs:
            if cluster:
                raise ConfigError("a Redis Cluster cannot be reached over a unix socket")
            cluster = False
        if cluster is None:
            enabled = yield {**kwargs, "db": 0}
            if enabled is None:
                raise self.cluster_undetectable()
            cluster = enabled
        if not cluster:
            return False, kwargs
        db = kwargs.pop("db")
        if db:
            raise ConfigError(
                f"{self.settings.masked_url()} asks for database {db}, "
                "but a Redis Cluster has only database 0"
            )
        return True, kwargs

    def _count(self, connection_class: type) -> type:
        """`connection_class` counting this store's reconnections (see epoch())."""
        counting = self._counting.get(connection_class)
        if counting is None:
            counting = counting_reconnects(connection_class, self._reconnects)
            self._counting[connection_class] = counting
        return counting

    def _cluster_client(self, kwargs: dict[str, Any]) -> RedisCluster:
        """A cluster client whose node connections count this store's reconnections."""
        base = ssl_connection if kwargs.get("ssl") else redis.Connection
        if _cluster_takes_connection_class():
            return RedisCluster(retry=self._retry(), connection_class=self._count(base), **kwargs)
        # redis-py before 8 hands connection_class to Redis(), which refuses it: the nodes found
        # when the client starts get the counting class in their pools instead.
        client = RedisCluster(retry=self._retry(), **kwargs)
        for node in client.get_nodes():
            pool = node.redis_connection.connection_pool
            pool.connection_class = self._count(pool.connection_class)
        return client

    def _watched(self, client: redis.Redis) -> redis.Redis:
        pool = client.connection_pool
        pool.connection_class = self._count(pool.connection_class)
        return client

    def _check_tls_files(self) -> None:
        # A missing file is a setting to fix, said as such (exit 2 for a flag, 3 for the
        # environment or a file), not a TLS handshake that failed (exit 4, Redis's fault).
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self.settings.tls, name)
            if path is not None and not os.path.isfile(path):
                raise self.settings.bad_setting(f"tls.{name}", f"no such file: {path}")

    def cluster_undetectable(self) -> CachectlError:
        # Guessing is what must not happen: a cluster taken for one server lists a third of
        # the keys and deletes a third of what it should, all with exit 0.
        return RedisPermissionError(
            f"cluster mode could not be detected at {self.settings.masked_url()}: INFO is "
            f"refused to the ACL user '{self._user()}', and so are CLUSTER MYID and READONLY",
            command="INFO",
            hint="pass --cluster or --no-cluster, or set `cluster: true` or `cluster: false` in "
            "the profile, or grant the user INFO",
        )

    def cluster_node_used_alone(self) -> bool:
        """Whether cluster mode was turned off (--no-cluster, `cluster: false`) for a server
        that says it is a cluster node: then only that node's keys are covered."""
        if self.settings.cluster is not False or self.is_cluster:
            return False
        if "path" in self.client.connection_pool.connection_kwargs:
            return False
        with self.errors("INFO"):
            return bool(_cluster_enabled(self.client))

    def _warn(self, code: str, message: str) -> None:
        if self.on_warning is not None:
            self.on_warning(code, message)
        else:
            log.warning(message)

    def connection_kwargs(self) -> dict[str, Any]:
        """The keyword arguments redis-py's clients take for these settings (host and port or
        unix socket, database, ACL user and password, timeouts, TLS files), without `retry`.

        A fresh dict each call, safe to change. It holds the password: never print it.
        """
        settings = self.settings
        parsed = self._parsed_url()
        kwargs: dict[str, Any] = {
            "username": settings.username or parsed.get("username"),
            "password": settings.password or parsed.get("password"),
            "db": parsed.get("db", 0),
            "socket_connect_timeout": settings.connect_timeout,
            "socket_timeout": settings.timeout,
            "decode_responses": False,
        }
        if "path" in parsed:
            kwargs["unix_socket_path"] = parsed["path"]
        else:
            kwargs["host"] = parsed.get("host", "localhost")
            kwargs["port"] = parsed.get("port", 6379)
        if settings.url.startswith(("rediss://", "rediss+sentinel://")):
            tls = settings.tls
            kwargs.update(
                ssl=True,
                ssl_ca_certs=tls.ca_file,
                ssl_certfile=tls.cert_file,
                ssl_keyfile=tls.key_file,
                ssl_cert_reqs="required" if tls.verify else "none",
                ssl_check_hostname=tls.verify,
            )
        return kwargs

    def _parsed_url(self) -> dict[str, Any]:
        from cachectl.config import url_problem

        # Checked first in cachectl's own words: redis-py's reason may quote a piece of the
        # password (one holding a '/' is read as a port).
        problem = url_problem(self.settings.url)
        if problem:
            raise ConfigError(problem)
        target = self.settings_sentinel()
        if target is not None:
            return {"username": target.username, "password": target.password, "db": target.db}
        try:
            return parse_url(self.settings.url)
        except ValueError as exc:
            reason = scrub(str(exc), self._secrets())
            raise ConfigError(f"invalid Redis URL {self.settings.masked_url()}: {reason}") from None

    def _retry(self) -> Retry:
        backoff = ExponentialWithJitterBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS)
        return _Retry(backoff, self.settings.retries)

    # -- nodes -----------------------------------------------------------------------------

    def primaries(self) -> list[NodeRef]:
        return [node for node, _ in self.for_each_primary()]

    def for_each_primary(self) -> list[tuple[NodeRef, redis.Redis]]:
        """Every primary with a plain client for it, for per-node INFO, SCAN and DBSIZE.

        The clients retry like the store's own, which the node clients of redis-py's
        RedisCluster do not.
        """
        with self.errors():
            if not self.is_cluster:
                self._warn_if_alone()
                return [(self._standalone_node(), self.client)]
            nodes = sorted(
                (NodeRef(n.host, n.port) for n in self.client.get_primaries()),
                key=lambda n: (n.host, n.port),
            )
            return [(node, self._node_client(node)) for node in nodes]

    def _warn_if_alone(self) -> None:
        """Once per store: say that a cluster node used as one server covers its keys only."""
        if self._alone_checked:
            return
        self._alone_checked = True
        if self.cluster_node_used_alone():
            source = self.settings.sources.get("cluster", "the settings")
            self._warn(
                "cluster_node_used_alone",
                f"{self.settings.masked_url()} is a Redis Cluster node but cluster mode is off "
                f"({source}): only this node's keys are covered, not the whole cluster's",
            )

    def reachable_primary(self) -> tuple[NodeRef, redis.Redis]:
        """The first primary that answers PING, with its client: a cluster with a node down
        still has one to ask. Raises the first node's error when none answers."""
        first_error: CachectlError | None = None
        for node, client in self.for_each_primary():
            try:
                with self.errors("PING", node=node):
                    client.ping()
            except (RedisUnreachable, RedisTimeout) as err:
                first_error = first_error or err
                continue
            except RedisPermissionError:
                pass  # it answered: the user may not PING, which is the caller's to find out
            return node, client
        assert first_error is not None
        raise first_error

    def _standalone_node(self) -> NodeRef:
        if self.is_sentinel and not self.replica:
            # The primary the sentinels name now: after a failover, another node.
            host, port = self.client.connection_pool.get_master_address()
            return NodeRef(reply_text(host), int(port))
        kwargs = self.client.connection_pool.connection_kwargs
        if "path" in kwargs:
            return NodeRef(kwargs["path"])
        return NodeRef(kwargs.get("host", "localhost"), kwargs.get("port", 6379))

    def _client_of(self, node: NodeRef) -> redis.Redis | RedisCluster:
        """The client for_each_primary pairs with `node`."""
        return self._node_client(node) if self.is_cluster else self.client

    def _node_client(self, node: NodeRef) -> redis.Redis:
        client = self._node_clients.get(node.name)
        if client is None:
            kwargs = {**self.connection_kwargs(), "host": node.host, "port": node.port, "db": 0}
            client = self._node_clients[node.name] = redis.Redis(retry=self._retry(), **kwargs)
            pool = client.connection_pool
            pool.connection_class = self._count(naming_node(pool.connection_class))
        return client

    def server_info(self, section: str | None = None) -> dict[str, dict]:
        """INFO (or one section of it) from every primary, keyed by "host:port"."""
        infos = {}
        for node, client in self.for_each_primary():
            with self.errors("INFO", node=node):
                infos[node.name] = client.info(section)
        return infos

    def epoch(self) -> Epoch:
        """What a server restart or a failover changes, to compare before and after a pass over
        the data (see Epoch). Talks to every primary (INFO, else PING) first, so a connection
        the server broke since the last command is made again, and counted, now."""
        nodes = self.for_each_primary()
        # A refused INFO is asked once per store: each refusal is an entry in the ACL LOG.
        run_ids: dict[str, str | None] | None = None if self._info_refused else {}
        for node, client in nodes if run_ids is not None else ():
            try:
                with self.errors("INFO", node=node):
                    run_ids[node.name] = _text_or_none(client.info("server").get("run_id"))
            except RedisPermissionError:
                self._info_refused = True
                run_ids = None
                break
        if run_ids is None:
            for node, client in nodes:
                try:
                    with self.errors("PING", node=node):
                        client.ping()
                except RedisPermissionError:
                    pass  # answered all the same, over a live connection
        reconnects = self._reconnects.counts() if self._owns_client else None
        return Epoch(tuple(n.name for n, _ in nodes), run_ids, reconnects)

    def server_mode(self) -> str:
        """The deployment's shape: "cluster", "replica" (read-only) or "standalone"."""
        if self.is_cluster:
            return "cluster"
        with self.errors("INFO"):
            role = self.client.info("replication").get("role")
        return "replica" if role in ("slave", b"slave") else "standalone"

    def dbsize(self) -> int:
        total = 0
        for node, client in self.for_each_primary():
            with self.errors("DBSIZE", node=node):
                total += client.dbsize()
        return total

    def ping_latency(self, n: int = 5) -> list[float]:
        """Seconds each of `n` PINGs took, sent to the first primary that answers."""
        node, client = self.reachable_primary()
        latencies = []
        with self.errors("PING", node=node):
            for _ in range(n):
                started = time.perf_counter()
                client.ping()
                latencies.append(time.perf_counter() - started)
        return latencies

    def execute(self, *args: Any, **options: Any) -> Any:
        """One command, routed by redis-py (by key slot in a cluster), errors translated."""
        with self.errors(str(args[0]).upper()):
            return self.client.execute_command(*args, **options)

    def execute_on(self, node: NodeRef, *args: Any) -> Any:
        """One command on `node` (a primary from for_each_primary), errors translated naming
        it: INFO, DBSIZE, SCRIPT LOAD per node."""
        with self.errors(str(args[0]).upper(), node=node):
            return self._client_of(node).execute_command(*args)

    # -- scanning --------------------------------------------------------------------------

    def scan(
        self,
        match: str | bytes | None = None,
        count: int | None = None,
        type: str | None = None,
        pacer: Pacer | None = None,
    ) -> Iterator[bytes]:
        """Every key matching, over every primary. See scan_nodes for SCAN's guarantees."""
        for _, keys in self.scan_nodes(match=match, count=count, type=type, pacer=pacer):
            yield from keys

    def scan_nodes(
        self,
        match: str | bytes | None = None,
        count: int | None = None,
        type: str | None = None,
        pacer: Pacer | None = None,
    ) -> Iterator[tuple[NodeRef, list[bytes]]]:
        """Each SCAN reply as (node, keys), node after node, each node with its own cursor.

        SCAN's guarantees, which consumers must live with: a key present for the whole scan is
        returned at least once but may be returned more than once (dedupe or tolerate it); a
        key written or deleted during the scan may or may not be returned. A lost connection is
        retried with backoff from the cursor reached (redis-py resends the same SCAN); when the
        retries run out the RedisError's message and `details` say how far the scan got.
        The pacer is charged COUNT per SCAN call: that is the work each call asks of the server,
        however few keys MATCH keeps.
        """
        count = count or self.settings.scan_count
        nodes = self.for_each_primary()
        keys_found = 0
        for nodes_done, (node, client) in enumerate(nodes):
            cursor = 0
            while True:
                if pacer:
                    pacer.take(count)
                try:
                    cursor, keys = client.scan(cursor, match=match, count=count, _type=type)
                except (rx.RedisError, OSError) as exc:
                    error = self.translate(exc, "SCAN", node)
                    error.message += (
                        f" (the scan stopped on {node.name} after {nodes_done} of {len(nodes)} "
                        f"nodes and {keys_found} keys)"
                    )
                    error.details.update(
                        node=node.name,
                        nodes_done=nodes_done,
                        nodes_total=len(nodes),
                        keys_found=keys_found,
                    )
                    raise error from exc
                keys_found += len(keys)
                yield node, keys
                if cursor == 0:
                    break

    def sscan(self, key: str | bytes, count: int | None = None) -> Iterator[bytes]:
        """The members of one set, a SSCAN page at a time (a set may be too big for SMEMBERS).

        As with SCAN, a member may be returned more than once.
        """
        cursor = 0
        while True:
            with self.errors("SSCAN"):
                cursor, members = self.client.sscan(
                    key, cursor, count=count or self.settings.scan_count
                )
            yield from members
            if cursor == 0:
                return

    # -- bulk writes and reads -------------------------------------------------------------

    def unlink(
        self,
        keys: Iterable[str | bytes],
        batch_size: int | None = None,
        pacer: Pacer | None = None,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> int:
        """UNLINK the keys in batches; returns how many existed and were removed.

        In a cluster each UNLINK holds the keys of one hash slot (a multi-key command may not
        cross slots) and each batch reaches each node in one pipelined round trip.
        `on_batch(n_sent, n_removed)` is called after every batch.
        """
        removed_total = 0
        for batch in batched(keys, batch_size or self.settings.batch_size):
            if pacer:
                pacer.take(len(batch))
            removed, _ = self.unlink_batch(batch)
            removed_total += removed
            if on_batch:
                on_batch(len(batch), removed)
        return removed_total

    def unlink_batch(self, keys: list, *extra: tuple) -> tuple[int, list]:
        """UNLINK one batch of keys, with `extra` commands (such as ZREM of the keys from an
        index) in the same pipelined round trip; returns (keys removed, replies to `extra`).

        The extra commands are not ordered against the UNLINKs in a cluster (they may run on
        other nodes first): send nothing here that must wait for the keys to be gone.
        """
        with self.errors("UNLINK"):
            pipe = self.client.pipeline(transaction=False)
            groups = self._by_slot(keys) if keys else []
            for group in groups:
                pipe.execute_command("UNLINK", *group)
            for command in extra:
                pipe.execute_command(*command)
            replies = pipe.execute()
        return sum(replies[: len(groups)]), replies[len(groups) :]

    def _by_slot(self, keys: list) -> list[list]:
        if not self.is_cluster:
            return [keys]
        groups: dict[int, list] = defaultdict(list)
        for key in keys:
            groups[self.client.keyslot(key)].append(key)
        return list(groups.values())

    def pipelined(
        self, command: str, keys: Iterable[str | bytes], *args: Any, batch_size: int | None = None
    ) -> list:
        """`command key *args` for every key, pipelined in batches; the replies in key order.

        In a cluster redis-py's pipeline routes each command by its key's slot, one round trip
        per node per batch.
        """
        replies: list = []
        for batch in batched(keys, batch_size or self.settings.batch_size):
            with self.errors(command):
                pipe = self.client.pipeline(transaction=False)
                for key in batch:
                    pipe.execute_command(command, key, *args)
                replies.extend(pipe.execute())
        return replies

    def ttls(self, keys: Iterable[str | bytes], *, ms: bool = False) -> list[int]:
        """Each key's TTL in seconds (milliseconds with ms=True): -2 missing, -1 no expiry."""
        return self.pipelined("PTTL" if ms else "TTL", keys)

    def types(self, keys: Iterable[str | bytes]) -> list[str]:
        """Each key's type ("string", "set"...; "none" when missing)."""
        if self.is_cluster:
            return [reply_text(reply) for reply in self.pipelined("TYPE", keys)]
        types: list[str] = []
        for batch in batched(keys, self.settings.batch_size):
            with self.errors("TYPE"):
                for reply in self._raw_round_trip([("TYPE", key) for key in batch]):
                    if isinstance(reply, Exception):
                        raise reply
                    types.append(reply_text(reply))
        return types

    def memory_usage(self, keys: Iterable[str | bytes], samples: int = 0) -> list[int | None]:
        """Bytes each key takes (None when missing); samples=0 measures whole collections."""
        return self.pipelined("MEMORY USAGE", keys, "SAMPLES", samples)

    def exists_many(self, keys: Iterable[str | bytes]) -> list[bool]:
        return [bool(reply) for reply in self.pipelined("EXISTS", keys)]

    def count_existing(self, keys: Iterable[str | bytes], batch_size: int | None = None) -> int:
        """How many of the keys exist (a key named twice counts twice): one multi-key EXISTS
        per batch, or per hash slot of the batch in a cluster, pipelined."""
        total = 0
        for batch in batched(keys, batch_size or self.settings.batch_size):
            with self.errors("EXISTS"):
                pipe = self.client.pipeline(transaction=False)
                for group in self._by_slot(batch):
                    pipe.execute_command("EXISTS", *group)
                total += sum(pipe.execute())
        return total

    def smembers_batched(self, keys: Iterable[str | bytes]) -> list[set[bytes]]:
        """The members of many small sets, pipelined. Use sscan for one big set."""
        return [set(reply) for reply in self.pipelined("SMEMBERS", keys)]

    def send_many(self, commands: Sequence[tuple]) -> list:
        """Different commands in one pipelined round trip (in a cluster, one per node, each
        command routed by its key's slot); the replies in order. A command the server refuses
        (WRONGTYPE, NOPERM...) gets its CachectlError in its place; a lost connection is retried
        like every call, then raised."""
        with self.errors(_names(commands)):
            pipe = self.client.pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            replies = pipe.execute(raise_on_error=False)
        return [
            self.translate(r, str(args[0])) if isinstance(r, Exception) else r
            for r, args in zip(replies, commands)
        ]

    def transactions(self, groups: Sequence[Sequence[tuple]]) -> list:
        """Each group as its own MULTI/EXEC, every group in one pipelined round trip.

        A group is applied whole or not at all as far as Redis allows: one refused while queued
        (NOPERM, a bad command) is discarded by EXEC, and a connection lost before EXEC discards
        it too. Per group: its raw replies (a runtime error such as WRONGTYPE as a CachectlError
        in its place), or the CachectlError that discarded it. Single server only: in a cluster
        one transaction cannot span keys of different slots.
        """
        if self.is_cluster:
            raise TypeError("transactions() needs a single server; use send_many() in a cluster")
        commands = [c for group in groups for c in (("MULTI",), *group, ("EXEC",))]
        with self.errors("EXEC"):
            replies = self._raw_round_trip(commands)
        out: list = []
        at = 0
        for group in groups:
            # A refused MULTI comes first: the group then ran outside a transaction, if at all.
            queued = list(zip(replies[at : at + 1 + len(group)], [("MULTI",), *group]))
            executed = replies[at + 1 + len(group)]
            at += len(group) + 2
            refused = next(((r, args) for r, args in queued if isinstance(r, Exception)), None)
            if refused is not None:
                out.append(self.translate(refused[0], str(refused[1][0])))
            elif isinstance(executed, Exception):
                out.append(self.translate(executed, "EXEC"))
            else:
                out.append(
                    [
                        self.translate(r, str(args[0])) if isinstance(r, Exception) else r
                        for r, args in zip(executed, group)
                    ]
                )
        return out

    def _raw_round_trip(self, commands: list[tuple]) -> list:
        """Commands sent in one write and their raw replies read back (an error reply as its
        exception, in place), on one connection of a single server's pool, retried as a
        pipeline is on a lost connection. No reply callbacks: a QUEUED stays a QUEUED.

        What redis-py's pipeline does, without its per-command bookkeeping (packing, reply
        parsing and callbacks cost ~20 us a command there, which the warm writer felt).
        """
        return round_trip(self.client, commands)

    # -- conversations on one connection ----------------------------------------------------

    def exchange(self, node: NodeRef, talk: Generator[list[tuple], list, T], command: str) -> T:
        """`talk` on one connection to `node` (a primary from for_each_primary): it yields the
        commands of each write, all sent at once, and is sent their replies (a refused one as
        its CachectlError, in place); what it returns is returned. For a dialogue whose next
        write depends on the last replies, such as a MULTI confirmed alone before anything is
        queued in it. Not retried; a connection left mid-dialogue is dropped. An error that is
        no reply (lost connection, timeout) is raised as `command`'s."""

        def translated() -> Generator[list[tuple], list, T]:
            commands = next(talk)
            while True:
                replies = yield commands
                replies = [
                    self.translate(r, str(args[0]), node) if isinstance(r, Exception) else r
                    for r, args in zip(replies, commands)
                ]
                try:
                    commands = talk.send(replies)
                except StopIteration as done:
                    return done.value

        with self.errors(command, node=node):
            return dialogue(self._client_of(node), translated())

    def pages(
        self,
        node: NodeRef,
        request: tuple,
        following: Callable[[Any], tuple | None],
        command: str,
    ) -> Iterator[Any]:
        """The replies to a chain of requests on one connection to `node` (a primary from
        for_each_primary), without reply callbacks: `request` first, then `following(reply)`
        of each reply until it says None. Each next request is sent before its reply's
        predecessor is yielded, so the server works on it while the caller works on the page.
        A lost connection is retried with the store's backoff, the unanswered request sent
        again; errors are raised as `command`'s. Close the generator (or run it out) to give
        the connection back."""
        chain = SentAhead(self._client_of(node))
        try:
            with self.errors(command):
                reply = chain.call(request)
            while True:
                ahead = following(reply)
                if ahead is not None:
                    chain.send(ahead)
                yield reply
                if ahead is None:
                    return
                with self.errors(command):
                    reply = chain.receive(ahead)
        finally:
            chain.close()

    def scan_page(
        self,
        node: NodeRef,
        cursor: int | bytes,
        match: str | bytes | None = None,
        count: int | None = None,
        type: str | None = None,
    ) -> tuple[int, list[bytes]]:
        """One SCAN call on `node`: (next cursor, keys)."""
        with self.errors("SCAN"):
            return self._client_of(node).scan(cursor, match=match, count=count, _type=type)

    def send_many_to(self, node: NodeRef, commands: Sequence[tuple], command: str) -> list:
        """Commands in one pipelined round trip to `node`, the raw replies in order (a refused
        command's error in its place, untranslated, for the caller to word). Other errors are
        raised as `command`'s."""
        with self.errors(command):
            pipe = self._client_of(node).pipeline(transaction=False)
            for args in commands:
                pipe.execute_command(*args)
            return pipe.execute(raise_on_error=False)

    @contextmanager
    def pipeline(self, command: str) -> Iterator[Any]:
        """A redis-py pipeline without MULTI (in a cluster each command routed by its key's
        slot) to fill and execute inside the block, with redis-py's reply parsing (HGETALL as a
        dict, WITHSCORES as pairs); errors inside raised as `command`'s."""
        with self.errors(command):
            yield self.client.pipeline(transaction=False)

    def scored_range(
        self,
        key: str | bytes,
        low: int | str,
        high: int | str,
        *,
        newest_first: bool = False,
        start: int | None = None,
        num: int | None = None,
    ) -> list[tuple[bytes, float]]:
        """ZRANGEBYSCORE key low high WITHSCORES (ZREVRANGEBYSCORE key high low with
        `newest_first`), optionally LIMIT start num: (member, score) pairs."""
        if newest_first:
            with self.errors("ZREVRANGEBYSCORE"):
                return self.client.zrevrangebyscore(
                    key, high, low, start=start, num=num, withscores=True
                )
        with self.errors("ZRANGEBYSCORE"):
            return self.client.zrangebyscore(key, low, high, start=start, num=num, withscores=True)

    def permission_refused(self, reason: str, command: str | None = None) -> CachectlError:
        """The error for a refusal by the ACL that Redis reported in other words (inside a
        script, say), worded as a refused `command` sent on its own is."""
        return self.translate(rx.NoPermissionError(reason), command)

    @staticmethod
    def script_forgotten(reply: Any) -> bool:
        """Whether a raw pipeline reply is NOSCRIPT: the server no longer holds the script
        (a restart, a failover, SCRIPT FLUSH)."""
        return isinstance(reply, rx.NoScriptError)

    # -- errors ----------------------------------------------------------------------------

    @contextmanager
    def errors(self, command: str | None = None, node: NodeRef | None = None) -> Iterator[None]:
        """Raise every redis-py or socket error inside as the CachectlError translate() makes.
        `node`: the server the commands inside go to, when the caller knows it."""
        try:
            yield
        except CachectlError:
            raise
        except (rx.RedisError, rx.RedisClusterException, OSError) as exc:
            raise self.translate(exc, command, node) from exc

    def translate(
        self, exc: BaseException, command: str | None = None, node: NodeRef | None = None
    ) -> CachectlError:
        """The CachectlError for a redis-py (or socket) error: one line, URL masked, no secret
        (see cachectl.store_errors.translate)."""
        cluster = isinstance(self._client, RedisCluster)
        return translate(self.settings, exc, command, node, cluster=cluster)

    def _secrets(self) -> list[str]:
        return secrets(self.settings)

    def _user(self) -> str:
        return user(self.settings)


def _step(plan: Generator[Any, Any, T], reply: Any) -> Any:
    """The plan's next request, or what it returned."""
    try:
        return plan.send(reply)
    except StopIteration as done:
        return done.value


def _names(commands: Sequence[tuple]) -> str:
    """The distinct command names of a pipeline, for an error message: "SET, SADD"."""
    return ", ".join(dict.fromkeys(str(args[0]).upper() for args in commands)) or "a pipeline"


def _text_or_none(reply: Any) -> str | None:
    return None if reply is None else reply_text(reply)


__all__ = [
    "BLIND_NOTE",
    "Epoch",
    "NodeRef",
    "Pacer",
    "Store",
    "cluster_detection",
    "worth_retrying",
]
