"""The one service both doors call: cache, single flight, negative caching, stale-if-error."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from app.cache.singleflight import SingleFlight
from app.cache.ttl_cache import Entry, TtlCache
from app.domain.errors import GatewayError, NotFound, UpstreamFault
from app.domain.model import ProxySession, SessionRecord
from app.domain.outcome import CacheOutcome, Forward
from app.domain.types import CacheObserver, CacheResult, SessionKey
from app.settings import Settings

CachedValue = SessionRecord | NotFound
"""A found session, or a remembered NotFound (negative entry)."""

Clock = Callable[[], float]
"""Monotonic seconds; the service's only notion of time (tests pass one they advance)."""


class SessionSource(Protocol):
    """Where sessions come from on a miss (the upstream client)."""

    async def get_proxy_session(self, key: SessionKey) -> ProxySession:
        """Fetch one session or raise a GatewayError."""


class Lookup(NamedTuple):
    """A session record, how the cache answered for it, and its whole seconds of freshness.

    A named tuple: one is made per request, and a frozen dataclass costs twice as much.
    """

    record: SessionRecord
    result: CacheResult
    ttl: int
    outcome: CacheOutcome


class ProxySessionService:
    """Answers `get` from the cache, or from one coalesced upstream call per key."""

    def __init__(
        self,
        settings: Settings,
        source: SessionSource,
        observer: CacheObserver,
        clock: Clock = time.monotonic,
    ) -> None:
        self._settings = settings
        self._source = source
        self._observer = observer
        self._cache: TtlCache[SessionKey, CachedValue] = TtlCache(
            settings.cache_max_entries, timer=clock
        )
        self._flights: SingleFlight[SessionKey, SessionRecord] = SingleFlight()
        self._mask_all = settings.mask_phone_numbers == "all"
        self._clock = clock

    def fresh_record(self, key: SessionKey) -> SessionRecord | None:
        """The record cached fresh for `key`, or None; nothing is counted."""
        entry = self._cache.get(key)
        if entry is None or not entry.fresh(self._clock()) or isinstance(entry.value, NotFound):
            return None
        return entry.value

    def count_hit(self) -> None:
        """Count a hit served from a record obtained with `fresh_record`."""
        self._observer.cache_result("hit")

    def fresh_hit(self, key: SessionKey) -> Lookup | None:
        """The session for `key` if the cache holds it fresh, counted as a hit; else None.

        No await, no upstream: the fast path of every repeated request.
        """
        entry = self._cache.get(key)
        return None if entry is None else self._hit(entry)

    def _hit(self, entry: Entry[CachedValue]) -> Lookup | None:
        """The hit `entry` answers while it is fresh and found (counted), else None."""
        record = entry.value
        left = entry.fresh_until - self._clock()
        if left <= 0 or isinstance(record, NotFound):
            return None
        ttl = _seconds(left)
        self._observer.cache_result("hit")
        return Lookup(record, "hit", ttl, _hit_outcome(ttl))

    async def get(self, key: SessionKey, *, revalidate: bool = False) -> Lookup:
        """The session for `key`; `revalidate` skips a fresh entry (but still coalesces)."""
        entry = self._cache.get(key)
        if entry is not None and not revalidate:
            if (hit := self._hit(entry)) is not None:
                return hit
            now = self._clock()
            if entry.fresh(now) and isinstance(entry.value, NotFound):
                self._observer.cache_result("negative")
                remembered = NotFound(entry.value.detail, upstream_code=entry.value.upstream_code)
                remembered.cache = _hit_outcome(_seconds(entry.ttl(now)))
                raise remembered
        task, leader = self._flights.join(key, lambda: self._fill(key))
        try:
            record = await _shielded(task)
        except UpstreamFault as fault:
            stale = self._stale_entry(key)
            if stale is None:
                self._observer.cache_result("miss" if leader else "coalesced")
                raise
            self._observer.cache_result("stale")
            return Lookup(stale, "stale", 0, CacheOutcome("local", forward="stale", fault=fault))
        except GatewayError:
            self._observer.cache_result("miss" if leader else "coalesced")
            raise
        ttl = _seconds(self._ttl_for(record))
        forward: Forward = "request" if revalidate else ("stale" if entry is not None else "miss")
        if not leader:
            self._observer.cache_result("coalesced")
            return Lookup(record, "coalesced", ttl, _COLLAPSED[forward])
        result: CacheResult = "revalidated" if entry is not None or revalidate else "miss"
        self._observer.cache_result(result)
        return Lookup(record, result, ttl, _STORED[forward])

    async def _fill(self, key: SessionKey) -> SessionRecord:
        """The flight's work: one upstream call, then the cache filled by the flight itself."""
        try:
            session = await self._source.get_proxy_session(key)
        except NotFound as error:
            # A fresh error, not the raised one: that one drags its traceback (botocore's
            # frames, the reply) and its cause along for as long as the entry lives.
            remembered = NotFound(error.detail, upstream_code=error.upstream_code)
            self._cache.put(key, remembered, self._settings.negative_cache_ttl_seconds)
            self._observer.cache_size(len(self._cache))
            raise
        if self._mask_all:
            session = session.masked()
        record = SessionRecord.render(session)
        self._cache.put(key, record, self._ttl_for(record), self._settings.stale_if_error_seconds)
        self._observer.cache_size(len(self._cache))
        return record

    def _ttl_for(self, record: SessionRecord) -> float:
        if record.session.closed:
            return self._settings.closed_cache_ttl_seconds
        return self._settings.cache_ttl_seconds

    def _stale_entry(self, key: SessionKey) -> SessionRecord | None:
        entry: Entry[CachedValue] | None = self._cache.get(key)
        if entry is None or isinstance(entry.value, NotFound):
            return None
        return entry.value


_FORWARDS: tuple[Forward, ...] = ("miss", "stale", "request")
_STORED = {f: CacheOutcome("local", forward=f, fetched=True, stored=True) for f in _FORWARDS}
_COLLAPSED = {f: CacheOutcome("local", forward=f, collapsed=True) for f in _FORWARDS}
_HITS: dict[int, CacheOutcome] = {}
MEMOIZED_HITS = 4096
"""Hit outcomes kept, one per distinct ttl (ttls are whole seconds up to the longest TTL)."""


def _hit_outcome(ttl: int) -> CacheOutcome:
    """The outcome of a fresh hit with `ttl` seconds left, made once per distinct ttl."""
    outcome = _HITS.get(ttl)
    if outcome is None:
        outcome = CacheOutcome("local", hit=True, ttl=ttl)
        if len(_HITS) < MEMOIZED_HITS:
            _HITS[ttl] = outcome
    return outcome


async def _shielded(task: asyncio.Task[SessionRecord]) -> SessionRecord:
    return await asyncio.shield(task)


def _seconds(value: float) -> int:
    """Whole seconds, rounded half up, for freshness left."""
    return int(value + 0.5)
