"""Errors answered by middleware, before any door runs, in the shape of the door asked."""

from __future__ import annotations

import orjson
from starlette.types import Send

from app.domain.errors import GatewayError, InternalError
from app.http.asgi import GRAPHQL_PATH
from app.http.problems import problem_bytes, problem_headers
from app.observability.context import current_request_id


def graphql_error_body(error: GatewayError, request_id: str | None) -> bytes:
    """A GraphQL response carrying `error` with its code in `extensions`."""
    extensions = {"code": error.code, "requestId": request_id}
    return orjson.dumps(
        {"data": None, "errors": [{"message": error.detail, "extensions": extensions}]}
    )


Reply = tuple[list[tuple[bytes, bytes]], bytes]
"""Raw headers (`Content-Length` included) and body of an error answer."""


def problem_reply(error: GatewayError) -> Reply:
    """`error` as an RFC 9457 problem."""
    return _framed(problem_headers(error), problem_bytes(error, current_request_id()))


def error_reply(path: str, error: GatewayError) -> Reply:
    """`error` in the shape the path's door speaks: a GraphQL body on `/graphql`, else a
    problem."""
    if path != GRAPHQL_PATH:
        return problem_reply(error)
    headers = problem_headers(error)
    headers[0] = (b"content-type", b"application/json")
    return _framed(headers, graphql_error_body(error, current_request_id()))


def _framed(headers: list[tuple[bytes, bytes]], body: bytes) -> Reply:
    headers.append((b"content-length", b"%d" % len(body)))
    return headers, body


async def send_error(
    send: Send, path: str, error: GatewayError, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer with `error` in the shape the path's door speaks (see `error_reply`)."""
    headers, body = error_reply(path, error)
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
