"""Errors answered by middleware, before any door runs, in the shape of the door asked."""

from __future__ import annotations

import orjson
from starlette.types import Send

from app.asgi import GRAPHQL_PATH
from app.errors import GatewayError, InternalError
from app.observability.context import current_request_id
from app.problems import problem_bytes, problem_headers


def graphql_error_body(error: GatewayError, request_id: str | None) -> bytes:
    """A GraphQL response carrying `error` with its code in `extensions`."""
    extensions = {"code": error.code, "requestId": request_id}
    return orjson.dumps(
        {"data": None, "errors": [{"message": error.detail, "extensions": extensions}]}
    )


def error_reply(path: str, error: GatewayError) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers and body for `error`: a GraphQL body on `/graphql`, an RFC 9457 problem
    elsewhere."""
    request_id = current_request_id()
    headers = problem_headers(error)
    if path == GRAPHQL_PATH:
        headers[0] = (b"content-type", b"application/json")
        return headers, graphql_error_body(error, request_id)
    return headers, problem_bytes(error, request_id)


async def send_error(
    send: Send, path: str, error: GatewayError, extra_headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    """Answer with `error` in the shape the path's door speaks (see `error_reply`)."""
    headers, body = error_reply(path, error)
    length = (b"content-length", b"%d" % len(body))
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [*headers, length, *extra_headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


def bug_error() -> InternalError:
    """What a caller is told about a bug: nothing but that it happened."""
    return InternalError("The gateway failed to serve this request.")
