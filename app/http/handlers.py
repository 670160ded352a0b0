"""FastAPI's exception handlers, for the whole app, through the one error pipeline.

A `GatewayError` a route raises, FastAPI's own 404/405, and a route's unexpected exception
(a bare 500 that says nothing more) are each answered in the shape of the door reached.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from app.domain.errors import BadUserInput, GatewayError, MethodNotAllowed, NotFound
from app.http.errors import bug_error, error_response

Refine = Callable[[str, int], GatewayError | None]
"""A door's better word for one of the router's own errors (path, status), or None."""


def install(app: FastAPI, refine: Refine | None = None) -> None:
    """Register the handlers on `app`; `refine` lets a door reword the router's 404s."""

    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return error_response(request.scope, exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path
        error = refine(path, exc.status_code) if refine is not None else None
        if error is None:
            error = _router_error(exc)
        return error_response(request.scope, error)

    async def bug(request: Request, _: Exception) -> Response:
        """A route let an exception through (the edge logs it)."""
        return error_response(request.scope, bug_error())

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, bug)


def _router_error(exc: HTTPException) -> GatewayError:
    detail = str(exc.detail)
    if exc.status_code == 404:
        return NotFound(detail)
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        return MethodNotAllowed(detail, allow=tuple(m.strip() for m in allow.split(",") if m))
    return BadUserInput(detail)
