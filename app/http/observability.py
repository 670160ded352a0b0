"""Pure ASGI middleware: request id, in-flight gauge, request metrics and the access log.

It also stamps the security headers (app.http.security_headers) on every response start.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.http.asgi import header
from app.http.errors import bug_error, send_error
from app.http.security_headers import security_headers
from app.observability.context import RequestContext, current, request_id_from
from app.observability.logs import AccessLog
from app.observability.metrics import Metrics

access_log = logging.getLogger("app.access")

UNMATCHED = "unmatched"


class ObservabilityMiddleware:
    """Wraps every HTTP request: one id, one metrics sample, one access log line."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self.access = AccessLog()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_from(header(scope, b"x-request-id"))
        ctx = RequestContext(request_id)
        token = current.set(ctx)
        extra_headers = ((b"x-request-id", request_id.encode()), *security_headers(scope))
        status, status_sent = 500, False

        async def send_with_id(message: Message) -> None:
            nonlocal status
            nonlocal status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            await send(message)

        self.metrics.requests_in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The last line of defence: a bug becomes a bare 500 problem, logged with its
            # traceback here and never sent to the caller. When an answer is already out
            # (FastAPI's error handler sent the 500, or a stream broke half way), there is
            # nothing left to send: uvicorn closes a connection left unfinished.
            access_log.exception("unhandled error")
            if not status_sent:
                await send_error(send_with_id, scope["path"], bug_error())
        finally:
            self.metrics.requests_in_flight -= 1
            seconds = time.perf_counter() - started
            route = _route_template(scope)
            self.metrics.request(route, scope["method"], status, seconds)
            self.access.write(
                {
                    "message": f"{scope['method']} {route} {status}",
                    "request_id": request_id,
                    "method": scope["method"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "cache": ",".join(ctx.cache_results) or None,
                    "client": scope["client"][0] if scope.get("client") else None,
                },
            )
            current.reset(token)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
