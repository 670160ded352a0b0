"""Fleet mode's fixtures: a real redis-server, and gateways sharing it as one fleet."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from harness.redis import RedisServer
from tests.support.servers import Gateway

Fleet = list[Gateway]
FleetFactory = Callable[..., Fleet]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session's fleets (each fleet has its own key prefix)."""
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def fleet_factory(gateway_factory: Any, redis_server: RedisServer) -> FleetFactory:
    """`replicas` gateways sharing the session's redis-server under one key prefix.

    A fleet is started once per set of settings (and `name`), then reused.
    """

    def factory(replicas: int = 3, *, name: str = "fleet", **settings: Any) -> Fleet:
        # One prefix per fleet: fleets on the one server must not read each other's keys.
        digest = uuid.uuid5(uuid.NAMESPACE_OID, repr(sorted(settings.items()))).hex[:8]
        shared = {"redis_url": redis_server.url, "redis_key_prefix": f"{name}-{digest}:"}
        shared.update(settings)
        # GATEWAY_REPLICA is no setting: it only makes each replica a gateway of its own.
        return [gateway_factory(replica=n, **shared) for n in range(replicas)]

    return factory


@pytest.fixture
def fleet(fleet_factory: FleetFactory) -> Fleet:
    """Three replicas with the default settings, sharing one layer."""
    return fleet_factory()
