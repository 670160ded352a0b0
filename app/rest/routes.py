"""The REST door: GET one proxy session in AWS's shape, with HTTP caching headers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Response

from app.domain.model import ID_MAX_LENGTH, ID_PATTERN, validate_key
from app.domain.types import SessionKey
from app.http.problems import PROBLEM_JSON
from app.http.revalidation import wants_revalidation
from app.http.state import ServiceDep
from app.rest.schemas import GetProxySessionResponse, Problem
from app.service.sessions import ProxySessionService

router = APIRouter(tags=["proxy-sessions"])

SESSION_PATH = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"


def _problem(description: str, **extra: Any) -> dict[str, Any]:
    return {
        "description": description,
        "model": Problem,
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        **extra,
    }


_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
_CACHE_HEADERS = {
    "ETag": {"description": "Strong validator over the body.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`private, max-age=N`.", "schema": {"type": "string"}},
    "Cache-Status": {"description": "RFC 9211 cache status.", "schema": {"type": "string"}},
    "X-Request-ID": {"description": "The request's id.", "schema": {"type": "string"}},
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The proxy session.", "headers": _CACHE_HEADERS},
    304: {"description": "Not modified: `If-None-Match` matched the current ETag."},
    400: _problem("BAD_USER_INPUT: an id fails validation, or AWS refused the input."),
    401: _problem(
        "UNAUTHENTICATED: no or a wrong bearer token.",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}}},
    ),
    403: _problem("FORBIDDEN: AWS forbids the request."),
    404: _problem("NOT_FOUND: no such proxy session (remembered briefly)."),
    429: _problem("THROTTLED: AWS kept throttling after retries.", headers=_RETRY_AFTER),
    500: _problem("INTERNAL_SERVER_ERROR: a bug in the gateway."),
    502: _problem(
        "UPSTREAM_FAILURE, UPSTREAM_UNAVAILABLE, UPSTREAM_UNAUTHORIZED or UPSTREAM_ERROR."
    ),
    503: _problem("SERVICE_UNAVAILABLE: AWS is unavailable.", headers=_RETRY_AFTER),
    504: _problem("UPSTREAM_TIMEOUT: the upstream deadline passed."),
}


def _id_param(example: str) -> Any:
    return Path(
        min_length=1,
        max_length=ID_MAX_LENGTH,
        pattern=ID_PATTERN,
        description="1 to 128 characters, at least one not a space, tab or line break.",
        examples=[example],
    )


VoiceConnectorIdParam = Annotated[str, _id_param("abcdef1ghij2klmno3pqr4")]
ProxySessionIdParam = Annotated[str, _id_param("321c1f5b-7dcb-4a5d-9e07-6b4c6a1b2f10")]


@router.get(
    SESSION_PATH,
    operation_id="getProxySession",
    summary="Get a proxy session",
    response_model=GetProxySessionResponse,
    responses=RESPONSES,
)
async def get_proxy_session(
    voiceConnectorId: VoiceConnectorIdParam,
    proxySessionId: ProxySessionIdParam,
    service: ServiceDep,
    if_none_match: Annotated[str | None, Header()] = None,
    cache_control: Annotated[str | None, Header()] = None,
    pragma: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The proxy session, from the cache or one coalesced GetProxySession call."""
    # In the running gateway `app.rest.fast_path` answers requests with valid ids before
    # FastAPI, through the same `session_reply`; this route documents the operation and
    # renders FastAPI's parameter validation failures.
    key = validate_key(voiceConnectorId, proxySessionId)
    reply = await session_reply(service, key, if_none_match, cache_control, pragma)
    response = Response(reply.body, status_code=reply.status)
    response.raw_headers[:] = reply.headers
    return response


@dataclass(frozen=True, slots=True)
class SessionReply:
    """A finished answer: status, raw headers (length and type included) and body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


_JSON = (b"content-type", b"application/json")


async def session_reply(
    service: ProxySessionService,
    key: SessionKey,
    if_none_match: str | None,
    cache_control: str | None,
    pragma: str | None,
) -> SessionReply:
    """Look `key` up and answer with the cached bytes, or 304 when `If-None-Match` matches.

    Raises the lookup's GatewayError; the caller renders it as a problem.
    """
    lookup = await service.get(key, revalidate=wants_revalidation(cache_control, pragma))
    record = lookup.record
    headers = [
        (b"etag", record.etag.encode()),
        (b"cache-control", b"private, max-age=%d" % lookup.max_age),
        (b"cache-status", lookup.cache_status.encode()),
    ]
    if if_none_match is not None and etag_matches(if_none_match, record.etag):
        return SessionReply(304, headers, b"")
    headers.append((b"content-length", b"%d" % len(record.body)))
    headers.append(_JSON)
    return SessionReply(200, headers, record.body)


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison, as If-None-Match requires; `*` matches any current entity."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == opaque for tag in if_none_match.split(","))
