"""A bounded, time-aware LRU cache whose entries outlive their freshness for stale-if-error.

It knows keys, values and time; not HTTP, not AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cachetools import TLRUCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Entry(Generic[V]):
    """A cached value, fresh until `fresh_until`, kept (stale) until `keep_until`; stored
    at `stored_at` (the cache's clock), `size` bytes as measured when stored."""

    value: V
    fresh_until: float
    keep_until: float
    stored_at: float = 0.0
    size: int = 0

    def fresh(self, now: float) -> bool:
        """Whether the entry may answer without asking upstream."""
        return now < self.fresh_until

    def ttl(self, now: float) -> float:
        """Seconds of freshness left (0 once stale)."""
        return max(0.0, self.fresh_until - now)


def _keep_until(_key: Hashable, entry: Entry[Any], _now: float) -> float:
    return entry.keep_until


def _entry_size(entry: Entry[Any]) -> int:
    return entry.size


Sizeof = Callable[[Any, Any], int]
"""The bytes a key and its value hold, measured once when the entry is stored."""


class TtlCache(Generic[K, V]):
    """Entries expire past their stale window; least recently used go first beyond
    `maxsize` entries, or beyond `max_bytes` as `sizeof` measures them (cachetools'
    `getsizeof` sizing)."""

    def __init__(
        self,
        maxsize: int,
        timer: Callable[[], float] = time.monotonic,
        *,
        max_bytes: int | None = None,
        sizeof: Sizeof | None = None,
    ) -> None:
        self.timer = timer
        self.maxsize = maxsize
        self._sizeof = sizeof if max_bytes is not None else None
        self._data: TLRUCache[K, Entry[V]]
        if self._sizeof is None or max_bytes is None:
            self._data = TLRUCache(maxsize, _keep_until, timer=timer)
        else:
            # cachetools bounds the bytes; the entry count is bounded in `put`.
            self._data = TLRUCache(max_bytes, _keep_until, timer=timer, getsizeof=_entry_size)

    def get(self, key: K) -> Entry[V] | None:
        """The entry for `key`, fresh or stale, or None once it has expired entirely."""
        try:  # one lookup; `get` would look the key up twice
            return self._data[key]
        except KeyError:
            return None

    def put(self, key: K, value: V, ttl: float, stale_for: float = 0.0) -> Entry[V]:
        """Store `value` fresh for `ttl` seconds, then kept stale for `stale_for` more."""
        now = self.timer()
        if self._sizeof is None:
            entry = Entry(value, now + ttl, now + ttl + stale_for, now)
            self._data[key] = entry
            return entry
        entry = Entry(value, now + ttl, now + ttl + stale_for, now, self._sizeof(key, value))
        try:
            self._data[key] = entry
        except ValueError:  # larger than the whole bound: not kept (nor an older copy)
            self._data.pop(key, None)
            return entry
        while len(self._data) > self.maxsize:
            self._data.popitem()  # least recently used first: never the entry just stored
        return entry

    def pop(self, key: K) -> None:
        """Forget `key`, if it is held."""
        self._data.pop(key, None)

    @property
    def bytes(self) -> int:
        """The bytes the entries hold as measured (0 when only the entry count is bounded)."""
        return int(self._data.currsize) if self._sizeof is not None else 0

    def __len__(self) -> int:
        return len(self._data)


class PartedCache(Generic[K, V]):
    """Two `TtlCache`s behind one interface: the values `apart` selects live in a smaller
    one of their own, so that a flood of them evicts only each other, never the rest."""

    def __init__(
        self, main: TtlCache[K, V], aside: TtlCache[K, V], apart: Callable[[V], bool]
    ) -> None:
        self._main = main
        self._aside = aside
        self._apart = apart

    def get(self, key: K) -> Entry[V] | None:
        """The entry for `key` in either part, fresh or stale, or None."""
        entry = self._main.get(key)
        return entry if entry is not None else self._aside.get(key)

    def put(self, key: K, value: V, ttl: float, stale_for: float = 0.0) -> Entry[V]:
        """Store `value` in its part (and forget an older value of `key` in the other)."""
        into, other = (self._aside, self._main) if self._apart(value) else (self._main, self._aside)
        other.pop(key)
        return into.put(key, value, ttl, stale_for)

    def pop(self, key: K) -> None:
        """Forget `key`, if either part holds it."""
        self._main.pop(key)
        self._aside.pop(key)

    @property
    def bytes(self) -> int:
        """The bytes both parts hold as measured."""
        return self._main.bytes + self._aside.bytes

    def __len__(self) -> int:
        return len(self._main) + len(self._aside)
