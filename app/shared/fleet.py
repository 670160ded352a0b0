"""Builds the shared layer from the settings, and owns its connections for the process's life.

One client for commands (every operation limited to `GATEWAY_REDIS_TIMEOUT_SECONDS`) and one
for the notices, which waits for messages without a time limit; each is redis-py's own
client for the topology `GATEWAY_REDIS_URL` names (`clients.connect`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from opentelemetry import trace

from app.domain.types import SessionKey
from app.settings import Settings
from app.shared.callers import FleetCallerRates, LocalRates
from app.shared.clients import Once, connect, first_use
from app.shared.codec import Codec, Lifetimes
from app.shared.guard import Guard, SharedObserver
from app.shared.keyring import Keyring
from app.shared.layer import SharedLayer
from app.shared.notices import NoticeCodec, NoticeObserver, Notices
from app.shared.quota import FleetQuota, RateObserver, Split
from app.shared.replicas import Replicas

log = logging.getLogger(__name__)

WARM_SECONDS = 5.0
"""How long the start-up may spend making the client ready in the background."""
MAX_CONNECTIONS = 128
"""Command connections per process (beyond them an operation fails and counts as one)."""


class FleetObserver(SharedObserver, RateObserver, NoticeObserver, Protocol):
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
        target = settings.redis_target
        if target is None:
            raise ValueError("fleet mode needs GATEWAY_REDIS_URL")
        self.replica = secrets.token_hex(6)
        self.topology = target.description
        self._commands = connect(target, settings, max_connections=MAX_CONNECTIONS, listening=False)
        self._listener = connect(target, settings, max_connections=4, listening=True)
        sharded = target.topology == "cluster"  # SSUBSCRIBE/SPUBLISH: a Cluster's pub/sub
        prefix = settings.redis_key_prefix
        self._first_use = first_use(self._commands)
        self._warming: asyncio.Task[None] | None = None
        self.guard = Guard(
            settings.redis_timeout_seconds, observer, tracer=tracer, prepare=self._first_use
        )
        keys = settings.encryption_keys
        keyring = Keyring(keys) if keys else None
        channel = prefix + "events"
        self.notices = Notices(
            self._listener,
            channel,
            self.replica,
            self.guard,
            NoticeCodec(keyring, channel, wall),
            observer,
            on_invalidate,
            sharded=sharded,
        )
        lifetimes = Lifetimes(
            found=settings.cache_ttl_seconds,
            closed=settings.closed_cache_ttl_seconds,
            not_found=settings.negative_cache_ttl_seconds,
            keep=max(settings.stale_if_error_seconds, settings.stale_while_revalidate_seconds),
        )
        self.layer = SharedLayer(
            self._commands,
            Codec(keyring, lifetimes, wall=wall, mask=settings.mask_phone_numbers == "all"),
            self.guard,
            self.notices,
            prefix=prefix,
            replica=self.replica,
            # A lease never outlives the call it stands for.
            lease_seconds=settings.upstream_timeout_seconds,
            wall=wall,
            sharded=sharded,
        )
        self.quota: FleetQuota | None = None
        if settings.upstream_rate_limit:
            split = Split.of(
                settings.upstream_rate_limit,
                settings.upstream_rate_reserve,
                settings.fleet_max_replicas,
            )
            self.quota = FleetQuota(
                self._commands, prefix, self.replica, split, self.guard, observer
            )
            _warn_if_reserve_is_thin(settings, split)
        # The replicas are counted when a caller's rate has to be shared out without Redis.
        self.replicas: Replicas | None = None
        self.caller_rates: FleetCallerRates | None = None
        if local_caller_rates is not None:
            self.replicas = Replicas(self._commands, prefix, self.replica, self.guard)
            self.caller_rates = FleetCallerRates(
                self._commands, prefix, self.replicas, self.guard, local_caller_rates
            )
        log.info("fleet mode: shared cache layer configured", extra={"topology": self.topology})
        if not keys:
            log.warning(
                "the shared cache layer stores sessions unencrypted and takes notices "
                "unauthenticated: set GATEWAY_CACHE_ENCRYPTION_KEY_FILE to encrypt the one and "
                "authenticate the other"
            )

    def start(self) -> None:
        """Start listening for notices (and the replicas' heartbeat); no connection is needed
        yet: a shared layer that is down at start is one that is down."""
        self.notices.start()
        if self.replicas is not None:
            self.replicas.start()
        if self._first_use is not None:
            # Before the first request, when it can: a first command then finds it done.
            self._warming = asyncio.create_task(self._warm(self._first_use))

    async def _warm(self, first_use: Once) -> None:
        with contextlib.suppress(Exception):  # the first operations try again, and count it
            async with asyncio.timeout(WARM_SECONDS):
                await first_use()

    async def close(self) -> None:
        """Stop the background work and close the connections."""
        if self._warming is not None:
            self._warming.cancel()
        await self.layer.close()
        await self.notices.close()
        self.guard.close()
        if self.replicas is not None:
            await self.replicas.close()
        for client in (self._commands, self._listener):
            await client.aclose()


def _warn_if_reserve_is_thin(settings: Settings, split: Split) -> None:
    """Say at start when the reserve cannot hold the bound for every partition: replicas cut
    off together each make their one call, and a one-second window can hold them all."""
    limit, replicas = settings.upstream_rate_limit, settings.fleet_max_replicas
    reserve = limit - split.shared
    if settings.upstream_rate_reserve == 0 or replicas * split.alone <= reserve:
        return
    needed = replicas / limit
    remedy = (
        f"raise GATEWAY_UPSTREAM_RATE_RESERVE to at least {needed:.2f}"
        if needed < 1
        else "the limit is less than a call a second for each replica"
    )
    log.warning(
        f"the AWS rate limit holds for up to {reserve // split.alone} replicas cut off from "
        f"the shared layer at once, not all {replicas}: {remedy}",
        extra={"shared_calls": split.shared, "reserve_calls": reserve},
    )
