"""The fleet's AWS quota: every replica's calls together stay within the limit in any
one-second window; a call that cannot get a slot in time is answered 429 THROTTLED."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from app.shared.quota import LocalWindow, Split
from tests.conftest import GatewayFactory
from tests.shared.conftest import FleetFactory
from tests.support.clock import Clock
from tests.support.servers import Emulator, _q, free_port

LIMIT = 4
SHARED = 3
"""The shared window's part of LIMIT with the default reserve (80 %, in whole calls)."""
WINDOW = 1.0
"""AWS counts arrivals in one-second windows: so do these tests (the gateway's guard band
keeps the spread between a slot and its arrival from counting)."""


def _busiest_window(times: list[float]) -> int:
    times = sorted(times)
    return max(
        (sum(1 for later in times[i:] if later < start + WINDOW) for i, start in enumerate(times)),
        default=0,
    )


async def _burst(urls: list[str]) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return list(await asyncio.gather(*(client.get(url) for url in urls)))


def test_the_fleet_stays_within_its_rate_limit(
    fleet_factory: FleetFactory, emulator: Emulator
) -> None:
    fleet = fleet_factory(2, name="quota", upstream_rate_limit=LIMIT, upstream_timeout_seconds=2)
    for gateway in fleet:  # open each replica's connection to AWS: a first call is slower
        gateway.get_session("vc-warm", uuid.uuid4().hex)
    time.sleep(1.0)  # and let those calls leave the window
    started = time.time()
    vc = f"vc-{uuid.uuid4().hex[:8]}"
    urls = [
        f"{fleet[n % 2].url}/v1/voice-connectors/{vc}/proxy-sessions/{_q(f'ps-{n}')}"
        for n in range(24)
    ]

    replies = asyncio.run(_burst(urls))

    statuses = sorted(reply.status_code for reply in replies)
    assert set(statuses) == {404, 429}, statuses  # unknown sessions, or no slot in time
    calls = [t for t in emulator.call_times() if t >= started]
    assert statuses.count(404) == len(calls)
    assert _busiest_window(calls) <= LIMIT
    assert len(calls) >= 2 * SHARED  # the deadline of 2 s left room for more than one window
    for reply in replies:
        if reply.status_code == 429:
            body = reply.json()
            assert body["code"] == "THROTTLED"
            assert "upstreamCode" not in body
            assert int(reply.headers["retry-after"]) >= 1
    scraped = "".join(gateway.client.get("/metrics").text for gateway in fleet)
    refused = sum(
        float(line.split()[-1])
        for line in scraped.splitlines()
        if line.startswith("gateway_upstream_rate_limited_total")
    )
    assert refused >= statuses.count(429)


def test_the_local_window_keeps_any_second_within_the_limit() -> None:
    clock = Clock()
    window = LocalWindow(1.0, clock)
    waits = [window.take(3, longest_wait=5.0) for _ in range(7)]

    assert waits == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0]
    assert window.take(3, longest_wait=1.5) is None  # the next slot is 2 s away
    clock.now += 2.5  # the slot at 2 s is the only one left in the last second
    assert [window.take(3, longest_wait=1.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    assert window.take(3, longest_wait=-0.1) is None  # no time left for a call at all


@pytest.mark.parametrize(
    ("limit", "reserve", "replicas", "split"),
    [
        (6, 0.2, 3, Split(4, 1, 1.5)),  # the shared window 4; each cut-off replica 2/3 a second
        (5, 0.2, 1, Split(4, 1, 1.1)),
        (100, 0.2, 4, Split(80, 5, 1.1)),
        (10, 0.0, 2, Split(10, 5, 1.1)),  # no reserve: a share of the whole limit
    ],
)
def test_the_limit_is_split_between_the_shared_window_and_the_reserve(
    limit: int, reserve: float, replicas: int, split: Split
) -> None:
    got = Split.of(limit, reserve, replicas)

    assert (got.shared, got.alone) == (split.shared, split.alone)
    assert got.alone_window == pytest.approx(split.alone_window)


def test_a_reserve_too_thin_for_every_partition_is_named_at_start(
    gateway_factory: GatewayFactory,
) -> None:
    # 20 calls a second, 10 replicas: the reserve is 4 calls a second, so five or more
    # replicas cut off at once, one call each, could fill a second past the limit.
    gateway = gateway_factory(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        upstream_rate_limit=20,
        fleet_max_replicas=10,
    )

    lines = [r for r in gateway.log_records() if "GATEWAY_UPSTREAM_RATE_RESERVE" in r["message"]]
    assert [r["level"] for r in lines] == ["WARNING"]
    assert "up to 4 replicas" in lines[0]["message"]
    assert "at least 0.50" in lines[0]["message"]
