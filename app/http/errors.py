"""The one error pipeline: a gateway error rendered in its door's shape, with its headers.

Everything refused or failed anywhere (the edge, a door, the service, upstream) is a
`GatewayError`; this module alone turns one into bytes: an RFC 9457 problem on the REST
side, a GraphQL response body on `/graphql`. `error_headers` is the only place that knows
which headers go with an error (`Retry-After`, `WWW-Authenticate`, `Allow`, `Cache-Status`).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Scope, Send

from app.domain.errors import GatewayError, InternalError, MethodNotAllowed, Unauthenticated
from app.domain.outcome import Outcomes
from app.http.asgi import GRAPHQL_PATH, request_context
from app.http.cache_status import cache_status
from app.observability.context import RequestContext

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://proxy-session-gateway.internal/problems/"

RawHeaders = list[tuple[bytes, bytes]]
Reply = tuple[RawHeaders, bytes]
"""Raw headers (`Content-Type` and `Content-Length` included) and body of an error answer."""

_PROBLEM_TYPE = (b"content-type", PROBLEM_JSON.encode())
_JSON_TYPE = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")


def error_headers(error: GatewayError, cache: Outcomes | None = None) -> RawHeaders:
    """The headers that go with `error`, whatever its shape: the only place that knows them
    (`Cache-Status` when a cache answered with it: `cache`)."""
    headers = [_NO_STORE]
    if error.retry_after is not None:
        headers.append((b"retry-after", b"%d" % error.retry_after))
    if isinstance(error, Unauthenticated):
        headers.append((b"www-authenticate", error.challenge))
    if isinstance(error, MethodNotAllowed):
        headers.append((b"allow", ", ".join(error.allow).encode()))
    if cache is not None:
        headers.append((b"cache-status", cache_status(cache)))
    return headers


def problem(error: GatewayError, request_id: str | None) -> dict[str, Any]:
    """The RFC 9457 object for `error`, with code, upstreamCode and requestId."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + error.code.lower().replace("_", "-"),
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
    }
    if error.upstream_code is not None:
        body["upstreamCode"] = error.upstream_code
    if request_id is not None:
        body["requestId"] = request_id
    return body


def graphql_extensions(error: GatewayError, request_id: str | None) -> dict[str, Any]:
    """A GraphQL error's `extensions`: code, upstreamCode (when AWS raised it), requestId."""
    extensions: dict[str, Any] = {"code": error.code}
    if error.upstream_code is not None:
        extensions["upstreamCode"] = error.upstream_code
    extensions["requestId"] = request_id
    return extensions


def _note_on_span(error: GatewayError, context: RequestContext) -> None:
    """A traced request's span names the code of the error it is answered with."""
    if context.trace is not None:
        context.trace.error_code = error.code


def problem_reply(
    error: GatewayError, context: RequestContext, cache: Outcomes | None = None
) -> Reply:
    """`error` as an RFC 9457 problem for the request of `context` (with the `Cache-Status`
    of `cache`, when a cache answered with it)."""
    _note_on_span(error, context)
    body = orjson.dumps(problem(error, context.request_id))
    return _framed([_PROBLEM_TYPE, *error_headers(error, cache)], body)


def graphql_reply(error: GatewayError, context: RequestContext) -> Reply:
    """`error` as a GraphQL response refused before execution: no data, one error."""
    _note_on_span(error, context)
    body = orjson.dumps(
        {
            "data": None,
            "errors": [
                {
                    "message": error.detail,
                    "extensions": graphql_extensions(error, context.request_id),
                }
            ],
        }
    )
    return _framed([_JSON_TYPE, *error_headers(error)], body)


def error_reply(scope: Scope, error: GatewayError) -> Reply:
    """`error` in the shape the path's door speaks: a GraphQL body on `/graphql`, else a
    problem."""
    context = request_context(scope)
    if scope["path"] == GRAPHQL_PATH:
        return graphql_reply(error, context)
    return problem_reply(error, context)


def _framed(headers: RawHeaders, body: bytes) -> Reply:
    headers.append((b"content-length", b"%d" % len(body)))
    return headers, body


def error_response(scope: Scope, error: GatewayError) -> Response:
    """`error` as a Starlette response, for code that answers with one (FastAPI handlers)."""
    headers, body = error_reply(scope, error)
    response = Response(body, status_code=error.status)
    response.raw_headers[:] = headers
    return response


async def send_error(
    send: Send,
    scope: Scope,
    error: GatewayError,
    extra_headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer with `error` in the shape the path's door speaks (see `error_reply`)."""
    headers, body = error_reply(scope, error)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [*headers, *extra_headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def bug_error() -> InternalError:
    """What a caller is told about a bug: nothing but that it happened."""
    return InternalError("The gateway failed to serve this request.")
