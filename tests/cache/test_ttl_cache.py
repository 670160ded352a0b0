"""The TTL cache on its own, with a clock the test controls."""

from __future__ import annotations

from app.cache.ttl_cache import TtlCache
from tests.support.clock import Clock


def test_entry_is_fresh_then_stale_then_gone() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(10, timer=clock)
    cache.put("k", "v", ttl=30, stale_for=300)

    entry = cache.get("k")
    assert entry is not None
    assert entry.fresh(clock.now)
    assert entry.ttl(clock.now) == 30

    clock.now += 31
    entry = cache.get("k")
    assert entry is not None
    assert not entry.fresh(clock.now)
    assert entry.ttl(clock.now) == 0

    clock.now += 300
    assert cache.get("k") is None


def test_without_stale_window_the_entry_goes_at_expiry() -> None:
    clock = Clock()
    cache: TtlCache[str, str] = TtlCache(10, timer=clock)
    cache.put("k", "v", ttl=5)

    clock.now += 5
    assert cache.get("k") is None


def test_least_recently_used_goes_first_beyond_the_bound() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(2, timer=clock)
    cache.put("a", 1, ttl=30)
    cache.put("b", 2, ttl=30)
    cache.get("a")
    cache.put("c", 3, ttl=30)

    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    assert len(cache) == 2
