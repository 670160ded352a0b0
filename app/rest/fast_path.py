"""The REST door's fast path: well-formed GETs answered below FastAPI's per-request machinery.

A request needs no dependency injection, no parameter models and no Response object: the
ids are checked by the same `validate_key` the route uses (its refusal rendered by the
one error pipeline, as the route's validation handler renders it), the headers read with
the route's semantics (`Conditions`), and the answer built by the same `session_reply`.
The FastAPI route stays the documented operation; a differential test serves it with the
fast path taken out and holds both to the same answers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.domain.errors import GatewayError
from app.domain.model import validate_key
from app.http.asgi import RouteTemplate, template_pattern
from app.http.errors import send_error
from app.http.state import AppState
from app.rest.reply import SESSION_PATH, Conditions, session_reply

_SESSION = template_pattern(SESSION_PATH)

ROUTE = RouteTemplate(SESSION_PATH)


class RestFastPath:
    """Answers every GET of the session route: hits, misses, errors and invalid ids."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.state.service
        if scope["type"] == "http" and scope["method"] == "GET" and service is not None:
            match = _SESSION.fullmatch(scope["path"])
            if match is not None:
                scope["route"] = ROUTE
                try:
                    key = validate_key(match[1], match[2])
                    conditions = Conditions.from_raw(scope["headers"])
                    reply = await session_reply(service, key, conditions, scope)
                except GatewayError as error:
                    await send_error(send, scope, error)
                    return
                await send(
                    {
                        "type": "http.response.start",
                        "status": reply.status,
                        "headers": reply.headers,
                    }
                )
                await send({"type": "http.response.body", "body": reply.body})
                return
        await self.app(scope, receive, send)
