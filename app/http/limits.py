"""Request limits as pure ASGI middleware: shed load at once, refuse oversized bodies early."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.domain.errors import GatewayError, Overloaded, PayloadTooLarge
from app.http.asgi import PROBE_PATHS
from app.http.errors import send_error
from app.observability.metrics import Metrics


class _BodyTooLarge(Exception):
    """Raised from `receive` once the body passes the limit."""


class RequestLimitsMiddleware:
    """Sheds requests past `max_inflight` (503 OVERLOADED) and bodies past `max_body` (413)."""

    def __init__(self, app: ASGIApp, max_inflight: int, max_body: int, metrics: Metrics) -> None:
        self.app = app
        self.max_inflight = max_inflight
        self.max_body = max_body
        self.metrics = metrics
        self.inflight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.max_inflight:
            self.metrics.shed("overloaded")
            await _refuse(send, scope, Overloaded("Too many requests in flight; retry shortly."))
            return
        length = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value if length is None else length
            elif name == b"transfer-encoding":
                chunked = value
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            self.metrics.shed("payload_too_large")
            await _refuse(send, scope, self._too_large())
            return
        self.inflight += 1
        try:
            if length is None and chunked is None:
                await self.app(scope, receive, send)  # no body to count (a plain GET)
            else:
                await self._serve(scope, receive, send)
        finally:
            self.inflight -= 1

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        received = 0
        started = False
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, body_done
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_body:
                    raise _BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            # A chunked body with no Content-Length: found out while the app reads it.
            if started:
                raise
            self.metrics.shed("payload_too_large")
            # Read (a bounded amount of) what the caller is still sending, so it can read
            # the 413 instead of failing on a closed socket mid-upload.
            if not body_done:  # after the last chunk, receive() would wait for a disconnect
                await _drain(receive, 4 * self.max_body)
            await _refuse(send, scope, self._too_large())

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than {self.max_body} bytes.")


async def _drain(receive: Receive, limit: int) -> None:
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))


async def _refuse(send: Send, scope: Scope, error: GatewayError) -> None:
    # Close the connection: an unread body must not be taken for the next request.
    await send_error(send, scope["path"], error, ((b"connection", b"close"),))
