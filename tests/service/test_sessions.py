"""Cache behaviour seen from outside: single flight, negative caching, TTLs, stale-if-error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from app.domain.errors import GatewayError
from app.http.cache_status import cache_status
from app.observability.metrics import Metrics
from app.service import Lookup, Missing, ProxySessionService
from app.settings import Settings
from app.upstream import Upstream
from tests.conftest import NAME_QUERY, SHARED_GATEWAY_SETTINGS, GatewayFactory, session_with
from tests.support.clock import Clock
from tests.support.servers import Emulator, Gateway

pytestmark = pytest.mark.fast

SHORT = {"cache_ttl_seconds": 0.5, "negative_cache_ttl_seconds": 0.5, "closed_cache_ttl_seconds": 3}
"""Short lifetimes; the tests move the service's clock past them instead of sleeping."""


async def _concurrent_gets(url: str, path: str, n: int, **headers: str) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        return await asyncio.gather(*(client.get(path, headers=headers) for _ in range(n)))


def _path(key: tuple[str, str]) -> str:
    return f"/v1/voice-connectors/{key[0]}/proxy-sessions/{key[1]}"


def test_stampede_makes_exactly_one_upstream_call(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, delay=0.5, times=1)  # hold the leader so the others pile up

    replies = asyncio.run(_concurrent_gets(gateway.url, _path(seeded), 100))

    assert [r.status_code for r in replies] == [200] * 100
    assert emulator.calls(*seeded) == 1
    statuses = [r.headers["cache-status"] for r in replies]
    assert sum("stored" in s for s in statuses) == 1
    assert all(s.endswith(("collapsed", "stored")) or "hit" in s for s in statuses)
    assert len({r.content for r in replies}) == 1


def test_no_cache_is_still_coalesced(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway.get_session(*seeded)
    emulator.fault(*seeded, delay=0.5, times=1)

    replies = asyncio.run(
        _concurrent_gets(gateway.url, _path(seeded), 30, **{"Cache-Control": "no-cache"})
    )

    assert {r.status_code for r in replies} == {200}
    assert emulator.calls(*seeded) == 2


def test_a_cancelled_leader_neither_poisons_nor_hangs_its_waiters(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, delay=0.6, times=1)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            leader = asyncio.create_task(client.get(_path(seeded)))
            await asyncio.sleep(0.1)
            waiters = [asyncio.create_task(client.get(_path(seeded))) for _ in range(5)]
            await asyncio.sleep(0.1)
            leader.cancel()  # the caller hangs up mid-flight
            return list(await asyncio.gather(*waiters))

    replies = asyncio.run(scenario())

    assert [r.status_code for r in replies] == [200] * 5
    assert emulator.calls(*seeded) == 1
    assert gateway.get_session(*seeded).headers["cache-status"].startswith("proxy-gateway; hit")


def test_a_failed_flight_is_not_cached(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, error="ServiceFailureException", times=3)

    assert gateway.get_session(*seeded).status_code == 502
    assert gateway.get_session(*seeded).status_code == 200
    assert emulator.calls(*seeded) == 4


@pytest.mark.usefixtures("aws_environment")
def test_not_found_is_remembered_briefly(emulator: Emulator, key: tuple[str, str]) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        first = await _outcome(service, key)
        second = await _outcome(service, key)
        emulator.seed(*key, session_with())
        remembered = await _outcome(service, key)
        clock.now += SHORT["negative_cache_ttl_seconds"] + 0.01
        later = await _outcome(service, key)
        return [first, second, remembered, later]

    first, second, remembered, later = _run(scenario)

    assert first == ("NOT_FOUND", b"proxy-gateway; fwd=miss; fwd-status=404; stored")
    assert second == remembered == ("NOT_FOUND", b"proxy-gateway; hit; ttl=1")
    assert later == b"proxy-gateway; fwd=miss; fwd-status=200; stored"
    assert emulator.calls(*key) == 2


@pytest.mark.usefixtures("aws_environment")
def test_found_entries_expire_after_the_ttl(emulator: Emulator, seeded: tuple[str, str]) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        first = await _outcome(service, seeded)
        clock.now += SHORT["cache_ttl_seconds"] - 0.01
        hit = await _outcome(service, seeded)
        clock.now += 0.02
        refreshed = await _outcome(service, seeded)
        return [first, hit, refreshed]

    first, hit, refreshed = _run(scenario)

    assert first == b"proxy-gateway; fwd=miss; fwd-status=200; stored"
    assert hit == b"proxy-gateway; hit; ttl=0"
    assert refreshed == b"proxy-gateway; fwd=stale; fwd-status=200; stored"
    assert emulator.calls(*seeded) == 2


@pytest.mark.usefixtures("aws_environment")
def test_closed_sessions_live_longer(emulator: Emulator, key: tuple[str, str]) -> None:
    emulator.seed(*key, session_with(Status="Closed", EndedTimestamp="2026-11-29T11:00:00Z"))

    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        first = found(await service.lookup(key))
        clock.now += SHORT["cache_ttl_seconds"] + 1
        second = await _outcome(service, key)
        return [first.ttl, second]

    ttl, second = _run(scenario)

    assert ttl == SHORT["closed_cache_ttl_seconds"]
    assert second == b"proxy-gateway; hit; ttl=2"
    assert emulator.calls(*key) == 1


@pytest.mark.usefixtures("aws_environment")
def test_stale_entry_answers_when_upstream_fails(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    faults = (
        ({"error": "ServiceUnavailableException"}, 503),
        ({"error": "ThrottledClientException"}, 429),
        ({"error": "ServiceFailureException"}, 502),
        ({"reset": True}, 502),
        ({"delay": 2}, 504),
    )

    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        fresh = found(await service.lookup(seeded))
        clock.now += SHORT["cache_ttl_seconds"] + 0.01
        answers: list[object] = []
        for fault, _ in faults:
            emulator.fault(*seeded, **fault)
            stale = found(await service.lookup(seeded))
            answers.append((cache_status(stale.outcome), stale.ttl, stale.record is fresh.record))
        return answers

    answers = _run(scenario, upstream_timeout_seconds=0.3)

    assert answers == [
        (f"proxy-gateway; fwd=stale; fwd-status={status}".encode(), 0, True) for _, status in faults
    ]


@pytest.mark.usefixtures("aws_environment")
def test_stale_never_replaces_a_client_error(emulator: Emulator, seeded: tuple[str, str]) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        await service.lookup(seeded)
        clock.now += SHORT["cache_ttl_seconds"] + 0.01
        emulator.fault(*seeded, error="ForbiddenException", times=1)
        forbidden = await _outcome(service, seeded)
        emulator.delete(*seeded)
        gone = await _outcome(service, seeded)
        return [forbidden, gone]

    # The 404 replaces the stale entry: it is what the origin says now.
    assert _run(scenario) == [
        ("FORBIDDEN", None),
        ("NOT_FOUND", b"proxy-gateway; fwd=stale; fwd-status=404; stored"),
    ]


@pytest.mark.usefixtures("aws_environment")
def test_stale_window_ends(emulator: Emulator, seeded: tuple[str, str]) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        await service.lookup(seeded)
        emulator.fault(*seeded, error="ServiceUnavailableException")
        clock.now += SHORT["cache_ttl_seconds"] + 0.49
        inside = await _outcome(service, seeded)
        clock.now += 0.02
        past = await _outcome(service, seeded)
        return [inside, past]

    inside, past = _run(scenario, stale_if_error_seconds=0.5)

    assert inside == b"proxy-gateway; fwd=stale; fwd-status=503"
    assert past == ("SERVICE_UNAVAILABLE", None)


Scenario = Callable[[ProxySessionService, Clock], Awaitable[list[object]]]


def _run(scenario: Scenario, **settings: Any) -> list[object]:
    """Run `scenario` against a service on the real client and the emulator, its clock held."""

    async def run() -> list[object]:
        config = Settings(**{**SHARED_GATEWAY_SETTINGS, **SHORT, **settings})
        metrics = Metrics()
        async with Upstream(config, metrics) as upstream:
            clock = Clock()
            return await scenario(ProxySessionService(config, upstream, metrics, clock), clock)

    return asyncio.run(run())


async def _outcome(service: ProxySessionService, key: tuple[str, str]) -> object:
    """The `Cache-Status` the edge writes for a lookup, or the error's code and its own."""
    try:
        lookup = await service.lookup(key)
    except GatewayError as error:
        return error.code, None
    if isinstance(lookup, Missing):
        return lookup.error.code, cache_status(lookup.outcome)
    return cache_status(lookup.outcome)


def test_cache_is_bounded_lru(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(cache_max_entries=2)
    keys = [(key[0], f"{key[1]}-{i}") for i in range(3)]
    for k in keys:
        emulator.seed(*k, session_with())

    gateway.get_session(*keys[0])
    gateway.get_session(*keys[1])
    gateway.get_session(*keys[0])  # keys[0] is now the most recently used
    gateway.get_session(*keys[2])  # evicts keys[1]
    gateway.get_session(*keys[0])
    gateway.get_session(*keys[1])

    assert [emulator.calls(*k) for k in keys] == [1, 2, 1]


def test_a_flood_of_unknown_ids_evicts_no_session(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    # 20 entries: 18 for sessions, 2 for NotFound answers.
    gateway = gateway_factory(cache_max_entries=20)
    assert gateway.get_session(*seeded).status_code == 200
    unknown = [(seeded[0], f"{seeded[1]}-unknown-{n}") for n in range(100)]

    flood = [gateway.get_session(*key).status_code for key in unknown]
    hot = gateway.get_session(*seeded)
    last = gateway.get_session(*unknown[-1])  # the latest NotFound answers are kept
    first = gateway.get_session(*unknown[0])  # the oldest went first

    assert set(flood) == {404}
    assert hot.headers["cache-status"].startswith("proxy-gateway; hit")
    assert emulator.calls(*seeded) == 1
    assert last.headers["cache-status"].startswith("proxy-gateway; hit")
    assert first.headers["cache-status"].startswith("proxy-gateway; fwd=miss")
    assert (emulator.calls(*unknown[-1]), emulator.calls(*unknown[0])) == (1, 2)


def test_no_cache_within_the_minimum_interval_is_answered_from_the_last_fill(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(revalidate_min_interval_seconds=1)
    no_cache = {"Cache-Control": "no-cache"}

    first = gateway.get_session(*seeded)
    flood = [gateway.get_session(*seeded, headers=no_cache) for _ in range(50)]
    calls_within = emulator.calls(*seeded)
    flood_graphql = [
        gateway.graphql(NAME_QUERY, {"vc": seeded[0], "ps": seeded[1]}, headers=no_cache)
        for _ in range(10)
    ]
    time.sleep(1.1)
    revalidated = gateway.get_session(*seeded, headers=no_cache)

    assert {r.status_code for r in [first, *flood, revalidated]} == {200}
    assert all(r.json()["data"]["proxySession"]["name"] == "order-1234" for r in flood_graphql)
    assert all(r.headers["cache-status"].startswith("proxy-gateway; hit") for r in flood)
    assert calls_within == 1
    assert "fwd=request" in revalidated.headers["cache-status"]
    assert emulator.calls(*seeded) == 2


@pytest.mark.usefixtures("aws_environment")
def test_the_minimum_interval_counts_from_the_keys_last_fill(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    missing = (seeded[0], seeded[1] + "-missing")

    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        outcomes: list[object] = []

        async def revalidating(k: tuple[str, str]) -> None:
            lookup = await service.lookup(k, revalidate=True)
            if isinstance(lookup, Missing):
                outcomes.append((lookup.error.code, cache_status(lookup.outcome)))
            else:
                outcomes.append(cache_status(lookup.outcome))

        await revalidating(seeded)  # nothing cached: a call
        clock.now += 0.3
        await revalidating(seeded)  # within the interval: the fill answers
        clock.now += 0.2
        await revalidating(seeded)  # a call, which fills again
        clock.now += 0.3
        await revalidating(seeded)  # within the interval of that fill
        await revalidating(missing)  # not found: a call
        await revalidating(missing)  # the remembered NotFound answers
        return outcomes

    outcomes = _run(scenario, revalidate_min_interval_seconds=0.4)

    assert outcomes == [
        b"proxy-gateway; fwd=request; fwd-status=200; stored",
        b"proxy-gateway; hit; ttl=0",
        b"proxy-gateway; fwd=request; fwd-status=200; stored",
        b"proxy-gateway; hit; ttl=0",
        ("NOT_FOUND", b"proxy-gateway; fwd=request; fwd-status=404; stored"),
        ("NOT_FOUND", b"proxy-gateway; hit; ttl=1"),
    ]
    assert emulator.calls(*seeded) == 2
    assert emulator.calls(*missing) == 1


@pytest.mark.usefixtures("aws_environment")
def test_a_flood_of_large_entries_keeps_the_cache_under_its_byte_bound(
    emulator: Emulator, key: tuple[str, str]
) -> None:
    bound = 65536
    participants = [
        {"PhoneNumber": f"+1555{i:07}", "ProxyPhoneNumber": f"+1666{i:07}"} for i in range(20)
    ]
    keys = [(key[0], f"{key[1]}-{i}") for i in range(60)]
    for k in keys:
        emulator.seed(*k, session_with(Participants=participants))

    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        sizes = []
        for k in keys:
            await service.lookup(k)
            sizes.append(service.cached_bytes)
        held = [k for k in keys if service.fresh_record(k) is not None]
        return [sizes, held]

    sizes, held = _run(scenario, cache_max_bytes=bound)

    assert isinstance(sizes, list)
    assert isinstance(held, list)
    assert max(sizes) <= bound
    assert sizes[-1] > bound // 2
    assert 0 < len(held) < len(keys)
    assert held == keys[-len(held) :]  # the least recently used went first


def found(lookup: Lookup | Missing) -> Lookup:
    """A lookup that found its session."""
    assert isinstance(lookup, Lookup), lookup
    return lookup
