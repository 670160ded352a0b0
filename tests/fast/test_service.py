"""The service against a fake source at its seam: cache, single flight, negative caching,
stale-if-error, stale-while-revalidate, the revalidation floor and the per-caller rate, in
process and in milliseconds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from app.domain.errors import Throttled, UpstreamUnavailable
from app.domain.types import CacheResult
from app.http.cache_status import cache_status
from app.observability.metrics import Metrics
from app.service import Lookup, Missing, ProxySessionService
from app.settings import Settings
from tests.fast.fakes import Clock, FakeSource

pytestmark = pytest.mark.fast

KEY = ("vc-fast", "ps-fast")


def _run(
    scenario: Callable[[ProxySessionService, FakeSource, Clock], Coroutine[Any, Any, Any]],
    **settings: Any,
) -> Any:
    source, clock = FakeSource(), Clock()
    source.seed(KEY)
    service = ProxySessionService(
        Settings(**{"revalidate_min_interval_seconds": 0, **settings}), source, Metrics(), clock
    )
    return asyncio.run(scenario(service, source, clock))


def test_a_miss_calls_once_and_the_next_lookup_is_a_hit() -> None:
    async def scenario(service: ProxySessionService, source: FakeSource, _: Clock) -> Any:
        first = await service.lookup(KEY)
        second = await service.lookup(KEY)
        return first, second, source.calls[KEY]

    first, second, calls = _run(scenario)

    assert (first.result, second.result, calls) == ("miss", "hit", 1)
    assert second.record is first.record
    assert cache_status(second.outcome) == b"proxy-gateway; hit; ttl=30"


def test_concurrent_misses_share_one_call() -> None:
    async def scenario(service: ProxySessionService, source: FakeSource, _: Clock) -> Any:
        source.delay = 0.05
        lookups = await asyncio.gather(*(service.lookup(KEY) for _ in range(50)))
        return sorted({lookup.result for lookup in lookups}), source.calls[KEY]

    assert _run(scenario) == (["coalesced", "miss"], 1)


def test_a_missing_session_is_an_outcome_and_is_remembered() -> None:
    absent = ("vc-fast", "ps-absent")

    async def scenario(service: ProxySessionService, source: FakeSource, clock: Clock) -> Any:
        first = await service.lookup(absent)
        remembered = await service.lookup(absent)
        clock.now += 6
        later = await service.lookup(absent)
        return first, remembered, later, source.calls[absent]

    first, remembered, later, calls = _run(scenario, negative_cache_ttl_seconds=5)

    assert isinstance(first, Missing)
    assert isinstance(remembered, Missing)
    assert (first.result, remembered.result, later.result) == ("miss", "negative", "miss")
    assert first.error.code == "NOT_FOUND"
    assert calls == 2


def test_a_failing_upstream_is_answered_stale_within_the_window() -> None:
    async def scenario(service: ProxySessionService, source: FakeSource, clock: Clock) -> Any:
        fresh = await service.lookup(KEY)
        clock.now += 31
        source.faults[KEY] = UpstreamUnavailable("AWS is down.")
        stale = await service.lookup(KEY)
        clock.now += 400
        with pytest.raises(UpstreamUnavailable):
            await service.lookup(KEY)
        return fresh, stale

    fresh, stale = _run(scenario, stale_if_error_seconds=300)

    assert isinstance(stale, Lookup)
    assert stale.result == "stale"
    assert stale.record is fresh.record


def test_within_stale_while_revalidate_the_old_record_answers_and_one_refresh_runs() -> None:
    async def scenario(service: ProxySessionService, source: FakeSource, clock: Clock) -> Any:
        await service.lookup(KEY)
        clock.now += 31
        source.delay = 0.01
        answers = await asyncio.gather(*(service.lookup(KEY) for _ in range(10)))
        await asyncio.sleep(0.05)
        after = await service.lookup(KEY)
        return {a.result for a in answers}, after.result, source.calls[KEY]

    results, after, calls = _run(scenario, stale_while_revalidate_seconds=10)

    assert (results, after, calls) == ({"stale_while_revalidate"}, "hit", 2)


def test_revalidation_is_answered_by_a_fill_younger_than_the_floor() -> None:
    async def scenario(service: ProxySessionService, source: FakeSource, clock: Clock) -> Any:
        await service.lookup(KEY)
        within = await service.lookup(KEY, revalidate=True)
        clock.now += 2
        past = await service.lookup(KEY, revalidate=True)
        return within.result, past.result, source.calls[KEY]

    assert _run(scenario, revalidate_min_interval_seconds=1) == ("hit", "revalidated", 2)


def test_a_caller_past_its_rate_is_refused_but_others_are_served() -> None:
    keys = [("vc-fast", f"ps-{n}") for n in range(3)]

    async def scenario(service: ProxySessionService, source: FakeSource, _: Clock) -> Any:
        for key in keys:
            source.seed(key)
        await service.lookup(keys[0], caller="sub:a")
        with pytest.raises(Throttled):
            await service.lookup(keys[1], caller="sub:a")
        other = await service.lookup(keys[2], caller="sub:b")
        return other.result

    assert _run(scenario, caller_upstream_rate=1) == "miss"


def test_a_request_notes_how_the_cache_answered() -> None:
    async def scenario(service: ProxySessionService, *_: Any) -> Any:
        seen: list[CacheResult] = []
        await service.lookup(KEY, seen=seen)
        await service.lookup(KEY, seen=seen)
        return seen

    assert _run(scenario) == ["miss", "hit"]
