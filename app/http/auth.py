"""Pure ASGI authentication, run before any route (and so before the cache is consulted)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.authenticator import Authenticator, Refusal
from app.domain.errors import BEARER_CHALLENGE, Unauthenticated
from app.http.asgi import PROBE_PATHS, header
from app.http.errors import send_error

INVALID_TOKEN_CHALLENGE = BEARER_CHALLENGE + b', error="invalid_token"'
# One message whatever the reason: the reason goes to the log and metrics, not to the caller.
DETAIL = "A valid bearer token is required."


class AuthMiddleware:
    """Refuses every route but the probes and metrics without an accepted bearer token."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PROBE_PATHS:
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
    challenge = INVALID_TOKEN_CHALLENGE if refusal.invalid_token else BEARER_CHALLENGE
    await send_error(send, scope["path"], Unauthenticated(DETAIL, challenge=challenge))
