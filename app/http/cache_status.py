"""RFC 9211 `Cache-Status` and the `Cache-Control` a cached answer carries, from the
service's structured outcome, and the `If-None-Match` comparison both doors make.

The gateway's caches are named as a shared HTTP cache would name itself: `proxy-gateway`
for this process's cache, `proxy-gateway-shared` for the layer replicas share. The
header lists them closest to the origin first (RFC 9211 section 2).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from app.domain.outcome import CacheLayer, CacheOutcome

CACHE_NAMES: dict[CacheLayer, str] = {"local": "proxy-gateway", "shared": "proxy-gateway-shared"}

MEMOIZED = 4096
"""Formatted values kept: outcomes without a fault repeat (a hit per ttl, a miss, ...)."""


def cache_status(outcomes: CacheOutcome | Sequence[CacheOutcome]) -> bytes:
    """The `Cache-Status` value for one or more layers' outcomes, origin side first."""
    if isinstance(outcomes, CacheOutcome):
        return _member(outcomes)
    return b", ".join(_member(outcome) for outcome in outcomes)


def _member(outcome: CacheOutcome) -> bytes:
    if outcome.fault is not None:  # made for one answer each: not worth keeping
        return _format(outcome)
    return _formatted(outcome)


@functools.lru_cache(maxsize=MEMOIZED)
def _formatted(outcome: CacheOutcome) -> bytes:
    """`_format`, once per outcome (outcomes hash by identity, and the service hands out
    one per kind of answer)."""
    return _format(outcome)


def _format(outcome: CacheOutcome) -> bytes:
    parts = [CACHE_NAMES[outcome.layer]]
    if outcome.hit:
        parts.append("hit")
        if outcome.ttl is not None:
            parts.append(f"ttl={outcome.ttl}")
    else:
        if outcome.forward is not None:
            parts.append(f"fwd={outcome.forward}")
        if outcome.fault is not None:
            parts.append(f"fwd-status={outcome.fault.status}")
        elif outcome.fetched:
            parts.append("fwd-status=200" if outcome.found else "fwd-status=404")
        if outcome.stored:
            parts.append("stored")
        if outcome.collapsed:
            parts.append("collapsed")
    return "; ".join(parts).encode()


@functools.lru_cache(maxsize=MEMOIZED)
def private_max_age(seconds: int) -> bytes:
    """`Cache-Control: private, max-age=N` for an answer fresh for `seconds` more."""
    return b"private, max-age=%d" % max(0, seconds)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires; `*` matches any current entity."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))
