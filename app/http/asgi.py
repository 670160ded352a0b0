"""Small helpers for pure ASGI code."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.types import Scope

from app.observability.context import RequestContext

GRAPHQL_PATH = "/graphql"
# Probes and metrics: never authenticated, never shed; they are how operators see the service.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """What a fast path puts in `scope["route"]`, so metrics label it like the router would."""

    path: str


def template_pattern(template: str, segment: str = "[^/]+") -> re.Pattern[str]:
    """A regex for the paths of a route template, one group per `{parameter}`."""
    literals = re.split(r"\{[^}]+\}", template)
    return re.compile(f"({segment})".join(re.escape(literal) for literal in literals))


def first_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case bytes) in an HTTP scope, if any."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


REQUEST_CONTEXT = "gateway.request_context"
"""The scope key of the request's `RequestContext` (set by the edge): where the doors note
how the cache answered, for the access line."""


def request_context(scope: Scope) -> RequestContext:
    """The request's context, as the edge made it (an empty one, without a request id, for
    a request that did not come through the edge)."""
    context: RequestContext | None = scope.get(REQUEST_CONTEXT)
    return RequestContext(None) if context is None else context


UNMATCHED = "unmatched"
"""The `route` label of a request no route or fast path took."""


def route_template(scope: Scope) -> str:
    """The template of the route that served the request (metrics and logs label by it)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED
