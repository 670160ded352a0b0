"""The GraphQL request context: the shared service plus a per-request memo of keys."""

from __future__ import annotations

import asyncio

from strawberry.fastapi import BaseContext

from app.graphql.types import ProxySession
from app.model import validate_key
from app.observability.metrics import Metrics
from app.service import ProxySessionService
from app.types import SessionKey


class Context(BaseContext):
    """Per request: one fetch per key, however many aliases ask for it."""

    def __init__(self, service: ProxySessionService, metrics: Metrics, *, revalidate: bool) -> None:
        super().__init__()
        self.service = service
        self.metrics = metrics
        self.revalidate = revalidate
        self._loads: dict[SessionKey, asyncio.Future[ProxySession]] = {}

    async def proxy_session(self, voice_connector_id: str, proxy_session_id: str) -> ProxySession:
        """The session for these ids, fetched once per request and shared between aliases."""
        key = validate_key(voice_connector_id, proxy_session_id)
        load = self._loads.get(key)
        if load is None:
            load = asyncio.ensure_future(self._load(key))
            self._loads[key] = load
        return await asyncio.shield(load)

    async def _load(self, key: SessionKey) -> ProxySession:
        lookup = await self.service.get(key, revalidate=self.revalidate)
        return ProxySession.from_domain(lookup.record.session)
