"""Request limits at the edge: oversized bodies and overload are refused at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx

from tests.conftest import NAME_QUERY, GatewayFactory
from tests.support.servers import Emulator


def test_body_over_the_limit_is_413_before_anything_runs(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(max_body_bytes=1024)
    before = emulator.total_calls()
    padding = " " * 2000

    body = {"query": NAME_QUERY + padding, "variables": {"vc": seeded[0], "ps": seeded[1]}}

    reply = gateway.client.post("/graphql", json=body)

    assert reply.status_code == 413
    assert reply.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
    assert emulator.total_calls() == before


def test_body_at_the_limit_is_served(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(max_body_bytes=1024)
    body = httpx.Request(
        "POST",
        "http://x",
        json={"query": NAME_QUERY, "variables": {"vc": seeded[0], "ps": seeded[1]}},
    ).content
    padded = body[:-1] + b" " * (1024 - len(body)) + b"}"

    reply = gateway.client.post(
        "/graphql", content=padded, headers={"Content-Type": "application/json"}
    )

    assert len(padded) == 1024
    assert reply.status_code == 200
    assert reply.json()["data"]["proxySession"]["name"] == "order-1234"


def test_chunked_body_over_the_limit_is_413(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(max_body_bytes=1024)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 500

    async def post() -> httpx.Response:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            return await client.post(
                "/graphql", content=chunks(), headers={"Content-Type": "application/json"}
            )

    reply = asyncio.run(post())

    assert reply.status_code == 413
    assert reply.json()["errors"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"


def test_rest_request_over_the_limit_is_a_413_problem(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(max_body_bytes=1024)

    reply = gateway.client.request(
        "GET", "/v1/voice-connectors/a/proxy-sessions/b", content=b"x" * 4096
    )

    assert reply.status_code == 413
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_overload_is_shed_at_once_while_probes_and_metrics_answer(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(max_inflight=4)
    keys = [(key[0], f"{key[1]}-{i}") for i in range(4)]
    for k in keys:
        emulator.fault(*k, delay=1.5, error="NotFoundException")

    async def scenario() -> tuple[
        list[httpx.Response], httpx.Response, list[httpx.Response], float
    ]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
            held = [
                asyncio.create_task(
                    client.get(f"/v1/voice-connectors/{k[0]}/proxy-sessions/{k[1]}")
                )
                for k in keys
            ]
            await asyncio.sleep(0.4)
            loop = asyncio.get_running_loop()
            started = loop.time()
            shed = await client.get(f"/v1/voice-connectors/{key[0]}/proxy-sessions/other")
            elapsed = loop.time() - started
            probes = [await client.get(p) for p in ("/healthz", "/readyz", "/metrics")]
            return list(await asyncio.gather(*held)), shed, probes, elapsed

    held, shed, probes, elapsed = asyncio.run(scenario())

    assert [r.status_code for r in held] == [404] * 4
    assert shed.status_code == 503
    assert shed.json()["code"] == "OVERLOADED"
    assert int(shed.headers["retry-after"]) >= 1
    assert elapsed < 1.0  # answered at once, not after the held requests
    assert [p.status_code for p in probes] == [200, 200, 200]
    assert 'gateway_shed_requests_total{reason="overloaded"}' in probes[2].text
