"""Both doors and the edge, in process: the gateway built by `create_app` and served over
httpx's ASGI transport, its real aioboto3 client talking to the emulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from app.main import Gateway, create_app
from app.settings import Settings
from tests.conftest import SAMPLE_SESSION
from tests.support.servers import Emulator, aws_env

pytestmark = pytest.mark.fast

PATH = "/v1/voice-connectors/{}/proxy-sessions/{}"
QUERY = (
    "query($vc: ID!, $ps: ID!) {"
    " proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { name status } }"
)
Call = tuple[str, str, dict[str, str], Any]


@pytest.fixture
def aws(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    for name, value in aws_env(emulator.url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return emulator


def _serve(app: Gateway, calls: Sequence[Call]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with app.api.router.lifespan_context(app.api):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
                return [
                    await client.request(method, path, headers=headers, json=body)
                    for method, path, headers, body in calls
                ]

    return asyncio.run(run())


def _key(emulator: Emulator) -> tuple[str, str]:
    key = f"vc-{uuid.uuid4().hex[:8]}", f"ps-{uuid.uuid4().hex}"
    emulator.seed(*key, SAMPLE_SESSION)
    return key


def test_the_rest_door_answers_miss_hit_304_404_and_400(aws: Emulator) -> None:
    key = _key(aws)
    path = PATH.format(*key)
    first, hit = _serve(create_app(Settings()), [("GET", path, {}, None)] * 2)
    etag = first.headers["etag"]
    revalidated, absent, invalid = _serve(
        create_app(Settings()),
        [
            ("GET", path, {"if-none-match": etag}, None),
            ("GET", PATH.format(key[0], "ps-none"), {}, None),
            ("GET", PATH.format("x" * 129, "y"), {}, None),
        ],
    )

    assert (first.status_code, hit.status_code) == (200, 200)
    assert first.json()["ProxySession"]["ProxySessionId"] == key[1]
    assert hit.headers["cache-status"].startswith("proxy-gateway; hit")
    assert hit.headers["x-request-id"]
    assert revalidated.status_code == 304
    assert absent.status_code == 404
    assert absent.headers["content-type"] == "application/problem+json"
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "BAD_USER_INPUT"


def test_the_graphql_door_answers_a_query_then_from_its_response_cache(aws: Emulator) -> None:
    key = _key(aws)
    body = {"query": QUERY, "variables": {"vc": key[0], "ps": key[1]}}
    first, second = _serve(create_app(Settings()), [("POST", "/graphql", {}, body)] * 2)

    assert first.json() == second.json()
    assert first.json()["data"]["proxySession"]["name"] == SAMPLE_SESSION["Name"]
    assert aws.calls(*key) == 1


def test_the_edge_asks_for_a_token_and_serves_probes_without_one(aws: Emulator) -> None:
    key = _key(aws)
    settings = Settings(auth_tokens=("fast-token-1234567890abcdef",))
    refused, allowed, probe, metrics = _serve(
        create_app(settings),
        [
            ("GET", PATH.format(*key), {}, None),
            (
                "GET",
                PATH.format(*key),
                {"authorization": "Bearer fast-token-1234567890abcdef"},
                None,
            ),
            ("GET", "/healthz", {}, None),
            ("GET", "/metrics", {}, None),
        ],
    )

    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert allowed.status_code == 200
    assert probe.status_code == 200
    assert "gateway_cache_results_total" in metrics.text
