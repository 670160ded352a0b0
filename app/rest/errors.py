"""The REST door's words for FastAPI's parameter validation and for an empty id segment."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response

from app.domain.errors import BadUserInput, GatewayError
from app.domain.model import validate_key
from app.http.asgi import template_pattern
from app.http.errors import error_response
from app.rest.reply import SESSION_PATH

# A path shaped like the session route but with an empty id segment misses the router.
_EMPTY_ID = template_pattern(SESSION_PATH, "[^/]*")


def refine(path: str, status: int) -> GatewayError | None:
    """A 400 instead of the router's 404 for the session route with an empty id."""
    if status == 404 and _EMPTY_ID.fullmatch(path):
        return BadUserInput("voiceConnectorId and proxySessionId must not be empty.")
    return None


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(err.get("loc", ("",))[0] == "path" for err in errors):
        # The ids, in the words the fast path and the GraphQL door use: `validate_key`'s.
        params = request.path_params
        try:
            validate_key(params.get("voiceConnectorId", ""), params.get("proxySessionId", ""))
        except BadUserInput as invalid:
            return error_response(request.scope, invalid)
    details = []
    for err in errors:
        where, name = (*err.get("loc", ()), "", "")[:2]
        details.append(f"{name or where}: {err.get('msg', 'invalid')}")
    error = BadUserInput(" ".join(details) or "Invalid request.")
    return error_response(request.scope, error)


def install(app: FastAPI) -> None:
    """Register the REST door's validation handler on `app`."""
    app.add_exception_handler(RequestValidationError, _validation_error)
