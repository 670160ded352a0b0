"""The aiohttp cases: a stampede on one key, and RSS under a flood of unique keys."""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections import Counter
from collections.abc import Iterator

import aiohttp
import httpx

from bench.context import DEFAULT_CACHE_BOUND, MISS_PREFIX, VC, Bench
from bench.processes import read_status_kib
from bench.results import MemoryResult, StampedeResult
from harness.servers import Server

_CACHE_ENTRIES = re.compile(r"^gateway_cache_entries\s+(\S+)$", re.MULTILINE)
SETTLE_SECONDS = 0.3


def run_stampede(bench: Bench) -> StampedeResult:
    """Concurrent misses on one fresh key whose upstream answer is delayed once."""
    config = bench.config
    gateway = bench.gateway("gateway-stampede")
    try:
        key = f"stampede-{secrets.token_hex(6)}"
        with httpx.Client(base_url=f"{bench.emulator_url}/_emulator") as admin:
            spec = {"delay": config.stampede_delay, "times": 1}
            admin.put(f"/faults/{VC}/{key}", json=spec).raise_for_status()
            # One miss first, so lazy start-up work is not part of the stampede's time.
            warm = gateway.url + MISS_PREFIX + f"warm-{secrets.token_hex(4)}"
            httpx.get(warm, headers=bench.auth).raise_for_status()
            statuses, collapsed, elapsed = asyncio.run(
                _stampede(gateway.url + MISS_PREFIX + key, config.stampede_requests, bench.auth)
            )
            calls: int = admin.get(f"/calls/{VC}/{key}").json()["count"]
    finally:
        bench.stop(gateway)
    return StampedeResult(
        config.stampede_requests, config.stampede_delay, calls, statuses, collapsed, elapsed
    )


def run_memory(bench: Bench) -> MemoryResult:
    """RSS of a fresh gateway at idle, then under a flood of unique keys past the cache bound."""
    config = bench.config
    settings = {}
    if config.cache_bound != DEFAULT_CACHE_BOUND:
        settings["GATEWAY_CACHE_MAX_ENTRIES"] = str(config.cache_bound)
    gateway = bench.gateway("gateway-memory", settings)
    try:
        pid = gateway.process.pid
        time.sleep(SETTLE_SECONDS)
        idle = read_status_kib(pid, "VmRSS")
        salt = secrets.token_hex(4)
        keys = (f"{i}-{salt}" for i in range(config.flood_keys))
        marks = (config.warm_keys, config.cache_bound, config.flood_keys)
        readings: list[tuple[int, int]] = []
        errors, started, done = 0, time.perf_counter(), 0
        for mark in marks:
            errors += asyncio.run(
                _flood(
                    gateway.url + MISS_PREFIX,
                    _take(keys, mark - done),
                    config.flood_concurrency,
                    bench.auth,
                )
            )
            done = mark
            time.sleep(SETTLE_SECONDS)
            readings.append((read_status_kib(pid, "VmRSS"), _cache_entries(gateway)))
        elapsed = time.perf_counter() - started
        hwm = read_status_kib(pid, "VmHWM")
    finally:
        bench.stop(gateway)
    (warm, entries_warm), (full, entries_full), (after, entries_after) = readings
    return MemoryResult(
        keys=config.flood_keys,
        cache_bound=config.cache_bound,
        warm_keys=config.warm_keys,
        rss_idle_kib=idle,
        rss_warm_kib=warm,
        rss_full_kib=full,
        rss_after_kib=after,
        hwm_kib=hwm,
        entries_warm=entries_warm,
        entries_full=entries_full,
        entries_after=entries_after,
        tolerance=config.memory_tolerance,
        flood_req_per_sec=config.flood_keys / elapsed,
        errors=errors,
    )


def _take(keys: Iterator[str], count: int) -> list[str]:
    return [key for _, key in zip(range(count), keys, strict=False)]


def _cache_entries(gateway: Server) -> int:
    match = _CACHE_ENTRIES.search(httpx.get(f"{gateway.url}/metrics").text)
    return int(float(match[1])) if match else -1


async def _flood(prefix: str, keys: list[str], concurrency: int, headers: dict[str, str]) -> int:
    """GET every key with `concurrency` requests in flight; the number of non-200 answers."""
    pending = iter(keys)
    errors = 0

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for key in pending:
            async with session.get(prefix + key) as reply:
                await reply.read()
                errors += reply.status != 200

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return errors


async def _stampede(
    url: str, requests: int, headers: dict[str, str]
) -> tuple[dict[int, int], int, float]:
    """`requests` GETs of one URL at once: statuses, how many were collapsed, and the time."""
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:

        async def one() -> tuple[int, str]:
            async with s.get(url) as reply:
                await reply.read()
                return reply.status, reply.headers.get("Cache-Status", "")

        started = time.perf_counter()
        answers = await asyncio.gather(*(one() for _ in range(requests)))
        elapsed = time.perf_counter() - started
    statuses = Counter(status for status, _ in answers)
    collapsed = sum("collapsed" in cache for _, cache in answers)
    return dict(statuses), collapsed, elapsed
