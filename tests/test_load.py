"""A bounded load test on loopback: 100 concurrent callers, mixed keys, faults injected.

It asserts behaviour under load (no 500s, bounded memory under a flood of unique keys, no
leaked tasks), never speed: speed is `make bench`'s job.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from tests.conftest import NAME_QUERY, GatewayFactory, session_with
from tests.support.servers import Emulator, Gateway

DURATION_SECONDS = 20
CONCURRENCY = 100
CACHE_BOUND = 2000
ALLOWED = {200, 403, 404, 429, 502, 503, 504}


def _rss_bytes(gateway: Gateway) -> int:
    for line in Path(f"/proc/{gateway.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def _load(
    gateway: Gateway, hot: list[tuple[str, str]], faulty: list[tuple[str, str]]
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    unique = itertools.count()
    deadline = time.monotonic() + DURATION_SECONDS
    rng = random.Random(7)

    def request(client: aiohttp.ClientSession) -> Any:
        roll = rng.random()
        if roll < 0.4:
            vc, ps = rng.choice(hot)
            return client.get(f"/v1/voice-connectors/{vc}/proxy-sessions/{ps}")
        if roll < 0.55:
            vc, ps = rng.choice(hot)
            body = {"query": NAME_QUERY, "variables": {"vc": vc, "ps": ps}}
            return client.post("/graphql", json=body)
        if roll < 0.65:
            vc, ps = rng.choice(faulty)
            return client.get(f"/v1/voice-connectors/{vc}/proxy-sessions/{ps}")
        # A flood of keys nobody asked for before.
        return client.get(f"/v1/voice-connectors/flood/proxy-sessions/k{next(unique)}")

    async def caller(client: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            async with request(client) as reply:
                await reply.read()
                statuses[reply.status] += 1

    # aiohttp rather than httpx: httpx's pool slows down badly at 100 concurrent connections.
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(gateway.url, connector=connector, timeout=timeout) as client:
        await asyncio.gather(*(caller(client) for _ in range(CONCURRENCY)))
    return statuses


def test_load_with_faults_gives_no_500_bounded_memory_and_no_leaked_tasks(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(cache_max_entries=CACHE_BOUND, upstream_timeout_seconds=1)
    hot = [(key[0], f"{key[1]}-hot-{i}") for i in range(20)]
    faulty = [(key[0], f"{key[1]}-bad-{i}") for i in range(8)]
    for k in hot:
        emulator.seed(*k, session_with())
    faults: list[dict[str, Any]] = [
        {"error": "ServiceUnavailableException"},
        {"error": "ThrottledClientException"},
        {"reset": True},
        {"malformed": True},
        {"delay": 2},
        {"error": "ServiceFailureException", "delay": 0.05},
        {"raw_status": 500, "raw_body": "oops"},
        {"error": "ForbiddenException"},
    ]
    for k, fault in zip(faulty, faults, strict=True):
        emulator.fault(*k, **fault)
    tasks_before = gateway.metric("gateway_event_loop_tasks")
    rss_before = _rss_bytes(gateway)

    statuses = asyncio.run(_load(gateway, hot, faulty))
    time.sleep(2.5)  # let delayed upstream calls finish

    rss_after = _rss_bytes(gateway)
    assert sum(statuses.values()) > 5000, statuses
    assert statuses[404] > CACHE_BOUND  # the flood went past the cache bound
    assert set(statuses) <= ALLOWED, statuses
    assert statuses[500] == 0
    assert gateway.metric("gateway_cache_entries") <= CACHE_BOUND
    # A cache entry is a few KiB at most: 2000 of them, plus allocator slack.
    assert rss_after - rss_before < 64 * 1024 * 1024, (rss_before, rss_after)
    assert gateway.metric("gateway_event_loop_tasks") <= tasks_before + 2
    assert gateway.metric("gateway_http_requests_in_flight") == 1  # the scrape itself
    assert gateway.process.poll() is None
