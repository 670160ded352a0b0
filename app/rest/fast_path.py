"""The REST door's fast path: fresh cache hits answered below FastAPI's per-request machinery.

A hit needs no dependency injection, no parameter models and no Response object: the
body and ETag were rendered when the cache was filled. Anything else (a miss, a bad id,
revalidation, a negative entry) falls through to the FastAPI route, which stays the
documented, complete implementation; the tests hold both to the same contract.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Receive, Scope, Send

from app.asgi import RouteTemplate
from app.errors import BadUserInput
from app.model import validate_key
from app.rest.routes import SESSION_PATH, etag_matches
from app.revalidation import wants_revalidation
from app.state import AppState

_SESSION = re.compile(r"/v1/voice-connectors/([^/]+)/proxy-sessions/([^/]+)")
_JSON = (b"content-type", b"application/json")


ROUTE = RouteTemplate(SESSION_PATH)


class RestFastPath:
    """Answers GETs of a fresh cached session straight from the cache's bytes."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.state.service
        if scope["type"] == "http" and scope["method"] == "GET" and service is not None:
            match = _SESSION.fullmatch(scope["path"])
            if match is not None:
                if_none_match = cache_control = pragma = None
                for name, value in scope["headers"]:
                    if name == b"if-none-match":
                        if_none_match = value.decode("latin-1")
                    elif name == b"cache-control":
                        cache_control = value.decode("latin-1")
                    elif name == b"pragma":
                        pragma = value.decode("latin-1")
                lookup = None
                if not wants_revalidation(cache_control, pragma):
                    try:
                        lookup = service.fresh_hit(validate_key(match[1], match[2]))
                    except BadUserInput:
                        lookup = None  # the route renders the 400
                if lookup is not None:
                    scope["route"] = ROUTE
                    record = lookup.record
                    etag = record.etag.encode()
                    headers = [
                        (b"etag", etag),
                        (b"cache-control", b"private, max-age=%d" % lookup.max_age),
                        (b"cache-status", lookup.cache_status.encode()),
                    ]
                    if if_none_match is not None and etag_matches(if_none_match, record.etag):
                        await send(
                            {"type": "http.response.start", "status": 304, "headers": headers}
                        )
                        await send({"type": "http.response.body", "body": b""})
                        return
                    body = record.body
                    headers.append((b"content-length", b"%d" % len(body)))
                    headers.append(_JSON)
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)
