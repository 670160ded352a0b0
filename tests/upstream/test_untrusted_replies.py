"""Replies AWS would never send, over the wire: redirects, bare statuses, foreign ids, size."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.conftest import SAMPLE_SESSION, GatewayFactory, session_with
from tests.support.servers import LOOPBACK, Emulator

ONE_ATTEMPT = {"upstream_max_attempts": 1}
HTML = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"


class _Elsewhere(BaseHTTPRequestHandler):
    """Another host:port answering a valid-looking session to anything."""

    hits = 0

    def _answer(self) -> None:
        type(self).hits += 1
        body = b'{"ProxySession": {"Name": "elsewhere"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def elsewhere() -> Iterator[tuple[str, type[_Elsewhere]]]:
    """A server on loopback a redirect points at, counting the requests it gets."""
    handler = type("Elsewhere", (_Elsewhere,), {"hits": 0})
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_never_followed(
    gateway_factory: GatewayFactory,
    emulator: Emulator,
    seeded: tuple[str, str],
    elsewhere: tuple[str, type[_Elsewhere]],
    status: int,
) -> None:
    gateway = gateway_factory(**ONE_ATTEMPT)
    url, handler = elsewhere
    emulator.fault(*seeded, redirect=f"{url}/stolen", redirect_status=status, times=1)

    reply = gateway.get_session(*seeded)
    again = gateway.get_session(*seeded)

    assert reply.status_code == 502
    assert reply.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert "upstreamCode" not in reply.json()
    assert handler.hits == 0
    assert again.status_code == 200  # nothing cached from the redirect
    assert again.json()["ProxySession"]["Name"] != "elsewhere"
    assert emulator.calls(*seeded) == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "THROTTLED"),
        (503, "SERVICE_UNAVAILABLE"),
        (500, "UPSTREAM_FAILURE"),
        (502, "UPSTREAM_FAILURE"),
        (504, "UPSTREAM_FAILURE"),
    ],
)
def test_a_bare_status_is_the_fault_it_says_and_is_retried(
    gateway_factory: GatewayFactory,
    emulator: Emulator,
    key: tuple[str, str],
    status: int,
    code: str,
) -> None:
    gateway = gateway_factory(upstream_max_attempts=3, upstream_timeout_seconds=5)
    emulator.fault(*key, raw_status=status, raw_body=HTML)

    reply = gateway.get_session(*key)

    assert reply.json()["code"] == code
    assert "upstreamCode" not in reply.json()
    assert emulator.calls(*key) == 3


def test_a_bare_503_then_success_is_served(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(upstream_max_attempts=3, upstream_timeout_seconds=5)
    emulator.fault(*seeded, raw_status=503, raw_body=HTML, times=2)

    reply = gateway.get_session(*seeded)

    assert reply.status_code == 200
    assert emulator.calls(*seeded) == 3


def test_a_bare_503_is_answered_from_a_stale_entry(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(cache_ttl_seconds=0.3, **ONE_ATTEMPT)
    fresh = gateway.get_session(*seeded)
    time.sleep(0.5)
    emulator.fault(*seeded, raw_status=503, raw_body=HTML)

    stale = gateway.get_session(*seeded)

    assert stale.status_code == 200
    assert stale.content == fresh.content
    assert stale.headers["cache-status"] == "proxy-gateway; fwd=stale; fwd-status=503"


def test_bare_5xx_open_the_breaker(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(
        breaker_failure_threshold=3, breaker_reset_seconds=30, upstream_max_attempts=1
    )
    emulator.fault("*", "*", raw_status=502, raw_body=HTML)

    failing = [gateway.get_session(key[0], f"{key[1]}-{i}").json()["code"] for i in range(3)]
    before = emulator.total_calls()
    refused = gateway.get_session(key[0], f"{key[1]}-after")

    assert failing == ["UPSTREAM_FAILURE"] * 3
    assert refused.json()["code"] == "CIRCUIT_OPEN"
    assert emulator.total_calls() == before
    assert gateway.metric("gateway_breaker_state") == 1


def test_a_reply_naming_other_ids_is_refused_and_not_cached(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(**ONE_ATTEMPT)
    emulator.fault(*seeded, foreign_ids=True)

    first = gateway.get_session(*seeded)
    second = gateway.get_session(*seeded)

    assert first.status_code == second.status_code == 502
    assert first.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert "upstreamCode" not in first.json()
    assert emulator.calls(*seeded) == 2  # nothing cached: the second asked again


def test_a_reply_naming_its_own_ids_is_served(
    gateway_factory: GatewayFactory, emulator: Emulator, key: tuple[str, str]
) -> None:
    gateway = gateway_factory(**ONE_ATTEMPT)
    emulator.seed(*key, session_with(VoiceConnectorId=key[0], ProxySessionId=key[1]))

    assert gateway.get_session(*key).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_a_reply_over_the_size_limit_is_refused_and_not_cached(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str], chunked: bool
) -> None:
    gateway = gateway_factory(upstream_max_body_bytes=4096, **ONE_ATTEMPT)
    emulator.fault(*seeded, pad_bytes=1_000_000, chunked=chunked)

    first = gateway.get_session(*seeded)
    second = gateway.get_session(*seeded)

    assert first.status_code == 502
    assert first.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert "upstreamCode" not in first.json()
    assert second.status_code == 502
    assert emulator.calls(*seeded) == 2


@pytest.mark.parametrize("chunked", [False, True])
def test_a_39_mb_reply_is_not_read_nor_kept(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str], chunked: bool
) -> None:
    # As big as 600,000 participants: with the default limit (64 KiB) the rest is never read.
    gateway = gateway_factory(**ONE_ATTEMPT)
    assert gateway.get_session(*seeded).status_code == 200  # warm: the first call's allocations
    huge = (seeded[0], f"{seeded[1]}-huge")
    emulator.seed(*huge, SAMPLE_SESSION)
    emulator.fault(*huge, pad_bytes=39_000_000, chunked=chunked)
    before = gateway.rss_kib()

    replies = [gateway.get_session(*huge) for _ in range(3)]
    grown = gateway.rss_kib() - before

    assert [reply.status_code for reply in replies] == [502, 502, 502]
    assert {reply.json()["code"] for reply in replies} == {"UPSTREAM_UNAVAILABLE"}
    assert emulator.calls(*huge) == 3  # nothing cached
    assert grown < 8 * 1024, f"resident memory grew {grown} KiB"
    assert gateway.get_session(*seeded).headers["cache-status"].startswith("proxy-gateway; hit")


@pytest.mark.parametrize("chunked", [False, True])
def test_a_reply_at_the_size_limit_is_served(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str], chunked: bool
) -> None:
    gateway = gateway_factory(upstream_max_body_bytes=4096, **ONE_ATTEMPT)
    emulator.fault(*seeded, pad_bytes=2000, chunked=chunked)

    reply = gateway.get_session(*seeded)

    assert reply.status_code == 200
