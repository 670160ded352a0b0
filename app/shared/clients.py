"""redis-py's own clients for each topology the gateway serves: one server (`Redis`), a
Cluster (`RedisCluster`: slots discovered from the seed nodes, MOVED/ASK followed), or a
primary found through Sentinel (`Sentinel.master_for`: a failover followed on reconnect).
The gateway writes no topology code of its own: it decides keys, hash tags, time limits,
and what to do when the layer fails."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.redis_target import RedisTarget
from app.settings import Settings

CLIENT_NAME = "proxy-session-gateway"


def connect(
    target: RedisTarget, settings: Settings, *, max_connections: int, listening: bool
) -> Any:
    """A client for `target`: for commands (every operation limited to the shared layer's
    timeout, one retry on a new connection when a pooled one turns out dead), or for
    listening to notices (`listening`: no read limit, a longer connect limit, keep-alive)."""
    options: dict[str, Any] = {
        "socket_connect_timeout": settings.redis_timeout_seconds,
        "client_name": CLIENT_NAME,
        "max_connections": max_connections,
        # A connection pooled before the server restarted fails on first use: once more, on
        # a new connection, within the same time limit. Else each pooled connection counts
        # a failure after the server's return. The guard bounds the time either way.
        "retry": Retry(NoBackoff(), 1, (RedisConnectionError,)),
    }
    if listening:
        # Off the request path: it may take longer to connect (a replica starting on a
        # busy node), and it waits for messages without a limit.
        options["socket_connect_timeout"] = max(1.0, settings.redis_timeout_seconds)
        options["socket_keepalive"] = True
        options["retry"] = Retry(NoBackoff(), 0)
    else:
        options["socket_timeout"] = settings.redis_timeout_seconds
    password = settings.redis_password or target.password
    if password is not None:
        options["password"] = password
    if target.tls and settings.redis_ca_file is not None:
        options["ssl_ca_certs"] = str(settings.redis_ca_file)
    if target.topology == "cluster":
        return _cluster(target, options)
    if target.topology == "sentinel":
        return _sentinel(target, options)
    if listening:
        options["health_check_interval"] = 5
    url = target.url if settings.redis_password is None else _without_password(target.url)
    return Redis.from_url(url, **options)


def _without_password(url: str) -> str:
    """`url` without the password in it: redis-py lets a URL's password win over the one
    given beside it, and `GATEWAY_REDIS_PASSWORD_FILE` must win."""
    parts = urlsplit(url)
    userinfo, at, hostinfo = parts.netloc.rpartition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}@{hostinfo}" if user else hostinfo))


def _cluster(target: RedisTarget, options: dict[str, Any]) -> RedisCluster:
    if target.username is not None:
        options["username"] = target.username
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        ssl=target.tls,
        **options,
    )


def _sentinel(target: RedisTarget, options: dict[str, Any]) -> Redis:
    if target.username is not None:
        options["username"] = target.username
    if target.tls:
        options["ssl"] = True
    # The Sentinels take the same credentials and TLS, and the same time limits.
    sentinel_options = {
        name: value
        for name, value in options.items()
        if name.startswith(("socket_", "ssl", "password", "username"))
    }
    # redis-py's asyncio Sentinel is not annotated.
    sentinels = Sentinel(  # type: ignore[no-untyped-call]
        list(target.nodes), sentinel_kwargs=sentinel_options, **options
    )
    client: Redis = sentinels.master_for(target.service or "", db=target.db)
    return client


class Once:
    """Runs `work` until it has succeeded once; callers meanwhile wait for the one run, which
    a caller's own time limit never cancels (a Cluster client must discover its slots once,
    before concurrent first commands race to do it, half-done)."""

    def __init__(self, work: Callable[[], Awaitable[object]]) -> None:
        self._work = work
        self._done = False
        self._task: asyncio.Task[None] | None = None

    async def __call__(self) -> None:
        """Return once `work` has succeeded; raise what its latest run raised."""
        if self._done:
            return
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
            # Retrieved here, should every caller have given up waiting for it.
            self._task.add_done_callback(_retrieve)
        await asyncio.shield(self._task)

    async def _run(self) -> None:
        await self._work()
        self._done = True


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.exception()


def first_use(client: Any) -> Once | None:
    """What a client must do once before its first command (a Cluster: find its slots)."""
    return Once(client.initialize) if isinstance(client, RedisCluster) else None
