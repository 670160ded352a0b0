"""The one error pipeline: a bug at the edge or in a FastAPI route is a bare 500 problem."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.http.edge import Edge
from app.main import create_app
from app.observability.metrics import Metrics
from app.settings import Settings


def test_the_edge_turns_a_bug_into_a_bare_500_problem() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    async def call() -> httpx.Response:
        app = Edge(broken, metrics=Metrics(), max_inflight=10, max_body=1024)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get("/anything", headers={"X-Request-ID": "bug-1"})

    reply = asyncio.run(call())

    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["x-request-id"] == "bug-1"
    assert reply.json()["code"] == "INTERNAL_SERVER_ERROR"
    assert reply.json()["requestId"] == "bug-1"
    assert "secret" not in reply.text
    assert "Traceback" not in reply.text


def test_a_bug_in_a_fastapi_route_is_a_bare_500_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(Settings())
    path = "/boom"

    @app.api.api_route(path, methods=["GET"])
    async def boom() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            return await client.get(path, headers={"X-Request-ID": "bug-2"})

    with caplog.at_level("ERROR"):
        reply = asyncio.run(call())

    assert reply.status_code == 500
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["x-request-id"] == "bug-2"
    assert int(reply.headers["content-length"]) == len(reply.content)
    assert reply.json()["code"] == "INTERNAL_SERVER_ERROR"
    assert reply.json()["requestId"] == "bug-2"
    assert "secret" not in reply.text
    assert "Traceback" not in reply.text
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["unhandled error"]
