"""`python -m app`: graceful shutdown (readiness off first, in-flight requests finish)."""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.conftest import NAME_QUERY, SAMPLE_SESSION, GatewayFactory
from tests.support.servers import Emulator, Gateway, start_gateway


def test_sigterm_turns_readiness_off_then_drains_and_exits_cleanly(
    emulator: Emulator, tmp_path: Path, key: tuple[str, str]
) -> None:
    emulator.seed(*key, SAMPLE_SESSION)
    emulator.fault(*key, delay=1.0, times=1)
    gateway = start_gateway(
        emulator.url, tmp_path / "stdout.log", {"GATEWAY_SHUTDOWN_DRAIN_SECONDS": "1"}
    )
    replies: list[httpx.Response] = []
    slow = threading.Thread(target=lambda: replies.append(gateway.get_session(*key)))
    slow.start()
    time.sleep(0.3)

    gateway.process.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    ready = gateway.client.get("/readyz")
    alive = gateway.client.get("/healthz")
    slow.join(timeout=10)
    code = gateway.process.wait(timeout=30)
    gateway.stop()

    assert ready.status_code == 503
    assert alive.status_code == 200
    assert [r.status_code for r in replies] == [200]
    assert code == 0
    assert any(r["message"] == "gateway stopped" for r in gateway.log_records())


def test_forwarded_headers_are_trusted_only_from_listed_proxies(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    untrusting = gateway_factory()
    trusting = gateway_factory(forwarded_allow_ips="127.0.0.1")
    headers = {"X-Forwarded-For": "203.0.113.7"}

    untrusting.get_session(*seeded, headers={**headers, "X-Request-ID": "fwd-no"})
    trusting.get_session(*seeded, headers={**headers, "X-Request-ID": "fwd-yes"})

    [plain] = untrusting.wait_for_records(lambda r: r.get("request_id") == "fwd-no")
    [forwarded] = trusting.wait_for_records(lambda r: r.get("request_id") == "fwd-yes")
    assert plain["client"] == "127.0.0.1"
    assert forwarded["client"] == "203.0.113.7"


@pytest.mark.usefixtures("aws_environment")
def test_only_the_production_entry_point_settles_the_heap(gateway: Gateway) -> None:
    settled = gateway.wait_for_records(lambda r: r["message"] == "heap settled")
    threshold = gc.get_threshold()

    async def start_and_stop() -> None:
        app = create_app(Settings())
        async with app.api.router.lifespan_context(app.api):
            pass

    asyncio.run(start_and_stop())

    assert len(settled) == 1
    assert settled[0]["frozen_objects"] > 10_000
    assert gc.get_threshold() == threshold  # the lifespan the tests run leaves the GC alone


@pytest.mark.parametrize("drain", ["0", "0.3"])
def test_requests_still_running_when_the_grace_ends_get_503_shutting_down_and_exit_0(
    emulator: Emulator, tmp_path: Path, key: tuple[str, str], drain: str
) -> None:
    emulator.seed(*key, SAMPLE_SESSION)
    emulator.fault(*key, delay=5.0, times=2)
    gateway = start_gateway(
        emulator.url,
        tmp_path / "stdout.log",
        {"GATEWAY_SHUTDOWN_DRAIN_SECONDS": drain, "GATEWAY_SHUTDOWN_GRACE_SECONDS": "1"},
    )
    replies: dict[str, httpx.Response] = {}
    threads = [
        threading.Thread(
            target=lambda: replies.__setitem__(
                "rest", gateway.get_session(*key, headers={"X-Request-ID": "held-rest"})
            )
        ),
        threading.Thread(
            target=lambda: replies.__setitem__(
                "graphql",
                gateway.graphql(
                    NAME_QUERY, {"vc": key[0], "ps": key[1]}, headers={"X-Request-ID": "held-gql"}
                ),
            )
        ),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)

    started = time.monotonic()
    gateway.process.send_signal(signal.SIGTERM)
    for thread in threads:
        thread.join(timeout=10)
    code = gateway.process.wait(timeout=30)
    elapsed = time.monotonic() - started
    gateway.stop()

    rest, graphql = replies["rest"], replies["graphql"]
    assert elapsed < 4
    assert code == 0
    assert rest.status_code == 503
    assert rest.headers["content-type"] == "application/problem+json"
    assert rest.headers["retry-after"] == "1"
    assert rest.headers["x-request-id"] == "held-rest"
    assert rest.json()["code"] == "SHUTTING_DOWN"
    assert rest.json()["requestId"] == "held-rest"
    assert graphql.status_code == 503
    assert graphql.headers["retry-after"] == "1"
    [error] = graphql.json()["errors"]
    assert error["extensions"]["code"] == "SHUTTING_DOWN"
    assert error["extensions"]["requestId"] == "held-gql"
    lines = gateway.log_lines()
    assert not any("Traceback" in line or "CancelledError" in line for line in lines)


def test_ctrl_c_stops_the_gateway_quietly(emulator: Emulator, tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    gateway = start_gateway(emulator.url, log)
    gateway.process.send_signal(signal.SIGINT)
    code = gateway.process.wait(timeout=15)

    assert code == 130  # interrupted, as a shell reports Ctrl-C
    text = log.read_text(encoding="utf-8")
    assert "Traceback" not in text
    assert "KeyboardInterrupt" not in text
    assert "gateway stopped" in text
