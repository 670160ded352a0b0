"""Cache behaviour seen from outside: single flight, negative caching, TTLs, stale-if-error."""

from __future__ import annotations

import asyncio
import time

import httpx

from tests.conftest import GatewayFactory, session_with
from tests.support.servers import Emulator, Gateway

SHORT = {"cache_ttl_seconds": 0.5, "negative_cache_ttl_seconds": 0.5, "closed_cache_ttl_seconds": 3}


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


def test_not_found_is_remembered_briefly(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT)

    first = gateway.get_session(*key)
    second = gateway.get_session(*key)
    emulator.seed(*key, session_with())
    remembered = gateway.get_session(*key)
    time.sleep(0.7)
    later = gateway.get_session(*key)

    assert (first.status_code, second.status_code, remembered.status_code) == (404, 404, 404)
    assert second.headers["cache-status"].startswith("proxy-gateway; hit")
    assert later.status_code == 200
    assert emulator.calls(*key) == 2


def test_found_entries_expire_after_the_ttl(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT)

    gateway.get_session(*seeded)
    gateway.get_session(*seeded)
    time.sleep(0.7)
    refreshed = gateway.get_session(*seeded)

    assert emulator.calls(*seeded) == 2
    assert refreshed.headers["cache-status"] == "proxy-gateway; fwd=stale; fwd-status=200; stored"


def test_closed_sessions_live_longer(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT)
    emulator.seed(*key, session_with(Status="Closed", EndedTimestamp="2026-11-29T11:00:00Z"))

    first = gateway.get_session(*key)
    time.sleep(0.7)
    second = gateway.get_session(*key)

    assert first.headers["cache-control"] == "private, max-age=3"
    assert second.headers["cache-status"].startswith("proxy-gateway; hit")
    assert emulator.calls(*key) == 1


def test_stale_entry_answers_when_upstream_fails(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT)
    fresh = gateway.get_session(*seeded)
    time.sleep(0.7)

    for fault, status in (
        ({"error": "ServiceUnavailableException"}, 503),
        ({"error": "ThrottledClientException"}, 429),
        ({"error": "ServiceFailureException"}, 502),
        ({"reset": True}, 502),
    ):
        emulator.fault(*seeded, **fault)
        stale = gateway.get_session(*seeded)
        assert stale.status_code == 200, fault
        assert stale.headers["cache-status"] == f"proxy-gateway; fwd=stale; fwd-status={status}"
        assert stale.headers["cache-control"] == "private, max-age=0"
        assert stale.content == fresh.content


def test_stale_entry_answers_a_timeout(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT, upstream_timeout_seconds=0.3)
    gateway.get_session(*seeded)
    time.sleep(0.7)
    emulator.fault(*seeded, delay=2)

    stale = gateway.get_session(*seeded)

    assert stale.status_code == 200
    assert stale.headers["cache-status"] == "proxy-gateway; fwd=stale; fwd-status=504"


def test_stale_never_replaces_a_client_error(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT)
    gateway.get_session(*seeded)
    time.sleep(0.7)

    emulator.fault(*seeded, error="ForbiddenException", times=1)
    forbidden = gateway.get_session(*seeded)
    emulator.delete(*seeded)
    gone = gateway.get_session(*seeded)

    assert forbidden.status_code == 403
    assert gone.status_code == 404


def test_stale_window_ends(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**SHORT, stale_if_error_seconds=0.5)
    gateway.get_session(*seeded)
    time.sleep(1.2)
    emulator.fault(*seeded, error="ServiceUnavailableException")

    assert gateway.get_session(*seeded).status_code == 503


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
