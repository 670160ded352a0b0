"""`uvicorn app.main:app` is the gateway too: the same traces (set up by the app's own
lifespan), and at start one warning line naming the head limits only `python -m app`
enforces."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness import processes
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
from tests.support.servers import Emulator, aws_env, free_port

HEAD_WARNING = "this server does not limit the request head: GATEWAY_MAX_HEADER_BYTES"


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def under_uvicorn(
    emulator: Emulator, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`uvicorn app.main:app` on loopback, traces on, and its log."""
    log = tmp_path_factory.mktemp("uvicorn") / "stdout.log"
    port = free_port()
    env = {**os.environ, **aws_env(emulator.url), **traced_env(receiver.url)}
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    process = processes.start(argv, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "uvicorn app.main:app did not become ready"
        time.sleep(0.1)
    yield url, log
    processes.stop(process)


def test_uvicorn_app_main_app_exports_the_same_traces(
    under_uvicorn: tuple[str, Path], receiver: Receiver, emulator: Emulator
) -> None:
    url, _ = under_uvicorn
    key = new_key(emulator)
    trace_id, caller_span, headers = parent()

    reply = httpx.get(url + path(key), headers={**AUTH, **headers})

    assert reply.status_code == 200
    spans = receiver.trace(trace_id, 2)
    server, client = one(spans, "SERVER"), one(spans, "CLIENT")
    assert server.parent_span_id == caller_span
    assert server.name == f"GET {SESSION_ROUTE}"
    assert client.parent_span_id == server.span_id


def test_uvicorn_app_main_app_says_what_it_does_not_limit(
    under_uvicorn: tuple[str, Path],
) -> None:
    _, log = under_uvicorn

    warnings = [line for line in log.read_text().splitlines() if HEAD_WARNING in line]
    assert len(warnings) == 1
    assert '"level":"WARNING"' in warnings[0]


def test_python_m_app_limits_the_head_and_says_nothing_of_it(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory()

    assert not any(HEAD_WARNING in line for line in gateway.settled_log_lines())
