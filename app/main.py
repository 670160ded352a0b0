"""The application factory: wires settings, the service, both doors and the middleware."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__, ops, pages
from app.auth import build_authenticator
from app.domain.types import SessionKey
from app.graphql import documents, merging
from app.graphql.fast_path import GraphQLFastPath
from app.graphql.response_cache import ResponseCache
from app.graphql.schema import build_router
from app.graphql.transport import GatewayRouter
from app.http import handlers, protocol
from app.http.edge import Edge
from app.http.state import AppState
from app.observability import logs
from app.observability import tracing as observability_tracing
from app.observability.metrics import Metrics
from app.observability.tracing import Tracing
from app.rest import errors as rest_errors
from app.rest.fast_path import RestFastPath
from app.rest.routes import router as rest_router
from app.seams import require
from app.service.callers import CallerRates
from app.service.sessions import ProxySessionService
from app.settings import Settings
from app.shared.fleet import Fleet
from app.upstream import Upstream
from app.upstream.tracing import AttemptTracer

log = logging.getLogger(__name__)

GRAPHQL_SEAMS = (documents.STRAWBERRY_SEAM, documents.TOKENS_SEAM, merging.SEAM)
"""The GraphQL door's seams, used while `GATEWAY_GRAPHQL_TUNING` is on."""
SEAMS = (protocol.SEAM, protocol.COALESCING_SEAM, *GRAPHQL_SEAMS)
"""Every seam into a library's private names (docs/performance.md lists them; the botocore
shortcuts check themselves as the client is built: `app.upstream.tuning`)."""

DESCRIPTION = (
    "Internal gateway onto Amazon Chime SDK Voice `GetProxySession`, behind one cached "
    "aioboto3 client. AWS ended support for Chime SDK proxy sessions on 2026-04-07."
)


def create_app(
    settings: Settings | None = None,
    tracing: Tracing | None = None,
    *,
    fast_paths: bool = True,
    guarded: bool = False,
) -> Gateway:
    """Build the gateway; long-lived clients are created in the lifespan, not here.

    With `tracing` (OpenTelemetry, from the `OTEL_*` variables), every request gets a
    SERVER span and every AWS attempt a CLIENT span, and log lines carry their ids.
    Without `fast_paths`, FastAPI and strawberry answer everything (the differential tests
    hold the fast paths to what they answer). `guarded`: the server enforces the request
    head's limits (`python -m app`'s protocol); otherwise the lifespan says it at start.
    Without `tracing`, the lifespan sets traces up from the `OTEL_*` variables."""
    given_tracing = tracing
    settings = settings or Settings()
    if settings.graphql_tuning:
        require(GRAPHQL_SEAMS)
    state = AppState(settings=settings, metrics=Metrics(fleet=settings.fleet))
    authenticator = build_authenticator(settings, state.metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Traces are set up here, in the serving process, whatever serves the app (a
        # server that forks workers forks before this), from the `OTEL_*` variables.
        tracing = (
            given_tracing if given_tracing is not None else observability_tracing.from_environment()
        )
        edge.tracing = tracing
        if not guarded:
            log.warning(
                "this server does not limit the request head: GATEWAY_MAX_HEADER_BYTES and"
                " the head timeout (GATEWAY_KEEP_ALIVE_SECONDS), the pipelining bound and"
                " the trailer check hold under `python -m app` only"
            )
        fleet = _fleet(settings, state, tracing)
        upstream = Upstream(
            settings,
            state.metrics,
            fleet.quota if fleet else None,
            tracer=None if tracing is None else AttemptTracer(tracing.tracer),
        )
        await upstream.start()
        state.service = ProxySessionService(
            settings,
            upstream,
            state.metrics,
            shared=fleet.layer if fleet else None,
            caller_rates=fleet.caller_rates if fleet else None,
        )
        if fleet is not None:
            fleet.start()
        if authenticator is not None:
            await authenticator.start()
        state.lifecycle.started = True
        if authenticator is None:
            log.warning(
                "authentication is off: set GATEWAY_AUTH_TOKENS or GATEWAY_AUTH_TOKENS_FILE"
            )
        log.info("gateway started", extra={"version": __version__})
        try:
            yield
        finally:
            state.lifecycle.stopping = True
            if authenticator is not None:
                await authenticator.close()
            await upstream.close()
            if fleet is not None:
                await fleet.close()
            if tracing is not None:  # the last spans leave (bounded), off the event loop
                await asyncio.to_thread(tracing.shutdown)
            log.info("gateway stopped")
            logs.flush()

    api, graphql_router, graphql_responses = _api(settings, state, lifespan)
    # A request meets the edge (ids, limits, CORS, auth, metrics, access log), then the
    # doors' fast paths (REST hits are most of the traffic: theirs first), then FastAPI.
    doors: ASGIApp = api
    if fast_paths:
        doors = GraphQLFastPath(
            doors, state=state, cache=graphql_responses, manifest=graphql_router.manifest
        )
        doors = RestFastPath(doors, state=state)
    edge = Edge(
        doors,
        metrics=state.metrics,
        max_inflight=settings.max_inflight,
        max_body=settings.max_body_bytes,
        body_timeout=settings.body_timeout_seconds,
        authenticator=authenticator,
        cors_origins=settings.cors_origins,
        # A refusal is counted under the route its path would have reached: any of the app's.
        route_templates=_templates(api, (rest_router, graphql_router, ops.router, pages.router)),
        tracing=None,  # set by the lifespan
    )
    return Gateway(edge, api, state)


def _api(
    settings: Settings,
    state: AppState,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]],
) -> tuple[FastAPI, GatewayRouter, ResponseCache]:
    """The FastAPI app with every route, the GraphQL router and its response cache."""
    api = FastAPI(
        title="Proxy-session gateway",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # app/pages.py serves /docs, without a CDN
        redoc_url=None,
        # The gateway exports its own Prometheus metrics; FastAPI's OpenTelemetry hooks
        # would check the environment on every request for nothing.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    api.state.gateway = state
    api.include_router(rest_router)
    graphql_responses = ResponseCache()
    graphql_router = build_router(settings, graphql_responses)
    api.include_router(graphql_router, tags=["graphql"], include_in_schema=False)
    api.include_router(ops.router)
    api.include_router(pages.router)
    handlers.install(api, refine=rest_errors.refine)
    rest_errors.install(api)
    api.openapi = lambda: _openapi(api)  # type: ignore[method-assign]
    return api, graphql_router, graphql_responses


def _templates(api: FastAPI, routers: tuple[APIRouter, ...]) -> tuple[str, ...]:
    """The path templates of every route the app serves (its OpenAPI document's included)."""
    paths = [api.openapi_url] if api.openapi_url else []
    for router in routers:
        paths += [
            path for route in router.routes if isinstance(path := getattr(route, "path", None), str)
        ]
    return tuple(dict.fromkeys(paths))


class Gateway:
    """The gateway as one ASGI app: the edge, around the doors' fast paths, around the
    FastAPI app (`api`), which runs the lifespan and serves what the fast paths pass on."""

    __slots__ = ("api", "edge", "state")

    def __init__(self, edge: ASGIApp, api: FastAPI, state: AppState) -> None:
        self.edge = edge
        self.api = api
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.edge(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document (FastAPI's, without its default 422)."""
        return self.api.openapi()


def _fleet(settings: Settings, state: AppState, tracing: Tracing | None) -> Fleet | None:
    """The shared layer, in fleet mode (`GATEWAY_REDIS_URL`); None when the gateway is alone."""
    if not settings.fleet:
        if settings.upstream_rate_limit:
            log.warning(
                "GATEWAY_UPSTREAM_RATE_LIMIT needs the shared layer (GATEWAY_REDIS_URL): ignored"
            )
        return None

    def invalidate(key: SessionKey) -> None:
        if state.service is not None:
            state.service.invalidate(key)

    rate = settings.caller_upstream_rate
    return Fleet(
        settings,
        state.metrics,
        invalidate,
        # Counted fleet-wide; in this process only while the shared layer is unreachable.
        local_caller_rates=CallerRates(rate) if rate > 0 else None,
        tracer=None if tracing is None else tracing.tracer,
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document without its default 422: validation failures are 400 problems."""
    if app.openapi_schema is None:
        schema = FastAPI.openapi(app)
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                responses = operation.get("responses", {})
                responses.pop("422", None)
                for status, response in responses.items():
                    if status[0] in "45":  # errors are problem+json only
                        response.get("content", {}).pop("application/json", None)
        components = schema.get("components", {}).get("schemas", {})
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
        app.openapi_schema = schema
    return app.openapi_schema


@functools.cache
def _default_app() -> Gateway:
    settings = Settings()
    logs.configure(settings.log_level)
    return create_app(settings)


def __getattr__(name: str) -> Any:
    """`app.main:app` for uvicorn, built on first use rather than at import."""
    if name == "app":
        return _default_app()
    raise AttributeError(name)
