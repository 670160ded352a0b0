"""RFC 9457 problem details for the gateway's errors."""

from __future__ import annotations

from typing import Any

import orjson

from app.domain.errors import GatewayError, Unauthenticated

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://proxy-session-gateway.internal/problems/"


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


def problem_headers(error: GatewayError) -> list[tuple[bytes, bytes]]:
    """Headers that go with `error`'s problem response."""
    headers = [(b"content-type", PROBLEM_JSON.encode()), (b"cache-control", b"no-store")]
    if error.retry_after is not None:
        headers.append((b"retry-after", str(error.retry_after).encode()))
    if isinstance(error, Unauthenticated):
        headers.append((b"www-authenticate", error.challenge))
    if error.cache_status is not None:
        headers.append((b"cache-status", error.cache_status.encode()))
    return headers


def problem_bytes(error: GatewayError, request_id: str | None) -> bytes:
    """The serialized problem object."""
    return orjson.dumps(problem(error, request_id))
