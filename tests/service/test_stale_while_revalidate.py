"""Stale-while-revalidate (RFC 5861): an expired entry answers at once while one background
call refreshes it; a failed refresh leaves it as it was. Without the shared layer here."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from app.domain.errors import GatewayError
from app.http.cache_status import cache_status
from app.service import ProxySessionService
from tests.conftest import GatewayFactory, session_with
from tests.service.test_sessions import _run
from tests.support.clock import Clock
from tests.support.servers import Emulator

SWR = {"stale_while_revalidate_seconds": 10, "stale_if_error_seconds": 0}


async def _settle() -> None:
    """Let background refreshes (real calls to the emulator) finish."""
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if not any("_fill" in repr(task.get_coro()) for task in asyncio.all_tasks()):
            return
    raise AssertionError("a background refresh did not finish in 10 s")


@pytest.mark.usefixtures("aws_environment")
def test_an_expired_entry_answers_at_once_and_is_refreshed_once(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        await service.lookup(seeded)
        emulator.seed(*seeded, session_with(Name="renamed"))
        clock.now += 0.5 + 2.4  # expired 2.4 s ago (the TTL is 0.5 s)
        emulator.fault(*seeded, delay=0.3, times=1)
        stale = await asyncio.gather(*(service.lookup(seeded) for _ in range(10)))
        calls_meanwhile = emulator.calls(*seeded)
        await asyncio.sleep(0.5)
        fresh = await service.lookup(seeded)
        return [stale, calls_meanwhile, fresh]

    stale, calls_meanwhile, fresh = _run(scenario, **SWR)

    assert isinstance(stale, list)
    assert {lookup.record.session.name for lookup in stale} == {"order-1234"}
    assert {cache_status(lookup.outcome) for lookup in stale} == {b"proxy-gateway; hit; ttl=-3"}
    assert {lookup.ttl for lookup in stale} == {-3}
    assert {lookup.result for lookup in stale} == {"stale_while_revalidate"}
    assert calls_meanwhile == 2  # the first fill, and one refresh for the ten
    assert fresh.record.session.name == "renamed"  # type: ignore[attr-defined]
    assert cache_status(fresh.outcome).startswith(b"proxy-gateway; hit; ttl=")  # type: ignore[attr-defined]
    assert emulator.calls(*seeded) == 2


@pytest.mark.usefixtures("aws_environment")
def test_a_failed_refresh_leaves_the_entry_as_it_was_and_is_logged(
    emulator: Emulator, seeded: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        first = await service.lookup(seeded)
        clock.now += 1.0
        emulator.fault(*seeded, error="ServiceFailureException", status=500)
        during = await service.lookup(seeded)
        await _settle()
        after = await service.lookup(seeded)
        await _settle()
        return [first, during, after]

    with caplog.at_level(logging.WARNING, logger="app.service.sessions"):
        first, during, after = _run(scenario, upstream_max_attempts=1, **SWR)

    for lookup in (during, after):
        assert lookup.record is first.record  # type: ignore[attr-defined]
        assert cache_status(lookup.outcome) == b"proxy-gateway; hit; ttl=-1"  # type: ignore[attr-defined]
    assert emulator.calls(*seeded) == 3  # the fill, then one failed refresh per stale answer
    # Nobody awaited those refreshes: each failure is logged once, by its code, not its ids.
    failed = [r for r in caplog.records if r.name == "app.service.sessions"]
    assert [(r.levelname, r.__dict__.get("outcome")) for r in failed] == [
        ("WARNING", "UPSTREAM_FAILURE")
    ] * 2
    assert not any(part in r.getMessage() + repr(r.__dict__) for r in failed for part in seeded)


@pytest.mark.usefixtures("aws_environment")
def test_past_the_window_a_request_waits_for_upstream(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    async def scenario(service: ProxySessionService, clock: Clock) -> list[object]:
        await service.lookup(seeded)
        clock.now += 0.5 + 10.5
        try:
            lookup = await service.lookup(seeded)
        except GatewayError as error:
            return [error.code]
        return [cache_status(lookup.outcome)]

    (status,) = _run(scenario, **{**SWR, "stale_if_error_seconds": 30})  # still kept

    assert status == b"proxy-gateway; fwd=stale; fwd-status=200; stored"


def test_a_stale_answer_is_marked_on_the_wire(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(cache_ttl_seconds=0.2, stale_while_revalidate_seconds=30)
    gateway.get_session(*seeded).raise_for_status()
    time.sleep(0.25)  # a gateway process: its clock cannot be moved from here

    reply = gateway.get_session(*seeded)

    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "private, max-age=0"
    assert reply.headers["cache-status"] == "proxy-gateway; hit; ttl=-1"
    assert "etag" in reply.headers
