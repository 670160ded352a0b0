"""Operations routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from app.http.state import StateDep

router = APIRouter(tags=["operations"])

_OK = b'{"status":"ok"}'


@router.get("/healthz", operation_id="healthz", summary="Liveness: the process is up")
async def healthz() -> Response:
    """Always 200 while the process serves requests."""
    return Response(_OK, media_type="application/json")


@router.get(
    "/readyz",
    operation_id="readyz",
    summary="Readiness: the AWS client is built and the process is not shutting down",
    responses={503: {"description": "Starting or shutting down."}},
)
async def readyz(state: StateDep) -> Response:
    """200 when ready to take traffic, else 503."""
    if state.lifecycle.ready:
        return Response(_OK, media_type="application/json")
    return Response(b'{"status":"unavailable"}', status_code=503, media_type="application/json")


@router.get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={
        200: {
            "description": "Prometheus text exposition format; OpenMetrics (with trace"
            " exemplars) for `Accept: application/openmetrics-text`."
        }
    },
)
async def metrics(state: StateDep, accept: Annotated[str | None, Header()] = None) -> Response:
    """The gateway's metrics in Prometheus text format, or in OpenMetrics (with trace
    exemplars on the request durations) when the scraper asks for it."""
    if accept is not None and "application/openmetrics-text" in accept:
        body = openmetrics.generate_latest(state.metrics.registry)  # type: ignore[no-untyped-call]
        return Response(body, media_type=openmetrics.CONTENT_TYPE_LATEST)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
