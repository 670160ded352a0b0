"""Operations routes: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
    responses={200: {"description": "Prometheus text exposition format."}},
)
async def metrics(state: StateDep) -> Response:
    """The gateway's metrics in Prometheus text format."""
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
