"""Bearer-token authentication, checked before anything else (and so before the cache)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.asgi import header
from app.errors import Unauthenticated
from app.observability.context import current_request_id
from app.problems import problem, problem_headers

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
GRAPHQL_PATH = "/graphql"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class TokenVerifier:
    """Holds digests of the accepted tokens and compares in constant time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = tuple(_digest(token) for token in tokens)

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (else auth is off)."""
        return bool(self._digests)

    def verify(self, authorization: bytes | None) -> bool:
        """Whether the Authorization header carries an accepted bearer token."""
        if not authorization:
            return False
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        candidate = _digest(token.strip())
        # Compare against every digest, no early exit, so timing says nothing.
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched


class AuthMiddleware:
    """Refuses every route but the probes and metrics without a valid bearer token."""

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.verifier.verify(header(scope, b"authorization")):
            await self.app(scope, receive, send)
            return
        error = Unauthenticated("A valid bearer token is required.")
        request_id = current_request_id()
        if scope["path"] == GRAPHQL_PATH:
            extensions = {"code": error.code, "requestId": request_id}
            body = orjson.dumps(
                {"data": None, "errors": [{"message": error.detail, "extensions": extensions}]}
            )
            headers = [
                (b"content-type", b"application/json"),
                (b"www-authenticate", b'Bearer realm="proxy-session-gateway"'),
            ]
        else:
            body = orjson.dumps(problem(error, request_id))
            headers = problem_headers(error)
        await send({"type": "http.response.start", "status": error.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
