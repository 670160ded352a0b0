"""The GraphQL request context: the shared service plus a per-request memo of keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import Request
from strawberry.fastapi import BaseContext

from app.domain.model import SessionRecord, validate_key
from app.domain.types import SessionKey
from app.graphql.types import ProxySession
from app.http.asgi import request_context
from app.http.revalidation import wants_revalidation
from app.http.state import caller_of, get_service, get_state
from app.observability.context import RequestContext
from app.observability.metrics import Metrics
from app.service.callers import UNKNOWN
from app.service.sessions import Missing, ProxySessionService


class Context(BaseContext):
    """Per request: one fetch per key, however many aliases ask for it."""

    def __init__(
        self,
        service: ProxySessionService,
        metrics: Metrics,
        *,
        revalidate: bool,
        mask_phones: bool = False,
        caller: str = UNKNOWN,
        facts: RequestContext | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.metrics = metrics
        self.revalidate = revalidate
        self.caller = caller
        self.facts = facts or RequestContext(None)
        """The request's context (its access line's cache results, its span's facts)."""
        self.mask_phones = mask_phones
        self._loads: dict[SessionKey, asyncio.Future[ProxySession]] = {}
        # What the response was built from, for the response cache; a stale answer is
        # never cached.
        self.sources: dict[SessionKey, SessionRecord] = {}
        self.cacheable = True
        # The least freshness left among those sessions (seconds): how long a browser may
        # keep a persisted query's answer (GET).
        self.fresh_for: int | None = None

    async def proxy_session(self, voice_connector_id: str, proxy_session_id: str) -> ProxySession:
        """The session for these ids, fetched once per request and shared between aliases."""
        key = validate_key(voice_connector_id, proxy_session_id)
        load = self._loads.get(key)
        if load is None:
            load = asyncio.ensure_future(self._load(key))
            self._loads[key] = load
        return await asyncio.shield(load)

    async def _load(self, key: SessionKey) -> ProxySession:
        facts = self.facts
        lookup = await self.service.lookup(
            key,
            caller=self.caller,
            revalidate=self.revalidate,
            seen=facts.cache_results,
            joined=facts.joined,
        )
        if isinstance(lookup, Missing):
            raise lookup.error
        self.sources[key] = lookup.record
        if lookup.result == "stale":
            self.cacheable = False
        ttl = max(0, lookup.ttl)
        self.fresh_for = ttl if self.fresh_for is None else min(self.fresh_for, ttl)
        return ProxySession.from_domain(lookup.record.session, mask_phones=self.mask_phones)


def context_getter(*, mask_phones: bool) -> Callable[[Request], Awaitable[Context]]:
    """The router's `context_getter`, with the phone-masking setting fixed at start."""

    async def get_context(request: Request) -> Context:
        state = get_state(request)
        facts = request_context(request.scope)
        context = Context(
            get_service(request),
            state.metrics,
            revalidate=wants_revalidation(
                request.headers.get("cache-control"), request.headers.get("pragma")
            ),
            mask_phones=mask_phones,
            caller=caller_of(facts, request.scope),
            facts=facts,
        )
        request.state.graphql_context = context  # for the router's response cache
        return context

    return get_context
