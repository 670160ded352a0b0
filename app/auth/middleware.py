"""Pure ASGI authentication, run before any route (and so before the cache is consulted)."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from app.asgi import header
from app.auth.authenticator import Authenticator, Refusal
from app.errors import Unauthenticated
from app.observability.context import current_request_id
from app.problems import problem, problem_headers

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
GRAPHQL_PATH = "/graphql"
CHALLENGE = b'Bearer realm="proxy-session-gateway"'
INVALID_TOKEN_CHALLENGE = CHALLENGE + b', error="invalid_token"'
# One message whatever the reason: the reason goes to the log and metrics, not to the caller.
DETAIL = "A valid bearer token is required."


class AuthMiddleware:
    """Refuses every route but the probes and metrics without an accepted bearer token."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        refusal = await self.authenticator.authenticate(header(scope, b"authorization"))
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with a 403.
            await send({"type": "websocket.close", "code": 1008})
        else:
            await _send_401(scope, send, refusal)


async def _send_401(scope: Scope, send: Send, refusal: Refusal) -> None:
    error = Unauthenticated(DETAIL)
    request_id = current_request_id()
    if scope["path"] == GRAPHQL_PATH:
        extensions = {"code": error.code, "requestId": request_id}
        body = orjson.dumps(
            {"data": None, "errors": [{"message": error.detail, "extensions": extensions}]}
        )
        headers = [(b"content-type", b"application/json"), (b"www-authenticate", CHALLENGE)]
    else:
        body = orjson.dumps(problem(error, request_id))
        headers = problem_headers(error)
    if refusal.invalid_token:
        headers = [
            (name, INVALID_TOKEN_CHALLENGE if name == b"www-authenticate" else value)
            for name, value in headers
        ]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
