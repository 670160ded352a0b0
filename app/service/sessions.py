"""The one service both doors call: cache, single flight, negative caching, stale-if-error."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable
from typing import NamedTuple, Protocol

from app.cache.singleflight import SingleFlight
from app.cache.ttl_cache import Entry, PartedCache, TtlCache
from app.domain.answer import Answer, Shared
from app.domain.errors import GatewayError, NotFound, Throttled, UpstreamFault
from app.domain.model import ProxySession, SessionRecord, measured_size
from app.domain.outcome import CacheOutcome, Forward, Outcomes
from app.domain.types import CacheObserver, CacheResult, CallRecord, SessionKey
from app.service.callers import UNKNOWN, CallerBudget, CallerRates
from app.settings import Settings

log = logging.getLogger(__name__)

CachedValue = SessionRecord | NotFound
"""A found session, or a remembered NotFound (negative entry)."""

Clock = Callable[[], float]
"""Monotonic seconds; the service's only notion of time (tests pass one they advance)."""


class SessionSource(Protocol):
    """Where sessions come from on a miss (the upstream client)."""

    async def get_proxy_session(
        self, key: SessionKey, deadline: float | None = None, record: CallRecord | None = None
    ) -> ProxySession:
        """Fetch one session or raise a GatewayError; by `deadline` (event-loop time) when
        given, else within the upstream timeout; its attempts noted in `record` (traced)."""


class SharedCache(Protocol):
    """The layer every replica shares (fleet mode): one upstream call per key for the fleet."""

    async def fetch(
        self,
        key: SessionKey,
        origin: Callable[[float], Awaitable[Answer]],
        *,
        revalidate: bool,
        deadline: float,
    ) -> Shared:
        """A fresh answer for `key`: the shared one, or `origin`'s (called by one replica of
        the fleet, by `deadline`, event-loop time)."""

    async def stale(self, key: SessionKey) -> SessionRecord | None:
        """A found record for `key` within its stale window (stale-if-error), or None."""


class Lookup(NamedTuple):
    """A session record, how the cache answered for it, and its whole seconds of freshness.

    A named tuple: one is made per request, and a frozen dataclass costs twice as much.
    """

    record: SessionRecord
    result: CacheResult
    ttl: int
    outcome: Outcomes


class Missing(NamedTuple):
    """The origin's answer that there is no such session (remembered or fresh), how the
    cache answered for it, and that layer's outcome."""

    error: NotFound
    result: CacheResult
    outcome: Outcomes


class Filled(NamedTuple):
    """What a flight got: the record (or the origin's NotFound), its seconds of freshness,
    the shared layer's outcome."""

    record: SessionRecord | NotFound
    fresh_for: float
    shared: CacheOutcome | None


class ProxySessionService:
    """Answers `get` from the cache, or from one coalesced upstream call per key.

    In fleet mode (`shared` given) a miss here asks the shared layer, which makes one
    upstream call for the whole fleet.
    """

    def __init__(
        self,
        settings: Settings,
        source: SessionSource,
        observer: CacheObserver,
        clock: Clock = time.monotonic,
        *,
        shared: SharedCache | None = None,
        caller_rates: CallerBudget | None = None,
    ) -> None:
        self._settings = settings
        self._source = source
        self._observer = observer
        self._cache = _session_cache(settings, clock)
        self._flights: SingleFlight[SessionKey, Filled] = SingleFlight(_refresh_failed)
        # The call records of flights started by traced requests, for those that join them.
        self._records: dict[SessionKey, CallRecord] = {}
        self._mask_all = settings.mask_phone_numbers == "all"
        self._clock = clock
        self._shared = shared
        self._swr = settings.stale_while_revalidate_seconds
        # How long past its freshness an entry is kept: for stale-if-error and for SWR.
        self._keep = max(settings.stale_if_error_seconds, self._swr)
        self._revalidate_min = settings.revalidate_min_interval_seconds
        rate = settings.caller_upstream_rate
        # Fleet mode counts each caller's calls in the shared layer; else this process does.
        self._caller_rates: CallerBudget | None = caller_rates
        if caller_rates is None and rate > 0:
            self._caller_rates = CallerRates(rate, clock)

    def invalidate(self, key: SessionKey) -> None:
        """Drop this process's copy of `key` (another replica revalidated it)."""
        self._cache.pop(key)

    @property
    def cached_bytes(self) -> int:
        """The bytes this process's cache holds, as measured when each entry was filled."""
        return self._cache.bytes

    def fresh_record(self, key: SessionKey) -> SessionRecord | None:
        """The record cached fresh for `key`, or None; nothing is counted."""
        entry = self._cache.get(key)
        if entry is None or not entry.fresh(self._clock()) or isinstance(entry.value, NotFound):
            return None
        return entry.value

    def count_hit(self, seen: list[CacheResult] | None = None) -> None:
        """Count a hit served from a record obtained with `fresh_record`."""
        self._count("hit", seen)

    def _count(self, result: CacheResult, seen: list[CacheResult] | None) -> None:
        """Count `result`, and note it in the request's `seen` (its access line)."""
        self._observer.cache_result(result)
        if seen is not None:
            seen.append(result)

    async def lookup(
        self,
        key: SessionKey,
        *,
        caller: str = UNKNOWN,
        revalidate: bool = False,
        seen: list[CacheResult] | None = None,
        joined: list[CallRecord] | None = None,
    ) -> Lookup | Missing:
        """The session for `key` (a Lookup), or the origin's word that there is none (a
        Missing), from this process's cache or one coalesced fill. The upstream call, if
        one is made, is charged to `caller`; `revalidate` skips a fresh entry (but still
        coalesces), unless the entry was filled less than `revalidate_min_interval_seconds`
        ago: then that fill answers. How the cache answered is counted, and noted in
        `seen` when given (the request's access line); a traced request (`joined` given)
        gets the record of the upstream call it started or joined (its span's links).

        Raises the GatewayError a fill failed with, when no stale record may answer."""
        entry = self._cache.get(key)
        if (
            revalidate
            and entry is not None
            and self._clock() - entry.stored_at < self._revalidate_min
        ):
            revalidate = False
        if entry is not None and not revalidate:
            now = self._clock()
            value = entry.value
            if entry.fresh_until > now:
                ttl = _seconds(entry.fresh_until - now)
                if isinstance(value, NotFound):
                    self._count("negative", seen)
                    remembered = NotFound(value.detail, upstream_code=value.upstream_code)
                    return Missing(remembered, "negative", _hit_outcome(ttl))
                self._count("hit", seen)
                return Lookup(value, "hit", ttl, _hit_outcome(ttl))
            if (early := self._while_revalidating(key, entry, now, seen)) is not None:
                return early
        task, leader = self._join(key, revalidate, caller, joined)
        flown: CacheResult = "miss" if leader else "coalesced"
        try:
            filled = await _shielded(task)
        except UpstreamFault as fault:
            stale = await self._stale_record(key)
            if stale is None:
                self._count(flown, seen)
                raise
            self._count("stale", seen)
            return Lookup(stale, "stale", 0, CacheOutcome("local", forward="stale", fault=fault))
        except GatewayError:
            self._count(flown, seen)
            raise
        record = filled.record
        forward = _forward(entry, revalidate)
        if isinstance(record, NotFound):
            self._count(flown, seen)
            return _missing(record, filled.shared, forward, leader, flown)
        if filled.shared is not None and filled.shared.fault is not None:
            # The call failed; the shared layer's expired entry answers (stale-if-error).
            self._count("stale", seen)
            local = CacheOutcome("local", forward="stale", fault=filled.shared.fault)
            return Lookup(record, "stale", 0, (filled.shared, local))
        ttl = _seconds(filled.fresh_for)
        if not leader:
            self._count("coalesced", seen)
            return Lookup(record, "coalesced", ttl, _layers(filled, _COLLAPSED[forward]))
        result: CacheResult = "revalidated" if entry is not None or revalidate else "miss"
        if filled.shared is not None and filled.shared.hit:
            result = "shared_hit"
        self._count(result, seen)
        stored = _STORED[forward] if filled.shared is None else _VIA_SHARED[forward]
        return Lookup(record, result, ttl, _layers(filled, stored))

    def _join(
        self,
        key: SessionKey,
        revalidate: bool,
        caller: str = UNKNOWN,
        joined: list[CallRecord] | None = None,
    ) -> tuple[asyncio.Task[Filled], bool]:
        """The flight for `key` (started if none), and whether this request started it.

        A traced request (`joined` given) starting a flight gives it a record its upstream
        attempts are noted in; one joining a flight gets that record."""
        if joined is None:
            return self._flights.join(
                key, lambda: self._fill(key, revalidate=revalidate, caller=caller)
            )
        record: CallRecord = []
        task, leader = self._flights.join(
            key, lambda: self._fill(key, revalidate=revalidate, caller=caller, record=record)
        )
        if leader:
            self._records[key] = record
            task.add_done_callback(lambda _: self._forget_record(key, record))
        else:
            record = self._records.get(key, record)
        joined.append(record)
        return task, leader

    def _forget_record(self, key: SessionKey, record: CallRecord) -> None:
        if self._records.get(key) is record:
            del self._records[key]

    def _while_revalidating(
        self,
        key: SessionKey,
        entry: Entry[CachedValue],
        now: float,
        seen: list[CacheResult] | None,
    ) -> Lookup | None:
        """Within the stale-while-revalidate window, the old record at once, with one
        background refresh of `key` started (or already running); else None."""
        record = entry.value
        stale_for = now - entry.fresh_until
        if isinstance(record, NotFound) or not 0 <= stale_for < self._swr:
            return None
        self._flights.join(key, lambda: self._fill(key, revalidate=False), background=True)
        self._count("stale_while_revalidate", seen)
        ttl = -math.ceil(stale_for)
        return Lookup(record, "stale_while_revalidate", ttl, _hit_outcome(ttl))

    async def _fill(
        self,
        key: SessionKey,
        *,
        revalidate: bool,
        caller: str = UNKNOWN,
        record: CallRecord | None = None,
    ) -> Filled:
        """The flight's work: the entry from upstream (through the shared layer in fleet
        mode), then this process's cache filled by the flight itself."""
        if self._shared is None:
            answer, shared = await self._from_upstream(key, caller, None, record), None
        else:
            deadline = asyncio.get_running_loop().time() + self._settings.upstream_timeout_seconds
            answer, shared = await self._shared.fetch(
                key,
                lambda by: self._from_upstream(key, caller, by, record),
                revalidate=revalidate,
                deadline=deadline,
            )
        fresh_for = self._keep_locally(key, answer)
        value = answer.value
        if isinstance(value, NotFound) and shared is not None:
            shared = _not_found(shared)
        return Filled(value, fresh_for, shared)

    async def _from_upstream(
        self,
        key: SessionKey,
        caller: str,
        deadline: float | None = None,
        record: CallRecord | None = None,
    ) -> Answer:
        """One upstream call (by `deadline`, when given), as an answer with its freshness.

        The call is charged to the caller whose request started the flight; a caller past
        `caller_upstream_rate` is refused (Throttled, which a stale entry may answer)."""
        if self._caller_rates is not None and not await self._caller_rates.spend(caller):
            raise Throttled("Too many upstream calls caused by this caller; retry shortly.")
        try:
            session = await self._source.get_proxy_session(key, deadline, record)
        except NotFound as error:
            # A fresh error, not the raised one: that one drags its traceback (botocore's
            # frames, the reply) and its cause along for as long as the entry lives.
            remembered = NotFound(error.detail, upstream_code=error.upstream_code)
            return Answer(remembered, self._settings.negative_cache_ttl_seconds, 0)
        if self._mask_all:
            session = session.masked()
        rendered = SessionRecord.render(session)
        return Answer(rendered, self._ttl_for(rendered), self._keep)

    def _keep_locally(self, key: SessionKey, answer: Answer) -> float:
        """Put `answer` in this process's cache for what is left of it; its freshness left."""
        # To the millisecond: what passed since the entry was made is not worth less.
        fresh_for = round(answer.fresh_for, 3)
        self._cache.put(key, answer.value, fresh_for, max(0.0, answer.keep_for))
        self._observer.cache_size(len(self._cache))
        return fresh_for

    def _ttl_for(self, record: SessionRecord) -> float:
        if record.session.closed:
            return self._settings.closed_cache_ttl_seconds
        return self._settings.cache_ttl_seconds

    async def _stale_record(self, key: SessionKey) -> SessionRecord | None:
        """A found record past its freshness that may still answer: this process's, else
        (fleet mode) the shared layer's."""
        entry: Entry[CachedValue] | None = self._cache.get(key)
        if entry is not None and not isinstance(entry.value, NotFound):
            return entry.value
        if self._shared is None:
            return None
        return await self._shared.stale(key)


def _refresh_failed(key: SessionKey, error: BaseException) -> None:
    """Log a background refresh's failure (the entry stays as it was), without its ids."""
    if isinstance(error, NotFound):  # an answer, cached as such: no failure
        return
    if isinstance(error, GatewayError):
        log.warning(
            "background refresh of a session failed: the cached one is kept",
            extra={"outcome": error.code, "upstream_code": error.upstream_code},
        )
    else:
        log.error(
            "background refresh of a session failed unexpectedly",
            extra={"error_type": type(error).__name__},
        )


ENTRY_OVERHEAD = sys.getsizeof(Entry(None, 0.0, 0.0, 0.0, 0)) + 3 * sys.getsizeof(0.0)
"""The bytes of an entry around its value: the Entry and its floats."""


NOT_FOUND_SHARE = 10
"""One part in this many of the cache's bounds holds NotFound answers, apart from the
sessions: a flood of unknown ids evicts only other NotFound answers."""


def _session_cache(
    settings: Settings, clock: Clock
) -> PartedCache[SessionKey, CachedValue] | TtlCache[SessionKey, CachedValue]:
    entries, max_bytes = settings.cache_max_entries, settings.cache_max_bytes
    aside = entries // NOT_FOUND_SHARE
    if aside == 0:  # too small a cache to part
        return TtlCache(entries, timer=clock, max_bytes=max_bytes, sizeof=_entry_size)
    aside_bytes = max_bytes // NOT_FOUND_SHARE
    return PartedCache(
        TtlCache(
            entries - aside, timer=clock, max_bytes=max_bytes - aside_bytes, sizeof=_entry_size
        ),
        TtlCache(aside, timer=clock, max_bytes=aside_bytes, sizeof=_entry_size),
        apart=lambda value: isinstance(value, NotFound),
    )


def _entry_size(key: SessionKey, value: CachedValue) -> int:
    """A cache entry's measured bytes: the rendered value, its key, the entry around it."""
    return measured_size(value) + measured_size(key) + ENTRY_OVERHEAD


def _forward(entry: Entry[CachedValue] | None, revalidate: bool) -> Forward:
    """Why a lookup went past this process's cache."""
    return "request" if revalidate else ("stale" if entry is not None else "miss")


def _missing(
    error: NotFound,
    shared: CacheOutcome | None,
    forward: Forward,
    leader: bool,
    result: CacheResult,
) -> Missing:
    """The NotFound a flight got, for one of its requests: its own copy (the flight's is
    shared by all its requests), with the outcome of every layer."""
    answer = NotFound(error.detail, upstream_code=error.upstream_code)
    if not leader:
        local = _COLLAPSED[forward]
    elif shared is None:
        local = _NOT_FOUND_STORED[forward]
    else:
        local = _VIA_SHARED["miss" if shared.hit else forward]
    return Missing(answer, result, local if shared is None else (shared, local))


def _not_found(shared: CacheOutcome) -> CacheOutcome:
    """The shared layer's outcome of a lookup the origin answered with a NotFound."""
    if not shared.fetched:
        return shared
    return _NOT_FOUND_SHARED[(shared.forward or "miss", shared.stored)]


def _layers(filled: Filled, local: CacheOutcome) -> Outcomes:
    """The outcomes to show: the shared layer's (fleet mode), then this process's."""
    return local if filled.shared is None else (filled.shared, local)


_FORWARDS: tuple[Forward, ...] = ("miss", "stale", "request")
_STORED = {f: CacheOutcome("local", forward=f, fetched=True, stored=True) for f in _FORWARDS}
_COLLAPSED = {f: CacheOutcome("local", forward=f, collapsed=True) for f in _FORWARDS}
_NOT_FOUND_STORED = {
    f: CacheOutcome("local", forward=f, fetched=True, stored=True, found=False) for f in _FORWARDS
}
_NOT_FOUND_SHARED = {
    (f, stored): CacheOutcome("shared", forward=f, fetched=True, stored=stored, found=False)
    for f in _FORWARDS
    for stored in (False, True)
}
# In fleet mode this process asks the shared layer, not the origin: the shared layer's
# outcome says what the origin answered.
_VIA_SHARED = {f: CacheOutcome("local", forward=f, stored=True) for f in _FORWARDS}
MEMOIZED_HITS = 4096
"""Hit outcomes kept, one per distinct ttl (ttls are whole seconds up to the longest TTL)."""


@functools.lru_cache(maxsize=MEMOIZED_HITS)
def _hit_outcome(ttl: int) -> CacheOutcome:
    """The outcome of a fresh hit with `ttl` seconds left, made once per distinct ttl."""
    return CacheOutcome("local", hit=True, ttl=ttl)


async def _shielded(task: asyncio.Task[Filled]) -> Filled:
    return await asyncio.shield(task)


def _seconds(value: float) -> int:
    """Whole seconds, rounded half up, for freshness left."""
    return int(value + 0.5)
