"""Whole GraphQL responses without errors, each answering again only while every session
record it shows is still the fresh one in the session cache.

Entries are shared by all callers; docs/performance.md, "Whole GraphQL responses cached",
says why that is safe and what it costs.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import orjson
from cachetools import LRUCache

from app.domain.model import SessionRecord
from app.domain.types import CacheResult, SessionKey
from app.graphql.persisted import named_document
from app.service.sessions import ProxySessionService

MAX_BYTES = 16 * 1024 * 1024

Sources = tuple[tuple[SessionKey, SessionRecord], ...]


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A response body and the session records it shows."""

    body: bytes
    sources: Sources
    operation_name: str | None = None
    """The executed operation's name, known when traces are on (for the span of a hit)."""
    document: str = "adhoc"
    """Its trusted document's metrics label (app.graphql.persisted), or `adhoc`."""


def _size(entry: CachedResponse) -> int:
    return len(entry.body) + 200 * len(entry.sources) + 200


def cache_key(
    request: object, trusted: Callable[[object], str | None] | None = None
) -> Hashable | None:
    """The key of a parsed GraphQL request body, or None when it is not a plain request.

    With `trusted` (the manifest's `text_of`), a request naming a trusted document by id,
    without a query, is keyed by that document's text."""
    if not isinstance(request, dict):
        return None
    query = request.get("query")
    document_id = named_document(request)
    if document_id is not None:  # by id: the full path checks a query sent along
        if query is not None or trusted is None:
            return None
        query = trusted(document_id)
    variables = request.get("variables")
    operation = request.get("operationName")
    if not isinstance(query, str) or not isinstance(operation, str | None):
        return None
    if variables is not None and not isinstance(variables, dict):
        return None
    extensions = request.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        return None  # a malformed request: the full path refuses it
    try:
        canonical = orjson.dumps(variables, option=orjson.OPT_SORT_KEYS) if variables else b""
    except TypeError:
        return None
    return (query, canonical, operation)


class ResponseCache:
    """A byte-bounded LRU of response bodies, each valid while its sources are fresh."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._data: LRUCache[Hashable, CachedResponse] = LRUCache(max_bytes, getsizeof=_size)

    def get(
        self,
        key: Hashable,
        service: ProxySessionService,
        seen: list[CacheResult] | None = None,
    ) -> CachedResponse | None:
        """The cached response if every session it shows is still the fresh cached one;
        each counted as a hit (and noted in `seen`, the request's access line)."""
        entry = self._data.get(key)
        if entry is None:
            return None
        for session_key, record in entry.sources:
            if service.fresh_record(session_key) is not record:
                self._data.pop(key, None)
                return None
        for _ in entry.sources:
            service.count_hit(seen)
        return entry

    def put(
        self,
        key: Hashable,
        body: bytes,
        sources: Sources,
        operation_name: str | None = None,
        document: str = "adhoc",
    ) -> None:
        """Remember a successful response (too large ones are not kept)."""
        entry = CachedResponse(body, sources, operation_name, document)
        if _size(entry) <= self._data.maxsize // 8:
            self._data[key] = entry
