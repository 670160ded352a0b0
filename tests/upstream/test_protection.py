"""Upstream protection under injected faults: breaker, retry budget, concurrency cap, storms."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from app.domain.errors import CircuitOpen, NotFound, ServiceUnavailable
from app.domain.types import BreakerState
from app.settings import Settings
from app.upstream import Upstream
from tests.conftest import NAME_QUERY, GatewayFactory, session_with
from tests.support.servers import Emulator, Gateway

BREAKER = {"breaker_failure_threshold": 3, "breaker_reset_seconds": 1, "upstream_max_attempts": 1}


def _path(vc: str, ps: str) -> str:
    return f"/v1/voice-connectors/{vc}/proxy-sessions/{ps}"


async def _gather(url: str, paths: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(
        base_url=url, timeout=30, limits=httpx.Limits(max_connections=200)
    ) as c:
        return list(await asyncio.gather(*(c.get(p) for p in paths)))


def test_breaker_opens_after_consecutive_faults_and_stops_upstream_calls(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(**BREAKER, upstream_timeout_seconds=2)
    emulator.fault("*", "*", error="ServiceUnavailableException")

    failing = [gateway.get_session(key[0], f"{key[1]}-{i}") for i in range(3)]
    before = emulator.total_calls()
    refused = [gateway.get_session(key[0], f"{key[1]}-x{i}") for i in range(5)]
    gql = gateway.graphql(NAME_QUERY, {"vc": key[0], "ps": f"{key[1]}-gql"}).json()

    assert [r.status_code for r in failing] == [503] * 3
    assert [r.json()["code"] for r in failing] == ["SERVICE_UNAVAILABLE"] * 3
    assert [r.json()["code"] for r in refused] == ["CIRCUIT_OPEN"] * 5
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert gql["data"] == {"proxySession": None}
    assert gql["errors"][0]["extensions"]["code"] == "CIRCUIT_OPEN"
    assert emulator.total_calls() == before  # no upstream call while open
    assert gateway.metric("gateway_breaker_state") == 1


def test_open_breaker_serves_stale_entries(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**{**BREAKER, "cache_ttl_seconds": 0.3, "breaker_reset_seconds": 30})
    fresh = gateway.get_session(*seeded)
    time.sleep(0.5)
    emulator.fault("*", "*", error="ServiceFailureException")
    for i in range(3):
        gateway.get_session(seeded[0], f"trip-{i}")

    stale = gateway.get_session(*seeded)

    assert stale.status_code == 200
    assert stale.content == fresh.content
    assert stale.headers["cache-status"] == "proxy-gateway; fwd=stale; fwd-status=503"


def test_after_the_reset_time_one_probe_decides(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(**BREAKER)
    emulator.fault("*", "*", error="ThrottledClientException")
    for i in range(3):
        gateway.get_session(key[0], f"{key[1]}-{i}")
    emulator.clear_fault("*", "*")
    emulator.fault("*", "*", delay=0.5, error="NotFoundException")  # slow but healthy
    time.sleep(1.1)
    before = emulator.total_calls()

    replies = asyncio.run(
        _gather(gateway.url, [_path(key[0], f"{key[1]}-probe-{i}") for i in range(20)])
    )

    codes = sorted(r.json()["code"] for r in replies)
    assert codes.count("NOT_FOUND") == 1  # the probe
    assert codes.count("CIRCUIT_OPEN") == 19
    assert emulator.total_calls() - before == 1
    assert gateway.get_session(key[0], f"{key[1]}-after").json()["code"] == "NOT_FOUND"
    assert gateway.metric("gateway_breaker_state") == 0


def test_client_errors_never_open_the_breaker(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(**BREAKER)
    for i, error in enumerate(["ForbiddenException", "BadRequestException"] * 3):
        emulator.fault(key[0], f"{key[1]}-{i}", error=error)
        gateway.get_session(key[0], f"{key[1]}-{i}")
    missing = [gateway.get_session(key[0], f"{key[1]}-missing-{i}") for i in range(5)]

    assert [r.status_code for r in missing] == [404] * 5
    assert gateway.metric("gateway_breaker_state") == 0


def test_partial_outage_leaves_healthy_keys_served(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(breaker_failure_threshold=5, upstream_max_attempts=1)
    healthy = [(key[0], f"{key[1]}-ok-{i}") for i in range(10)]
    broken = [(key[0], f"{key[1]}-bad-{i}") for i in range(10)]
    for k in healthy:
        emulator.seed(*k, session_with())
    for k in broken:
        emulator.fault(*k, error="ServiceFailureException")

    results = []
    for good, bad in zip(healthy, broken, strict=True):
        results.append(
            (gateway.get_session(*good).status_code, gateway.get_session(*bad).status_code)
        )

    assert results == [(200, 502)] * 10


def test_retry_budget_caps_retries_in_a_5xx_storm(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(
        breaker_failure_threshold=1000,
        retry_budget_ratio=0.2,
        upstream_max_attempts=3,
        upstream_timeout_seconds=5,
    )
    emulator.fault("*", "*", error="ServiceFailureException")
    before = emulator.total_calls()

    replies = [gateway.get_session(key[0], f"{key[1]}-{i}") for i in range(50)]

    calls = emulator.total_calls() - before
    assert {r.status_code for r in replies} == {502}
    assert calls <= 50 + 0.2 * 50 + 3  # without the budget: 150
    assert gateway.metric("gateway_upstream_retries_total", outcome="budget_exhausted") > 0


def test_concurrent_upstream_calls_are_capped(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(upstream_max_concurrency=3)
    emulator.reset()
    emulator.fault("*", "*", delay=0.3, error="NotFoundException")

    replies = asyncio.run(_gather(gateway.url, [_path(key[0], f"{key[1]}-{i}") for i in range(12)]))

    assert [r.status_code for r in replies] == [404] * 12
    assert emulator.max_inflight() == 3


def test_throttling_storm_gives_429_with_retry_after_and_the_process_survives(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.fault("*", "*", error="ThrottledClientException")

    replies = asyncio.run(_gather(gateway.url, [_path(key[0], f"{key[1]}-{i}") for i in range(60)]))

    assert {r.status_code for r in replies} == {429}
    assert all(r.headers["retry-after"] == "1" for r in replies)
    assert gateway.process.poll() is None
    assert gateway.client.get("/healthz").status_code == 200


def test_mixed_fault_storm_never_gives_a_500(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    faults: list[dict[str, Any]] = [
        {"reset": True},
        {"malformed": True},
        {"raw_status": 500, "raw_body": "<html>oops</html>"},
        {"raw_status": 200, "raw_body": '{"ProxySession": "not an object"}'},
        {"raw_status": 200, "raw_body": '{"ProxySession": {"CreatedTimestamp": "yesterday"}}'},
        {"error": "ServiceFailureException", "delay": 0.1},
        {"error": "SomethingNewException", "status": 418},
    ]
    keys = [(key[0], f"{key[1]}-{i}") for i in range(len(faults) * 4)]
    for i, k in enumerate(keys):
        emulator.fault(*k, **faults[i % len(faults)])

    replies = asyncio.run(_gather(gateway.url, [_path(*k) for k in keys]))

    assert all(r.status_code in {502, 503, 504} for r in replies), [r.status_code for r in replies]
    assert not [r for r in replies if "Traceback" in r.text]
    assert gateway.process.poll() is None


class _Reports:
    """What an `Upstream` reports; the breaker's states kept in order."""

    def __init__(self) -> None:
        self.states: list[BreakerState] = []

    def upstream_attempt(self, outcome: str, aws_error_code: str, seconds: float) -> None:
        pass

    def upstream_retry(self, outcome: str) -> None:
        pass

    def breaker_state_changed(self, state: BreakerState) -> None:
        self.states.append(state)


def _one_slot(reports: _Reports) -> Upstream:
    """One upstream call at a time; one fault opens the breaker, which may probe soon after."""
    settings = Settings(
        upstream_max_concurrency=1,
        upstream_max_attempts=1,
        breaker_failure_threshold=1,
        breaker_reset_seconds=0.05,
    )
    return Upstream(settings, reports)


async def _probe_waiting_for_the_held_slot(
    upstream: Upstream, emulator: Emulator, key: tuple[str, str]
) -> tuple[asyncio.Task[object], asyncio.Task[object]]:
    """Open the breaker while a call let in before holds the one slot, then let a probe
    through once the reset time has passed: it waits for that slot. Both calls' tasks."""
    emulator.fault(key[0], f"{key[1]}-trip", error="ServiceUnavailableException")
    emulator.fault(key[0], f"{key[1]}-hold", delay=1.5, error="NotFoundException")
    trip = asyncio.create_task(upstream.get_proxy_session((key[0], f"{key[1]}-trip")))
    hold: asyncio.Task[object] = asyncio.create_task(
        upstream.get_proxy_session((key[0], f"{key[1]}-hold"))
    )
    with pytest.raises(ServiceUnavailable):
        await trip
    await asyncio.sleep(0.1)  # the reset time; meanwhile `hold` takes the slot
    probe: asyncio.Task[object] = asyncio.create_task(
        upstream.get_proxy_session((key[0], f"{key[1]}-probe"))
    )
    await asyncio.sleep(0)  # let through as the probe, it waits for the slot
    return hold, probe


@pytest.mark.usefixtures("aws_environment")
def test_a_probe_cancelled_while_waiting_for_a_slot_lets_the_next_call_probe(
    emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(key[0], f"{key[1]}-next", session_with())
    reports = _Reports()

    async def run() -> str | None:
        async with _one_slot(reports) as upstream:
            hold, probe = await _probe_waiting_for_the_held_slot(upstream, emulator, key)
            probe.cancel()
            with pytest.raises(asyncio.CancelledError):
                await probe
            session = await upstream.get_proxy_session((key[0], f"{key[1]}-next"))
            with pytest.raises(NotFound):
                await hold
            return session.name

    assert asyncio.run(run()) == "order-1234"
    assert reports.states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


@pytest.mark.usefixtures("aws_environment")
def test_cancelling_another_call_does_not_let_a_second_probe_out(
    emulator: Emulator, key: tuple[str, str]
) -> None:
    reports = _Reports()

    async def run() -> None:
        async with _one_slot(reports) as upstream:
            hold, probe = await _probe_waiting_for_the_held_slot(upstream, emulator, key)
            hold.cancel()
            with pytest.raises(asyncio.CancelledError):
                await hold
            with pytest.raises(CircuitOpen):
                await upstream.get_proxy_session((key[0], f"{key[1]}-other"))
            with pytest.raises(NotFound):
                await probe

    asyncio.run(run())

    assert reports.states == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]
