"""RFC 9211 `Cache-Status` and the `Cache-Control` a cached answer carries, from the
service's structured outcome, and the `If-None-Match` comparison both doors make.

The gateway's caches are named as a shared HTTP cache would name itself: `proxy-gateway`
for this process's cache, `proxy-gateway-shared` for the layer replicas share. The
header lists them closest to the origin first (RFC 9211 section 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from app.domain.outcome import CacheLayer, CacheOutcome

CACHE_NAMES: dict[CacheLayer, str] = {"local": "proxy-gateway", "shared": "proxy-gateway-shared"}

_formatted: dict[CacheOutcome, bytes] = {}
MEMOIZED = 4096
"""Formatted values kept: outcomes without a fault repeat (a hit per ttl, a miss, ...)."""


def cache_status(outcomes: CacheOutcome | Sequence[CacheOutcome]) -> bytes:
    """The `Cache-Status` value for one or more layers' outcomes, origin side first."""
    if isinstance(outcomes, CacheOutcome):
        return _member(outcomes)
    return b", ".join(_member(outcome) for outcome in outcomes)


def _member(outcome: CacheOutcome) -> bytes:
    if outcome.fault is not None:  # errors do not hash by value; these are rare anyway
        return _format(outcome)
    text = _formatted.get(outcome)
    if text is None:
        text = _format(outcome)
        if len(_formatted) < MEMOIZED:
            _formatted[outcome] = text
    return text


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


_cache_controls: dict[int, bytes] = {}


def private_max_age(seconds: int) -> bytes:
    """`Cache-Control: private, max-age=N` for an answer fresh for `seconds` more."""
    value = _cache_controls.get(seconds)
    if value is None:
        value = b"private, max-age=%d" % max(0, seconds)
        if len(_cache_controls) < MEMOIZED:
            _cache_controls[seconds] = value
    return value


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires; `*` matches any current entity."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))
