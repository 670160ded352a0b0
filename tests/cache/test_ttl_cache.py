"""The TTL cache on its own, with a clock the test controls."""

from __future__ import annotations

import pytest

from app.cache.ttl_cache import PartedCache, TtlCache
from tests.support.clock import Clock

pytestmark = pytest.mark.fast


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


def _sizeof(key: str, value: bytes) -> int:
    return len(key) + len(value)


def test_the_byte_bound_evicts_least_recently_used_first() -> None:
    clock = Clock()
    cache: TtlCache[str, bytes] = TtlCache(100, timer=clock, max_bytes=1000, sizeof=_sizeof)

    for i in range(50):  # a flood of large entries
        cache.put(f"k{i:02}", b"x" * 297, ttl=30)
        assert cache.bytes <= 1000

    assert len(cache) == 3
    assert cache.bytes == 900
    assert [k for k in (f"k{i:02}" for i in range(50)) if cache.get(k) is not None] == [
        "k47",
        "k48",
        "k49",
    ]
    entry = cache.get("k49")
    assert entry is not None
    assert entry.size == 300


def test_the_entry_count_still_bounds_a_byte_bounded_cache() -> None:
    clock = Clock()
    cache: TtlCache[str, bytes] = TtlCache(2, timer=clock, max_bytes=10_000, sizeof=_sizeof)
    cache.put("a", b"1", ttl=30)
    cache.put("b", b"2", ttl=30)
    cache.get("a")
    cache.put("c", b"3", ttl=30)

    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) != (None, None)
    assert len(cache) == 2
    assert cache.bytes == 4


def test_an_entry_larger_than_the_byte_bound_is_not_kept() -> None:
    clock = Clock()
    cache: TtlCache[str, bytes] = TtlCache(10, timer=clock, max_bytes=100, sizeof=_sizeof)
    cache.put("k", b"small", ttl=30)
    cache.put("k", b"x" * 200, ttl=30)

    assert cache.get("k") is None
    assert cache.bytes == 0


def test_a_parted_cache_keeps_a_flood_of_one_kind_apart() -> None:
    clock = Clock()
    main: TtlCache[str, str] = TtlCache(3, timer=clock)
    aside: TtlCache[str, str] = TtlCache(2, timer=clock)
    cache = PartedCache(main, aside, apart=lambda value: value.startswith("missing"))
    cache.put("hot", "session", ttl=30)

    for n in range(100):
        cache.put(f"unknown-{n}", "missing", ttl=5)

    hot = cache.get("hot")
    assert hot is not None
    assert hot.value == "session"
    assert cache.get("unknown-0") is None
    assert cache.get("unknown-99") is not None
    assert len(cache) == 3

    cache.put("unknown-99", "session now", ttl=30)  # a key moves parts: one copy only
    cache.pop("hot")
    assert [len(main), len(aside)] == [1, 1]
    moved = cache.get("unknown-99")
    assert moved is not None
    assert moved.value == "session now"
