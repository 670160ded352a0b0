"""The head limit and head timeout of the gateway's HTTP protocol (app.http.protocol):
oversized request heads are refused with 431 before they are read whole, and connections
that never send a whole head are closed."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import orjson
import pytest

from tests.conftest import GatewayFactory
from tests.http.wire import closed_within, connect, read_response
from tests.support.servers import Gateway

SESSION_TARGET = "/v1/voice-connectors/vc-a/proxy-sessions/ps-b"


def _head(size: int, target: str = SESSION_TARGET) -> bytes:
    """A GET head of exactly `size` bytes (an X-Pad header makes up the size)."""
    start = f"GET {target} HTTP/1.1\r\nHost: gw\r\nX-Pad: ".encode()
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def test_a_50_mb_header_is_refused_with_431_without_being_read(gateway: Gateway) -> None:
    with connect(gateway) as warm:  # the first request's allocations are not the header's
        warm.sendall(_head(1000))
        read_response(warm)
    before = gateway.rss_kib()
    chunk = b"a" * 65536

    def send_forever(sock_: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock_.sendall(f"GET {SESSION_TARGET} HTTP/1.1\r\nHost: gw\r\nX-Big: ".encode())
            for _ in range(800):  # 50 MB
                sock_.sendall(chunk)

    with connect(gateway) as sock:
        started = time.monotonic()
        sender = threading.Thread(target=send_forever, args=(sock,), daemon=True)
        sender.start()
        status, headers, body = read_response(sock)
        elapsed = time.monotonic() - started
        closed = closed_within(sock, 3)
    sender.join(timeout=10)
    grown = gateway.rss_kib() - before

    assert status == 431
    assert elapsed < 1
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert orjson.loads(body)["code"] == "HEADERS_TOO_LARGE"
    assert orjson.loads(body)["requestId"] == headers["x-request-id"]
    assert closed is not None
    assert grown < 8 * 1024  # KiB: nowhere near the 50 MB sent


@pytest.mark.parametrize("size", [16385, 100 * 1024])
def test_a_head_over_the_limit_sent_at_once_is_431(gateway: Gateway, size: int) -> None:
    with connect(gateway) as sock:
        sock.sendall(_head(size))
        status, _, body = read_response(sock)

    assert status == 431
    assert orjson.loads(body)["code"] == "HEADERS_TOO_LARGE"


def test_a_head_at_the_limit_is_served(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(_head(16384))
        status, _, _ = read_response(sock)

    assert status != 431


def test_two_thousand_small_headers_are_431(gateway: Gateway) -> None:
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(2000))
    with connect(gateway) as sock:
        sock.sendall(f"GET {SESSION_TARGET} HTTP/1.1\r\nHost: gw\r\n".encode() + headers + b"\r\n")
        status, _, _ = read_response(sock)

    assert status == 431


def test_a_graphql_head_over_the_limit_is_431_in_the_graphql_shape(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(max_header_bytes=2048)
    head = _head(4096, "/graphql").replace(b"GET", b"POST", 1)
    with connect(gateway) as sock:
        sock.sendall(head)
        status, _, body = read_response(sock)

    assert status == 431
    assert orjson.loads(body)["errors"][0]["extensions"]["code"] == "HEADERS_TOO_LARGE"


KEEP_ALIVE = 2
"""GATEWAY_KEEP_ALIVE_SECONDS of the timing tests: short, so they wait seconds, not tens."""


def test_connections_that_never_send_a_whole_head_are_closed(
    gateway_factory: GatewayFactory,
) -> None:
    # The keep-alive timeout is the deadline for a head.
    gateway = gateway_factory(keep_alive_seconds=KEEP_ALIVE)
    with connect(gateway) as silent, connect(gateway) as partial:
        partial.sendall(b"GET /v1/voice-conn")
        results: dict[str, float | None] = {}
        threads = [
            threading.Thread(
                target=lambda: results.__setitem__("silent", closed_within(silent, 9))
            ),
            threading.Thread(
                target=lambda: results.__setitem__("partial", closed_within(partial, 9))
            ),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert results["silent"] is not None
    assert KEEP_ALIVE - 1 < results["silent"] < KEEP_ALIVE + 2
    assert results["partial"] is not None
    assert KEEP_ALIVE - 1 < results["partial"] < KEEP_ALIVE + 2


def test_idle_connections_are_closed_after_the_keep_alive_timeout_busy_ones_kept(
    gateway_factory: GatewayFactory,
) -> None:
    # The keep-alive timeout, timed from each connection's last response.
    gateway = gateway_factory(keep_alive_seconds=KEEP_ALIVE)
    probe = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
    with connect(gateway) as idle, connect(gateway) as busy:
        idle.sendall(probe)
        assert read_response(idle)[0] == 200
        result: dict[str, float | None] = {}
        watcher = threading.Thread(
            target=lambda: result.__setitem__("idle", closed_within(idle, 9))
        )
        watcher.start()
        statuses = []
        for _ in range(4):  # a request every 1 s: 4 s in all, twice the timeout
            busy.sendall(probe)
            statuses.append(read_response(busy)[0])
            time.sleep(KEEP_ALIVE / 2)
        busy.sendall(probe)
        statuses.append(read_response(busy)[0])
        watcher.join()

    assert statuses == [200] * 5
    assert result["idle"] is not None
    assert KEEP_ALIVE - 1 < result["idle"] < KEEP_ALIVE + 2
