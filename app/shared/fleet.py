"""Builds the shared layer from the settings, and owns its connections for the process's life.

One connection pool for commands (every operation limited to `GATEWAY_REDIS_TIMEOUT_SECONDS`,
no retries but one on a new connection when a pooled one turns out dead: the guard decides)
and one connection for the notices, which waits for messages without a time limit and is
watched by health checks instead.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from opentelemetry import trace
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app.domain.types import SessionKey
from app.settings import Settings
from app.shared.callers import FleetCallerRates, LocalRates
from app.shared.codec import Codec
from app.shared.guard import Guard, SharedObserver
from app.shared.keyring import Keyring
from app.shared.layer import SharedLayer
from app.shared.notices import Notices
from app.shared.quota import FleetQuota, RateObserver
from app.shared.replicas import Replicas

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 128
"""Command connections per process (beyond them an operation fails and counts as one)."""


class FleetObserver(SharedObserver, RateObserver, Protocol):
    """Everything the shared layer reports."""


class Fleet:
    """The shared layer (`layer`), the fleet's quota (`quota`, when a limit is set), the
    callers' budgets (`caller_rates`, when a per-caller rate is set), and their connections."""

    def __init__(
        self,
        settings: Settings,
        observer: FleetObserver,
        on_invalidate: Callable[[SessionKey], None],
        wall: Callable[[], float] = time.time,
        *,
        local_caller_rates: LocalRates | None = None,
        tracer: trace.Tracer | None = None,
    ) -> None:
        """With `local_caller_rates` (the per-caller rate is on), each caller's AWS calls are
        counted fleet-wide, and by `local_caller_rates` while the shared layer is down."""
        if settings.redis_url is None:
            raise ValueError("fleet mode needs GATEWAY_REDIS_URL")
        url = settings.redis_url.get_secret_value()
        self.replica = secrets.token_hex(6)
        common: dict[str, Any] = {
            "socket_connect_timeout": settings.redis_timeout_seconds,
            "retry": Retry(NoBackoff(), 0),
            "client_name": "proxy-session-gateway",
        }
        if settings.redis_password is not None:
            common["password"] = settings.redis_password
        # A connection pooled before the server restarted fails on first use: once more, on
        # a new connection, within the same time limit. Else each pooled connection counts a
        # failure (a WARNING each way) after the server's return.
        retrying = {**common, "retry": Retry(NoBackoff(), 1, (RedisConnectionError,))}
        self._commands = Redis.from_url(
            url,
            socket_timeout=settings.redis_timeout_seconds,
            max_connections=MAX_CONNECTIONS,
            **retrying,
        )
        # The notices' connection is off the request path: it may take longer to connect
        # (a replica starting on a busy node), and waits for messages without a limit.
        listening = {**common, "socket_connect_timeout": max(1.0, settings.redis_timeout_seconds)}
        self._listener = Redis.from_url(
            url, socket_keepalive=True, health_check_interval=5, max_connections=4, **listening
        )
        prefix = settings.redis_key_prefix
        self.guard = Guard(settings.redis_timeout_seconds, observer, tracer=tracer)
        keys = settings.encryption_keys
        self.notices = Notices(
            self._listener, prefix + "events", self.replica, self.guard, on_invalidate
        )
        self.layer = SharedLayer(
            self._commands,
            Codec(Keyring(keys) if keys else None),
            self.guard,
            self.notices,
            prefix=prefix,
            replica=self.replica,
            # The lease lasts the upstream deadline: a holder that dies delays the others by
            # no more than its call could have taken.
            lease_seconds=settings.upstream_timeout_seconds,
            wall=wall,
        )
        # The replicas are counted when a fleet-wide limit has to be shared out without Redis.
        self.replicas: Replicas | None = None
        if settings.upstream_rate_limit or local_caller_rates is not None:
            self.replicas = Replicas(self._commands, prefix, self.replica, self.guard)
        self.quota: FleetQuota | None = None
        if settings.upstream_rate_limit and self.replicas is not None:
            self.quota = FleetQuota(
                self._commands,
                prefix,
                self.replicas,
                settings.upstream_rate_limit,
                self.guard,
                observer,
            )
        self.caller_rates: FleetCallerRates | None = None
        if local_caller_rates is not None and self.replicas is not None:
            self.caller_rates = FleetCallerRates(
                self._commands, prefix, self.replicas, self.guard, local_caller_rates
            )
        if not keys:
            log.warning(
                "the shared cache layer stores sessions unencrypted: set "
                "GATEWAY_CACHE_ENCRYPTION_KEY_FILE to encrypt them at rest"
            )

    def start(self) -> None:
        """Start listening for notices (and the replicas' heartbeat); no connection is needed
        yet: a shared layer that is down at start is one that is down."""
        self.notices.start()
        if self.replicas is not None:
            self.replicas.start()

    async def close(self) -> None:
        """Stop the background work and close the connections."""
        await self.layer.close()
        await self.notices.close()
        if self.replicas is not None:
            await self.replicas.close()
        for client in (self._commands, self._listener):
            await client.aclose()
