"""FastAPI's exception handlers: every error on the REST side as an RFC 9457 problem, and
a route's unexpected exception as a bare 500 in the shape of the door it reached."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.domain.errors import BadUserInput, GatewayError, MethodNotAllowed, NotFound
from app.domain.model import validate_id
from app.http.asgi import template_pattern
from app.http.errors import Reply, bug_error, error_reply, problem_reply
from app.rest.routes import SESSION_PATH

# A path shaped like the session route but with an empty id segment misses the router.
_EMPTY_ID = template_pattern(SESSION_PATH, "[^/]*")
_HTTP_ERRORS: dict[int, type[GatewayError]] = {404: NotFound, 405: MethodNotAllowed}


def _render(error: GatewayError) -> Response:
    return _response(error.status, problem_reply(error))


def _response(status: int, reply: Reply) -> Response:
    headers, body = reply
    response = Response(body, status_code=status)
    response.raw_headers[:] = headers
    return response


async def _bug(request: Request, _: Exception) -> Response:
    """A route let an exception through (the observability middleware logs it)."""
    error = bug_error()
    return _response(error.status, error_reply(request.url.path, error))


async def _gateway_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _render(exc)


async def _validation_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    details = []
    for err in exc.errors():
        where, name = (*err.get("loc", ()), "", "")[:2]
        if where == "path":
            try:  # our own wording, the same as the GraphQL door's
                validate_id(str(name), str(err.get("input", "")))
            except BadUserInput as error:
                details.append(error.detail)
                continue
        details.append(f"{name or where}: {err.get('msg', 'invalid')}")
    return _render(BadUserInput(" ".join(details) or "Invalid request."))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404 and _EMPTY_ID.fullmatch(request.url.path):
        return _render(BadUserInput("voiceConnectorId and proxySessionId must not be empty."))
    error_type = _HTTP_ERRORS.get(exc.status_code, BadUserInput)
    response = _render(error_type(str(exc.detail)))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _bug)
