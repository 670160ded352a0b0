"""The REST door's fast path: well-formed GETs answered below FastAPI's per-request machinery.

A valid request needs no dependency injection, no parameter models and no Response
object: the ids are checked by the same `validate_key` the route uses, the headers read
with the route's semantics (`Conditions`), and the answer built by the same
`session_reply`. A request whose ids fail validation falls through to the FastAPI route,
which stays the documented operation and renders the 400; a differential test holds both
paths to the same answers.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.domain.errors import BadUserInput, GatewayError
from app.domain.model import validate_key
from app.http.asgi import RouteTemplate, template_pattern
from app.http.errors import send_error
from app.http.state import AppState
from app.rest.reply import SESSION_PATH, Conditions, fresh_reply, session_reply

_SESSION = template_pattern(SESSION_PATH)

ROUTE = RouteTemplate(SESSION_PATH)


class RestFastPath:
    """Answers GETs of the session route whose ids are valid: hits, misses and errors."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service = self.state.service
        if scope["type"] == "http" and scope["method"] == "GET" and service is not None:
            match = _SESSION.fullmatch(scope["path"])
            if match is not None:
                try:
                    key = validate_key(match[1], match[2])
                except BadUserInput:
                    key = None  # the route renders the 400 in FastAPI's words and ours
                if key is not None:
                    scope["route"] = ROUTE
                    conditions = Conditions.from_raw(scope["headers"])
                    reply = fresh_reply(service, key, conditions)
                    if reply is None:
                        if (callers := self.state.callers) is not None:
                            callers.attribute(scope["headers"], scope.get("client"))
                        try:
                            reply = await session_reply(service, key, conditions)
                        except GatewayError as error:
                            await send_error(send, scope["path"], error)
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
