"""A connection's requests as HTTP says they must be served: `HEAD` on every GET route,
nothing more run for a client that has gone, and a client that leaves with answers
backed up logged as what it is (no error). Raw sockets, a real gateway."""

from __future__ import annotations

import socket
import time
from urllib.parse import quote

import pytest

from tests.conftest import SAMPLE_SESSION
from tests.http.wire import connect, read_response
from tests.support.servers import Emulator, Gateway


def _session_path(key: tuple[str, str]) -> bytes:
    vc, ps = key
    return f"/v1/voice-connectors/{quote(vc)}/proxy-sessions/{quote(ps)}".encode()


def _request(method: bytes, path: bytes) -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: gw\r\n\r\n"


def _until_second_answer(sock: socket.socket) -> bytes:
    """What the gateway sends up to the end of the second answer (a `/healthz` body)."""
    data = b""
    while data.count(b"\r\n\r\n") < 2 or not data.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def _head_response(sock_data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, rest = sock_data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ")[1]), headers, rest


@pytest.mark.parametrize("path", [b"/healthz", b"/readyz", b"/metrics", b"/openapi.json"])
def test_head_on_a_get_route_is_its_get_without_the_body(gateway: Gateway, path: bytes) -> None:
    with connect(gateway) as sock:
        sock.sendall(_request(b"GET", path))
        get_status, get_headers, _ = read_response(sock)
        sock.sendall(_request(b"HEAD", path) + b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        data = _until_second_answer(sock)

    status, headers, rest = _head_response(data)
    assert (status, get_status) == (200, 200)
    assert headers["content-type"] == get_headers["content-type"]
    if path != b"/metrics":  # the metrics move between the two requests
        assert headers["content-length"] == get_headers["content-length"]
    assert rest.startswith(b"HTTP/1.1 200"), "the HEAD answer carried a body"


@pytest.mark.usefixtures("seeded")
def test_head_on_a_session_has_the_get_s_validators(gateway: Gateway, key: tuple[str, str]) -> None:
    path = _session_path(key)
    with connect(gateway) as sock:
        sock.sendall(_request(b"GET", path))
        _, get_headers, body = read_response(sock)
        sock.sendall(_request(b"HEAD", path) + _request(b"GET", b"/healthz"))
        data = _until_second_answer(sock)

    status, headers, rest = _head_response(data)
    assert status == 200
    assert headers["etag"] == get_headers["etag"]
    assert headers["content-length"] == str(len(body))
    assert rest.startswith(b"HTTP/1.1 200")


def test_head_is_logged_and_counted_as_head(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: gw\r\nX-Request-ID: head-logged\r\n\r\n")
        status, _, _ = read_response(sock)

    [line] = gateway.wait_for_records(lambda r: r.get("request_id") == "head-logged")
    assert status == 200
    assert (line["method"], line["route"], line["status"]) == ("HEAD", "/healthz", 200)


def test_queued_requests_of_a_client_that_has_gone_are_never_run(
    emulator: Emulator, gateway: Gateway
) -> None:
    slow, queued = ("vc-gone", f"ps-slow-{time.time_ns()}"), ("vc-gone", f"ps-q-{time.time_ns()}")
    emulator.seed(*slow, SAMPLE_SESSION)
    emulator.seed(*queued, SAMPLE_SESSION)
    emulator.fault(*slow, delay=1.5, times=1)
    with connect(gateway) as sock:
        both = _request(b"GET", _session_path(slow)) + _request(b"GET", _session_path(queued))
        sock.sendall(both)
        time.sleep(0.5)
    time.sleep(2)

    assert emulator.calls(*slow) == 1
    assert emulator.calls(*queued) == 0


@pytest.mark.parametrize("target", ["session", "openapi"])
def test_a_client_leaving_with_answers_backed_up_logs_no_error(
    gateway: Gateway, seeded: tuple[str, str], target: str
) -> None:
    path = _session_path(seeded) if target == "session" else b"/openapi.json"
    gateway.get_session(*seeded)  # a hit from here on
    request = b"GET " + path + b" HTTP/1.1\r\nHost: gw\r\nX-Request-ID: backed-up\r\n\r\n"
    logged_before = len(gateway.settled_log_lines())  # the shared gateway's earlier lines
    with connect(gateway) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(request * 400)
        time.sleep(1)  # the answers fill the buffers: the gateway waits to write
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    time.sleep(0.5)

    lines = gateway.settled_log_lines()[logged_before:]
    errors = [line for line in lines if '"level":"ERROR"' in line]
    assert errors == []
