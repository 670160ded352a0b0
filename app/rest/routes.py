"""The REST door: GET one proxy session in AWS's shape, with HTTP caching headers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Request, Response

from app.domain.errors import (
    GRAPHQL_ONLY,
    GatewayError,
    MethodNotAllowed,
    Unauthenticated,
    UnsupportedMediaType,
    error_table,
)
from app.domain.model import ID_MAX_LENGTH, ID_PATTERN, validate_key
from app.http.errors import PROBLEM_JSON
from app.http.state import ServiceDep
from app.rest.reply import SESSION_PATH, Conditions, session_reply
from app.rest.schemas import GetProxySessionResponse, Problem

router = APIRouter(tags=["proxy-sessions"])


_HEADER_DOCS: dict[str, dict[str, Any]] = {
    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
    "WWW-Authenticate": {"description": "The bearer challenge.", "schema": {"type": "string"}},
    "Allow": {"description": "The methods the route serves.", "schema": {"type": "string"}},
}


def _error_responses() -> dict[int | str, dict[str, Any]]:
    """One documented response per status the route can answer, from the error table."""
    by_status: dict[int, list[type[GatewayError]]] = {}
    for cls in error_table():
        if cls not in GRAPHQL_ONLY and cls is not UnsupportedMediaType:
            by_status.setdefault(cls.status, []).append(cls)
    responses: dict[int | str, dict[str, Any]] = {}
    for status, classes in sorted(by_status.items()):
        headers: dict[str, Any] = {}
        if any(cls.retry_after is not None for cls in classes):
            headers["Retry-After"] = _HEADER_DOCS["Retry-After"]
        if any(issubclass(cls, Unauthenticated) for cls in classes):
            headers["WWW-Authenticate"] = _HEADER_DOCS["WWW-Authenticate"]
        if any(issubclass(cls, MethodNotAllowed) for cls in classes):
            headers["Allow"] = _HEADER_DOCS["Allow"]
        response: dict[str, Any] = {
            "description": ". ".join(
                f"`{cls.code}`: {(cls.__doc__ or cls.title).strip().rstrip('.')}" for cls in classes
            ),
            "model": Problem,
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if headers:
            response["headers"] = headers
        responses[status] = response
    return responses


_CACHE_HEADERS = {
    "ETag": {"description": "Strong validator over the body.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`private, max-age=N`.", "schema": {"type": "string"}},
    "Cache-Status": {"description": "RFC 9211 cache status.", "schema": {"type": "string"}},
    "X-Request-ID": {"description": "The request's id.", "schema": {"type": "string"}},
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The proxy session.", "headers": _CACHE_HEADERS},
    304: {"description": "Not modified: `If-None-Match` matched the current ETag."},
    **_error_responses(),
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
    request: Request,
    if_none_match: Annotated[str | None, Header()] = None,
    cache_control: Annotated[str | None, Header()] = None,
    pragma: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """The proxy session, from the cache or one coalesced GetProxySession call."""
    # In the running gateway `app.rest.fast_path` answers this route's GETs before FastAPI,
    # with the same functions; this route documents the operation.
    key = validate_key(voiceConnectorId, proxySessionId)
    conditions = Conditions(if_none_match, cache_control, pragma)
    reply = await session_reply(service, key, conditions, request.scope)
    response = Response(reply.body, status_code=reply.status)
    response.raw_headers[:] = reply.headers
    return response
