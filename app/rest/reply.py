"""What the REST door answers for a session, shared by its FastAPI route and its fast path.

Both paths hand over the same three request headers (each its first value, as FastAPI's
`Header()` reads it) and send what `session_reply` builds, so they cannot drift apart.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

from starlette.types import Scope

from app.domain.outcome import CacheOutcome, Outcomes
from app.domain.types import SessionKey
from app.http.asgi import request_context
from app.http.cache_status import cache_status, etag_matches, private_max_age
from app.http.errors import problem_reply
from app.http.revalidation import wants_revalidation
from app.http.state import caller_of
from app.service import Lookup, Missing, ProxySessionService

SESSION_PATH = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"

_JSON = (b"content-type", b"application/json")

RawHeaders = tuple[tuple[bytes, bytes], ...]


class SessionReply(NamedTuple):
    """A finished answer: status, raw headers (length and type included), body."""

    status: int
    headers: RawHeaders
    body: bytes


@dataclass(frozen=True, slots=True)
class Conditions:
    """The request headers that change the answer, each its first value if sent."""

    if_none_match: str | None = None
    cache_control: str | None = None
    pragma: str | None = None

    @classmethod
    def from_raw(cls, headers: list[tuple[bytes, bytes]]) -> Conditions:
        """Read them from raw ASGI headers in one pass, keeping each name's first value."""
        if_none_match = cache_control = pragma = None
        for name, value in headers:
            if name == b"if-none-match":
                if if_none_match is None:
                    if_none_match = value.decode("latin-1")
            elif name == b"cache-control":
                if cache_control is None:
                    cache_control = value.decode("latin-1")
            elif name == b"pragma" and pragma is None:
                pragma = value.decode("latin-1")
        if if_none_match is cache_control is pragma is None:
            return NO_CONDITIONS
        return cls(if_none_match, cache_control, pragma)


NO_CONDITIONS = Conditions()


async def session_reply(
    service: ProxySessionService,
    key: SessionKey,
    conditions: Conditions,
    scope: Scope,
) -> SessionReply:
    """Look `key` up for the request of `scope` (its caller charged for an upstream call)
    and answer with the cached bytes, 304 when `If-None-Match` matches, or the 404 problem
    when there is no such session (with its `Cache-Status`); the request's context gets how
    the cache answered (its access line) and, traced, the upstream call it started or
    joined (its span's links).

    Raises the lookup's GatewayError; the caller renders it (app.http.errors).
    """
    revalidate = _revalidates(conditions)
    context = request_context(scope)
    lookup = await service.lookup(
        key,
        caller=caller_of(context, scope),
        revalidate=revalidate,
        seen=context.cache_results,
        joined=context.joined,
    )
    if isinstance(lookup, Missing):
        headers, body = problem_reply(lookup.error, context, lookup.outcome)
        return SessionReply(lookup.error.status, tuple(headers), body)
    return _reply(lookup, conditions)


def _revalidates(conditions: Conditions) -> bool:
    """Whether the request asks for a revalidation (`no-cache`, `max-age=0`, `Pragma`)."""
    return conditions is not NO_CONDITIONS and wants_revalidation(
        conditions.cache_control, conditions.pragma
    )


def _reply(lookup: Lookup, conditions: Conditions) -> SessionReply:
    record = lookup.record
    if conditions.if_none_match is not None and etag_matches(conditions.if_none_match, record.etag):
        return SessionReply(304, _validators(lookup), b"")
    return SessionReply(200, _full_headers(lookup), record.body)


MEMOIZED_HEADERS = 4096
"""Header sets kept: one per body (ETag), ttl and outcome, so a hit formats nothing."""


def _validators(lookup: Lookup) -> RawHeaders:
    """ETag, Cache-Control and Cache-Status: what a 304 carries."""
    return _validator_headers(lookup.record.etag, lookup.ttl, lookup.outcome)


def _validator_headers(etag: str, ttl: int, outcome: Outcomes) -> RawHeaders:
    return (
        (b"etag", etag.encode()),
        (b"cache-control", private_max_age(ttl)),
        (b"cache-status", cache_status(outcome)),
    )


def _full_headers(lookup: Lookup) -> RawHeaders:
    """A 200's headers, made once per body, ttl and outcome (a hit's repeat for a second)."""
    record, outcome = lookup.record, lookup.outcome
    # A stale answer (its error is no key) or one through the shared layer: rarer than hits.
    if not isinstance(outcome, CacheOutcome) or outcome.fault is not None:
        return _with_body(record.etag, lookup.ttl, outcome, len(record.body))
    return _memoized_with_body(record.etag, lookup.ttl, outcome, len(record.body))


def _with_body(etag: str, ttl: int, outcome: Outcomes, length: int) -> RawHeaders:
    return (
        *_validator_headers(etag, ttl, outcome),
        (b"content-length", b"%d" % length),
        _JSON,
    )


_memoized_with_body = functools.lru_cache(maxsize=MEMOIZED_HEADERS)(_with_body)
