"""The GraphQL door's fast path: a repeated query answered from the response cache.

Below FastAPI and strawberry: the body is read and looked up; a hit is sent as the bytes
the full path produced, a miss is handed on with the body replayed. Revalidation
(`Cache-Control: no-cache`) and anything but a JSON POST to /graphql go the full way.
"""

from __future__ import annotations

from collections.abc import Hashable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.graphql.media import GRAPHQL_RESPONSE_TYPE, prefers_graphql_response
from app.graphql.persisted import Manifest
from app.graphql.response_cache import ResponseCache, cache_key
from app.graphql.transport import is_json
from app.http.asgi import GRAPHQL_PATH, RouteTemplate, request_context
from app.http.limits import replaying
from app.http.revalidation import wants_revalidation
from app.http.state import AppState

ROUTE = RouteTemplate(GRAPHQL_PATH)
_JSON = (b"content-type", b"application/json")
_GRAPHQL_RESPONSE = (b"content-type", GRAPHQL_RESPONSE_TYPE)
KEYS_BYTES = 4 * 1024 * 1024
"""Bound on the request bodies remembered with their keys (bytes of body)."""


class GraphQLFastPath:
    """Answers a POSTed query whose response is cached and still coherent."""

    def __init__(
        self, app: ASGIApp, state: AppState, cache: ResponseCache, manifest: Manifest
    ) -> None:
        self.app = app
        self.state = state
        self.cache = cache
        self.manifest = manifest
        # Request bodies seen, to their response-cache key: a repeat is not parsed again. A
        # plain dict, emptied when full: a lookup is one C call, and a body parsed again
        # after a clear costs what a miss costs anyway.
        self._keys: dict[bytes, Hashable] = {}
        self._keys_bytes = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.state.service
        if (
            scope["type"] != "http"
            or scope["path"] != GRAPHQL_PATH
            or scope["method"] != "POST"
            or service is None
            or (accept := _plain_json_request(scope)) is None
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the caller went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        key = self._keys.get(body)
        if key is None:
            try:
                key = cache_key(orjson.loads(body), self.manifest.text_of)
            except orjson.JSONDecodeError:
                key = None
            if key is not None:
                self._remember(body, key)
        seen = request_context(scope).cache_results
        cached = None if key is None else self.cache.get(key, service, seen)
        if cached is not None:
            scope["route"] = ROUTE
            self.state.metrics.graphql_operation("query", "ok", cached.document)
            if (facts := request_context(scope).trace) is not None:
                facts.operation_type, facts.operation_name = "query", cached.operation_name
            answer = cached.body
            graphql_response = prefers_graphql_response(accept)
            media = _GRAPHQL_RESPONSE if graphql_response else _JSON
            headers = [media, (b"content-length", b"%d" % len(answer))]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": answer})
            return
        await self.app(scope, replaying(body, receive), send)

    def _remember(self, body: bytes, key: Hashable) -> None:
        """Keep `body`'s key, emptying the memo first when it would pass `KEYS_BYTES`."""
        size = _body_and_key_size(body, key)
        if self._keys_bytes + size > KEYS_BYTES:
            self._keys.clear()
            self._keys_bytes = 0
        self._keys[body] = key
        self._keys_bytes += size


def _body_and_key_size(body: bytes, key: Hashable) -> int:
    """About the bytes a remembered body and its key hold: the body and the key's texts."""
    parts = key if isinstance(key, tuple) else (key,)
    return len(body) + sum(len(part) for part in parts if isinstance(part, str | bytes)) + 200


def _plain_json_request(scope: Scope) -> bytes | None:
    """The request's `Accept` (b"" when none) if it has a JSON body by the transport's own
    check and asks for no revalidation; None otherwise. One pass over the headers.

    Each header's first value counts, as `request.headers.get` reads it on the full path.
    """
    content_type: bytes | None = None
    accept: bytes | None = None
    cache_control = pragma = None
    for name, value in scope["headers"]:
        if name == b"content-type":
            if content_type is None:
                content_type = value
        elif name == b"accept":
            if accept is None:
                accept = value
        elif name == b"cache-control":
            if cache_control is None:
                cache_control = value.decode("latin-1")
        elif name == b"pragma" and pragma is None:
            pragma = value.decode("latin-1")
    if not is_json(content_type) or wants_revalidation(cache_control, pragma):
        return None
    return accept or b""
