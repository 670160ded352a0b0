"""The FastAPI route itself, with the fast path taken out, answers like the served gateway.

In the running gateway `app.rest.fast_path` answers every GET with valid ids before
FastAPI; the route stays the documented operation. Both build their answers with
`session_reply`; this holds the route to the same wire behaviour, through the real
aioboto3 client and the emulator, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.rest.fast_path import RestFastPath
from app.settings import Settings
from tests.conftest import SAMPLE_SESSION
from tests.support.servers import Emulator, Gateway, aws_env


def _route_only_app(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    for name, value in aws_env(emulator.url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    app = create_app(Settings(breaker_failure_threshold=1000))
    fast_path: object = RestFastPath
    app.user_middleware = [m for m in app.user_middleware if m.cls is not fast_path]
    return app


async def _exchange(app: FastAPI, requests: list[tuple[str, dict[str, str]]]) -> list[Any]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            return [await client.get(path, headers=headers) for path, headers in requests]


# Seconds left depend on when each side filled its cache; their values are tested elsewhere.
_SECONDS = re.compile(r"(ttl=|max-age=)\d+")


def _comparable(reply: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, the contract's headers and the body, minus what differs per request."""
    names = (
        "content-type",
        "content-length",
        "transfer-encoding",
        "cache-control",
        "cache-status",
        "etag",
        "retry-after",
    )
    headers = {
        name: _SECONDS.sub(r"\1N", reply.headers[name]) for name in names if name in reply.headers
    }
    body: Any = reply.json() if reply.content else None
    if isinstance(body, dict):
        body.pop("requestId", None)
    return reply.status_code, headers, body


def test_the_route_answers_as_the_fast_path_does(
    emulator: Emulator,
    gateway: Gateway,
    key: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, missing = key, (key[0], key[1] + "-missing")
    emulator.seed(*found, SAMPLE_SESSION)
    path = "/v1/voice-connectors/{}/proxy-sessions/{}"
    requests = [
        (path.format(*found), {}),  # miss: one upstream call
        (path.format(*found), {}),  # hit
        (path.format(*found), {"If-None-Match": "*"}),  # 304
        (path.format(*found), {"Cache-Control": "no-cache"}),  # revalidated
        (path.format(*missing), {}),  # 404 problem
        (path.format(*missing), {}),  # negative hit
        (path.format(" ", "x"), {}),  # 400 problem, no upstream call
    ]

    route = asyncio.run(_exchange(_route_only_app(emulator, monkeypatch), requests))
    calls_after_route = emulator.calls(*found), emulator.calls(*missing)
    served = [gateway.client.get(p, headers=h) for p, h in requests]

    assert calls_after_route == (2, 1)
    assert [_comparable(r) for r in route] == [_comparable(r) for r in served]
    assert [r.status_code for r in route] == [200, 200, 304, 200, 404, 404, 400]
