"""The per-caller upstream rate in fleet mode: a caller's AWS calls are counted in the
shared layer, whichever replica they reach; without the shared layer, each replica counts
on its own and no request fails for it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from app.observability.metrics import Metrics
from app.service.callers import CallerRates
from app.shared.callers import FleetCallerRates
from app.shared.guard import Guard
from app.shared.replicas import Replicas
from harness.redis import RedisServer
from tests.shared.conftest import FleetFactory
from tests.shared.test_failures import new_key, settings, started
from tests.support.clock import Clock
from tests.support.servers import Emulator, free_port

RATE = 0.2
"""One call, then one more every five seconds: no refill within a test's few requests."""
ONE = {"Authorization": "Bearer token-one"}
TWO = {"Authorization": "Bearer token-two"}


def test_a_callers_budget_is_the_fleets_not_each_replicas(
    fleet_factory: FleetFactory, emulator: Emulator, redis_server: RedisServer
) -> None:
    first, second = fleet_factory(
        2, name="callers", caller_upstream_rate=RATE, auth_tokens="token-one,token-two"
    )
    keys = [new_key(emulator) for _ in range(4)]

    spent = first.get_session(*keys[0], headers=ONE)
    elsewhere = second.get_session(*keys[1], headers=ONE)  # the same caller, another replica
    other = second.get_session(*keys[2], headers=TWO)  # another caller has a budget of its own
    hit = second.get_session(*keys[0], headers=ONE)  # the fleet's cache: costs nothing

    assert (spent.status_code, elsewhere.status_code, other.status_code) == (200, 429, 200)
    assert elsewhere.json()["code"] == "THROTTLED"
    assert "upstreamCode" not in elsewhere.json()
    assert hit.status_code == 200
    assert [emulator.calls(*key) for key in keys[:3]] == [1, 0, 1]
    # The budgets are kept under digests: no token (nor address, nor JWT sub) in a key name.
    names = list(redis_server.call("KEYS", "callers-*caller:*"))
    assert len(names) == 2
    assert not any(b"token-" in name for name in names)


def test_without_the_shared_layer_each_replica_counts_its_callers_itself(
    emulator: Emulator, tmp_path: Path
) -> None:
    replica = settings(f"redis://127.0.0.1:{free_port()}/0", caller_upstream_rate=RATE)
    with started(emulator, tmp_path, replica) as (gateway,):
        keys = [new_key(emulator) for _ in range(3)]

        statuses = [gateway.get_session(*key).status_code for key in keys]

        assert statuses == [200, 429, 429]
        assert [emulator.calls(*key) for key in keys] == [1, 0, 0]
        assert gateway.metric("gateway_shared_cache_up") == 0


def test_cut_off_a_replica_counts_its_share_with_a_burst_of_that_share() -> None:
    # Nothing listens on the port: every shared-layer call fails, as when Redis is down.
    async def spent() -> list[bool]:
        redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_timeout=0.2)
        guard = Guard(0.5, Metrics(fleet=True))
        replicas = Replicas(redis, "t-", "me", guard)
        replicas.seen = 2  # the fleet had two replicas when the layer went
        rates = FleetCallerRates(redis, "t-", replicas, guard, CallerRates(4, Clock()))
        try:
            return [await rates.spend("caller") for _ in range(3)]
        finally:
            await redis.aclose()

    # A fleet rate of 4 a second: this replica counts 2 a second, a burst of 2, not 4.
    assert asyncio.run(spent()) == [True, True, False]
