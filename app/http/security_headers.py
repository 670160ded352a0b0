"""Security headers on every response, and CORS for `/graphql` only, as pure ASGI middleware."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from app.http.asgi import GRAPHQL_PATH

# An API answers JSON: nothing in it may be sniffed, framed, or load anything.
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# The GraphiQL and /docs pages load their scripts and styles from a CDN.
PAGES = frozenset({"/docs", GRAPHQL_PATH})


STRICT = (*HEADERS, API_CSP)


def security_headers(scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response to this request carries (the strict CSP but on pages).

    Appended by the observability middleware, which already touches every response start,
    rather than by a middleware layer of their own on every request's path.
    """
    if scope["method"] == "GET" and scope["path"] in PAGES:
        return HEADERS
    return STRICT


class GraphQLCorsMiddleware:
    """CORS for browsers calling `/graphql` from the allowed origins; other paths untouched."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST"],
            allow_headers=["authorization", "content-type", "x-request-id", "cache-control"],
            expose_headers=["x-request-id"],
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == GRAPHQL_PATH:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)
