"""`uvicorn app.main:app` is the gateway too: the same traces (set up by the app's own
lifespan), and at start one warning line naming the head limits only `python -m app`
enforces."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.otlp import Receiver
from tests.conftest import GatewayFactory
from tests.observability.test_traces import (
    AUTH,
    SESSION_ROUTE,
    new_key,
    one,
    parent,
    path,
    traced_env,
)
from tests.support.servers import Emulator, Gateway, start_gateway

HEAD_WARNING = "this server does not limit the request head: GATEWAY_MAX_HEADER_BYTES"


@pytest.fixture(scope="module")
def under_uvicorn(
    emulator: Emulator, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """`uvicorn app.main:app` on loopback, traces on."""
    log = tmp_path_factory.mktemp("uvicorn") / "stdout.log"
    gateway = start_gateway(
        emulator.url,
        log,
        traced_env(receiver.url),
        entry=("-m", "uvicorn", "app.main:app"),
    )
    yield gateway
    gateway.stop()


def test_uvicorn_app_main_app_exports_the_same_traces(
    under_uvicorn: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    trace_id, caller_span, headers = parent()

    reply = under_uvicorn.client.get(path(key), headers={**AUTH, **headers})

    assert reply.status_code == 200
    spans = receiver.trace(trace_id, 2)
    server, client = one(spans, "SERVER"), one(spans, "CLIENT")
    assert server.parent_span_id == caller_span
    assert server.name == f"GET {SESSION_ROUTE}"
    assert client.parent_span_id == server.span_id


def test_uvicorn_app_main_app_says_what_it_does_not_limit(
    under_uvicorn: Gateway,
) -> None:
    warnings = [line for line in under_uvicorn.settled_log_lines() if HEAD_WARNING in line]
    assert len(warnings) == 1
    assert '"level":"WARNING"' in warnings[0]


def test_python_m_app_limits_the_head_and_says_nothing_of_it(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory()

    assert not any(HEAD_WARNING in line for line in gateway.settled_log_lines())
