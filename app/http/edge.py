"""The edge: one ASGI callable every request meets before a door, doing in order

1. the request id, the in-flight gauge and (at the end) the metrics sample and access line;
2. the body limits (`app.http.limits`): a body is read whole, within
   `GATEWAY_BODY_TIMEOUT_SECONDS` and `GATEWAY_MAX_BODY_BYTES`, before the request takes an
   in-flight slot; then load shedding past `GATEWAY_MAX_INFLIGHT`;
3. CORS for `/graphql` when origins are configured;
4. authentication (`app.auth`), before any cache is consulted;

then the doors. Probes and `/metrics` skip 2 to 4: they are how operators see the service.
The request's headers are read once, here, for every step. The edge also serves `HEAD` as
`GET` (the server sends no body) and writes the media type of `Content-Type` in lower
case, as every door compares it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth import Authenticator, Refusal
from app.domain.errors import HeadersTooLarge, Overloaded, ShuttingDown
from app.http.asgi import (
    GRAPHQL_PATH,
    PROBE_PATHS,
    REQUEST_CONTEXT,
    RouteTemplate,
    first_header,
    route_template,
    template_pattern,
)
from app.http.auth import unauthenticated
from app.http.errors import bug_error, send_error
from app.http.limits import (
    BodyTooLarge,
    Disconnected,
    body_timeout,
    body_too_large,
    drain,
    read_body,
    replaying,
)
from app.http.protocol import BODY_COMPLETE, HEAD_TOO_LARGE
from app.http.security_headers import CORS_ALLOW_HEADERS, security_headers
from app.http.spans import ServerSpan
from app.observability.context import RequestContext, RequestIds, log_request_id
from app.observability.logs import AccessLog
from app.observability.metrics import Metrics
from app.observability.tracing import Tracing

access_log = logging.getLogger("app.access")

# Close the connection after refusing a request with a body: the unread rest of it must
# not be taken for the next request.
_CLOSE = ((b"connection", b"close"),)


class _Answer:
    """One request's answer as the edge sees it: its status once started, and the edge's
    headers (request id, security headers) added to its start."""

    __slots__ = ("rid", "security", "send", "started", "status")

    def __init__(self, send: Send, rid: bytes, scope: Scope) -> None:
        self.send = send
        self.status = 500  # what the metrics and the access line say if nothing is sent
        self.started = False
        self.rid = rid
        self.security = security_headers(scope)

    async def send_with_id(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
            headers = message.get("headers", ())
            message["headers"] = [*headers, (b"x-request-id", self.rid), *self.security]
        await self.send(message)


class Edge:
    """Wraps the doors: ids, shedding, body limits, CORS, authentication, metrics, access log."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        max_inflight: int,
        max_body: int,
        body_timeout: float = 10,
        authenticator: Authenticator | None = None,
        cors_origins: Sequence[str] = (),
        route_templates: Sequence[str] = (),
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.metrics = metrics
        self.max_inflight = max_inflight
        self.max_body = max_body
        self.body_timeout = body_timeout
        # The routes a refusal is counted under, when its path is one of theirs.
        self.routes = [
            (template_pattern(template), RouteTemplate(template)) for template in route_templates
        ]
        self.authenticator = authenticator
        self.inflight = 0
        self.access = AccessLog()
        self.request_ids = RequestIds()
        self.cors: ASGIApp | None = None
        if cors_origins:
            self.cors = CORSMiddleware(
                self._after_cors,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST"],  # GET: persisted queries
                allow_headers=list(CORS_ALLOW_HEADERS),
                expose_headers=["x-request-id"],
                max_age=600,
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._not_http(scope, receive, send)
            return
        started = time.perf_counter()
        request_id, authorization, length, chunked, media = _edge_headers(scope)
        if media is not None and media != media.lower():
            scope["headers"] = _lower_media_type(scope["headers"])
        rid = self.request_ids.of(request_id)
        span = None if self.tracing is None else ServerSpan(self.tracing, scope)
        ctx = (
            RequestContext(rid, None, None)
            if span is None
            else RequestContext(rid, span.facts, span.joined)
        )
        token = log_request_id.set(rid)
        method = scope["method"]
        if method == "HEAD":  # RFC 9110 9.3.2: served as a GET; the server sends no body
            scope = {**scope, "method": "GET"}
        scope[REQUEST_CONTEXT] = ctx
        answer = _Answer(send, rid.encode(), scope)
        authenticator = self.authenticator
        if authenticator is not None:
            ctx.caller = authenticator.remembered(authorization)
        metrics = self.metrics
        metrics.requests_in_flight += 1
        try:
            if self._plain(scope, authenticator is None or ctx.caller is not None, length, chunked):
                self.inflight += 1
                try:
                    await self.app(scope, receive, answer.send_with_id)
                finally:
                    self.inflight -= 1
            else:
                await self._serve(
                    scope, receive, answer.send_with_id, authorization, length, chunked
                )
        except asyncio.CancelledError:
            await self._cancelled(scope, answer.send_with_id, answer.started)
        except Exception:
            await self._failed(scope, answer.send_with_id, answer.started)
        finally:
            metrics.requests_in_flight -= 1
            seconds = time.perf_counter() - started
            self._record(scope, method, answer.status, seconds, rid, ctx, span)
            log_request_id.reset(token)

    async def _cancelled(self, scope: Scope, send: Send, status_sent: bool) -> None:
        """Nothing but the server cancels a request's task: the shutdown grace period ended
        with the request still running. It gets an answer, not uvicorn's bare 500, and the
        cancellation ends here (no traceback: it is no bug)."""
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        if not status_sent:
            stopping = ShuttingDown("The gateway is shutting down; retry on another replica.")
            await send_error(send, scope, stopping, _CLOSE)

    async def _failed(self, scope: Scope, send: Send, status_sent: bool) -> None:
        """The last line of defence: a bug becomes a bare 500 problem, logged with its
        traceback here and never sent to the caller. When an answer is already out
        (FastAPI's error handler sent the 500, or a stream broke half way), there is nothing
        left to send: uvicorn closes a connection left unfinished."""
        access_log.exception("unhandled error")
        if not status_sent:
            await send_error(send, scope, bug_error())

    def _record(
        self,
        scope: Scope,
        method: str,
        status: int,
        seconds: float,
        rid: str,
        ctx: RequestContext,
        span: ServerSpan | None,
    ) -> None:
        """The request's metrics sample and access line (and the end of its span)."""
        route = route_template(scope)
        if span is None:
            self.metrics.request(route, method, status, seconds)
        else:  # a sampled request's ids are the duration's exemplar
            self.metrics.request(route, method, status, seconds, span.exemplar)
        client = scope.get("client")
        self.access.write(
            method,
            route,
            status,
            seconds,
            rid,
            ",".join(ctx.cache_results) or None,
            client[0] if client else None,
            None if span is None else span.ids,
        )
        if span is not None:
            span.end(method, route, status, ctx)

    def _plain(
        self,
        scope: Scope,
        admitted: bool,
        length: bytes | None,
        chunked: bytes | None,
    ) -> bool:
        """Whether steps 2 to 4 would all let the request through at once: no body to wait
        for (none, or one within the limit that has arrived whole), room in flight, no CORS
        to apply and no token to check (none needed, or one already accepted). Most requests
        are; they skip the coroutines of the general path."""
        path = scope["path"]
        return (
            chunked is None
            and (length is None or (BODY_COMPLETE in scope and self._length_allowed(length)))
            and self.inflight < self.max_inflight
            and path not in PROBE_PATHS
            and (self.cors is None or path != GRAPHQL_PATH)
            and admitted
            and HEAD_TOO_LARGE not in scope
        )

    def _length_allowed(self, length: bytes) -> bool:
        """Whether a declared `Content-Length` is a number within the body limit."""
        return length.isdigit() and int(length) <= self.max_body

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        authorization: bytes | None,
        length: bytes | None,
        chunked: bytes | None,
    ) -> None:
        """Steps 2 to 4, then the doors; the probes go straight to their routes."""
        if HEAD_TOO_LARGE in scope:  # marked by the protocol (app.http.protocol)
            self._label(scope)
            self.metrics.shed("headers_too_large")
            too_large = HeadersTooLarge("The request line and headers are too large.")
            await send_error(send, scope, too_large, _CLOSE)
            return
        if scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        if length is not None and not self._length_allowed(length):
            await self._too_large(scope, send)
            return
        if chunked is not None or (length is not None and length != b"0"):
            # The whole body first: a caller still sending one holds no in-flight slot.
            body = await self._read_body(scope, receive, send)
            if body is None:
                return
            receive = replaying(body, receive)
        if self.inflight >= self.max_inflight:
            self._label(scope)
            self.metrics.shed("overloaded")
            overloaded = Overloaded("Too many requests in flight; retry shortly.")
            await send_error(send, scope, overloaded, _CLOSE)
            return
        self.inflight += 1
        try:
            await self._admit(scope, receive, send, authorization)
        finally:
            self.inflight -= 1

    async def _read_body(self, scope: Scope, receive: Receive, send: Send) -> bytes | None:
        """The request body, or None once the request is refused (413, 408) or its caller
        has gone."""
        try:
            async with asyncio.timeout(self.body_timeout):
                return await read_body(receive, self.max_body)
        except BodyTooLarge as exc:
            if not exc.finished:  # after the last chunk, receive() would wait for a disconnect
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.body_timeout):
                        await drain(receive, 4 * self.max_body)
            await self._too_large(scope, send)
        except TimeoutError:
            self._label(scope)
            self.metrics.shed("body_timeout")
            await send_error(send, scope, body_timeout(self.body_timeout), _CLOSE)
        except Disconnected:
            pass
        return None

    async def _admit(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        authorization: bytes | None,
        *,
        cors: bool = True,
    ) -> None:
        """CORS (on `/graphql`, when configured), then authentication, then the doors."""
        if cors and self.cors is not None and scope["path"] == GRAPHQL_PATH:
            if scope["method"] == "OPTIONS":  # a preflight, which CORS answers itself
                self._label(scope)
            await self.cors(scope, receive, send)
            return
        authenticator = self.authenticator
        context: RequestContext = scope[REQUEST_CONTEXT]
        if authenticator is not None and context.caller is None:
            verdict = await authenticator.authenticate(authorization)
            if isinstance(verdict, Refusal):
                self._label(scope)
                await send_error(send, scope, unauthenticated(verdict))
                return
            context.caller = verdict
        await self.app(scope, receive, send)

    async def _after_cors(self, scope: Scope, receive: Receive, send: Send) -> None:
        """What CORS wraps: a preflight is answered before it, with no token needed."""
        authorization = first_header(scope, b"authorization")
        await self._admit(scope, receive, send, authorization, cors=False)

    def _label(self, scope: Scope) -> None:
        """Label a request the edge refuses with the route template its path would have
        reached, so per-route metrics see refusals; another path stays `unmatched`."""
        path = scope["path"]
        for pattern, route in self.routes:
            if pattern.fullmatch(path):
                scope["route"] = route
                return

    async def _too_large(self, scope: Scope, send: Send) -> None:
        self._label(scope)
        self.metrics.shed("payload_too_large")
        await send_error(send, scope, body_too_large(self.max_body), _CLOSE)

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The lifespan passes through; a WebSocket (no route serves one) must authenticate."""
        if (
            scope["type"] == "websocket"
            and self.authenticator is not None
            and scope["path"] not in PROBE_PATHS
        ):
            authorization = first_header(scope, b"authorization")
            if isinstance(await self.authenticator.authenticate(authorization), Refusal):
                # Closing before accepting makes the server answer the handshake with a 403.
                await send({"type": "websocket.close", "code": 1008})
                return
        await self.app(scope, receive, send)


def _edge_headers(
    scope: Scope,
) -> tuple[bytes | None, bytes | None, bytes | None, bytes | None, bytes | None]:
    """The headers the edge reads, in one pass: `X-Request-ID`, `Authorization` and
    `Content-Length` (each its first value), `Transfer-Encoding` (its last), and the
    media type of `Content-Type` (its first value, before any parameter)."""
    request_id = authorization = length = chunked = media = None
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            request_id = request_id or value
        elif name == b"authorization":
            authorization = authorization or value
        elif name == b"content-length":
            length = length or value
        elif name == b"transfer-encoding":
            chunked = value
        elif name == b"content-type" and media is None:
            media = value.partition(b";")[0]
    return request_id, authorization, length, chunked, media


def _lower_media_type(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """`headers` with the media type of `Content-Type` in lower case (RFC 9110 8.3.1: it is
    case-insensitive, and the doors compare it as written); its parameters are kept as
    sent (a multipart boundary is case-sensitive)."""
    return [
        (name, _lower_media(value) if name == b"content-type" else value) for name, value in headers
    ]


def _lower_media(value: bytes) -> bytes:
    media, semicolon, parameters = value.partition(b";")
    return media.lower() + semicolon + parameters
