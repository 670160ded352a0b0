"""The head guard, exact (app.http.framing): every request's head counted as sent, pipelined
requests included, whatever the spacing and however TCP splits it; a chunked body's
trailers counted and never merged; empty lines between requests never answered as one; a
client that does not read its responses not read further. Raw sockets, a real gateway."""

from __future__ import annotations

import time

import orjson
import pytest

from tests.http.wire import (
    closed_within,
    connect,
    read_response,
    read_responses,
    read_until_closed,
)
from tests.support.servers import Gateway

LIMIT = 16384
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"


def _head(size: int, *, spaces: bool = True, method: bytes = b"GET", extra: bytes = b"") -> bytes:
    """A head of exactly `size` bytes to /healthz, made up by an X-Pad header."""
    colon = b": " if spaces else b":"
    start = method + b" /healthz HTTP/1.1\r\nHost" + colon + b"gw\r\n" + extra + b"X-Pad" + colon
    end = b"\r\n\r\n"
    return start + b"p" * (size - len(start) - len(end)) + end


def test_a_pipelined_head_over_the_limit_in_the_same_read_is_431(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(HEALTHZ + _head(60_000))  # one read: the old count restarted within it
        (first, _, _), (second, headers, body) = read_responses(sock, 2)
        closed = closed_within(sock, 3)

    assert (first, second) == (200, 431)
    assert orjson.loads(body)["code"] == "HEADERS_TOO_LARGE"
    assert headers["connection"] == "close"
    assert closed is not None


def test_leading_spaces_of_a_value_count(gateway: Gateway) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Pad:" + b" " * 60_000 + b"v\r\n\r\n"
    with connect(gateway) as sock:
        sock.sendall(head)
        status, _, _ = read_response(sock)

    assert status == 431


@pytest.mark.parametrize("size", [LIMIT, LIMIT + 1])
@pytest.mark.parametrize("pause", [0.0, 0.3])
def test_the_verdict_does_not_depend_on_spacing_or_how_tcp_splits_it(
    gateway: Gateway, size: int, pause: float
) -> None:
    body = b"{}"
    head = _head(size, spaces=False, method=b"POST", extra=b"Content-Length:2\r\n")
    with connect(gateway) as sock:
        sock.sendall(head)
        time.sleep(pause)
        sock.sendall(body)
        status, _, _ = read_response(sock)

    assert (status == 431) == (size > LIMIT)


def test_a_head_split_byte_by_byte_is_counted_the_same(gateway: Gateway) -> None:
    head = _head(LIMIT + 1)
    with connect(gateway) as sock:
        for start in range(0, 40):  # the start a byte at a time, then the rest at once
            sock.sendall(head[start : start + 1])
        sock.sendall(head[40:])
        status, _, _ = read_response(sock)

    assert status == 431


def test_a_few_empty_lines_before_a_request_are_ignored(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"\r\n\r\n" + HEALTHZ)  # RFC 9112 2.2: at least one may be ignored
        status, headers, _ = read_response(sock)

    assert status == 200
    assert "x-request-id" in headers


def test_too_many_empty_lines_get_no_response(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(HEALTHZ)
        read_response(sock)
        sock.sendall(b"\r\n" * 10_000)
        received = read_until_closed(sock, 3)

    assert received == b""  # neither a 431 nor anything else: no request began


def _chunked_graphql(trailers: bytes) -> bytes:
    body = orjson.dumps({"query": "{ __typename }"})
    return (
        b"POST /graphql HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(body)
        + body
        + b"\r\n0\r\n"
        + trailers
        + b"\r\n"
    )


def test_trailers_are_never_merged_into_the_request(gateway: Gateway) -> None:
    trailers = b"X-Request-ID: chosen-by-a-trailer\r\nAccept: text/html\r\n"
    with connect(gateway) as sock:
        sock.sendall(_chunked_graphql(trailers) + HEALTHZ)
        (status, headers, body), (after, _, _) = read_responses(sock, 2)

    assert status == 200
    assert headers["x-request-id"] != "chosen-by-a-trailer"
    assert headers["content-type"].startswith("application/")
    assert orjson.loads(body)["data"] == {"__typename": "Query"}
    assert after == 200  # the request after the trailers was read as one


def test_trailers_count_in_the_head_budget(gateway: Gateway) -> None:
    trailers = b"".join(b"X-T%d: %s\r\n" % (n, b"t" * 100) for n in range(200))  # ~21 KB
    with connect(gateway) as sock:
        sock.sendall(_chunked_graphql(trailers) + HEALTHZ)
        received = read_until_closed(sock, 5)

    assert b"HTTP/1.1 200" not in received.split(b"\r\n\r\n", 1)[-1]  # /healthz never read
    assert received.count(b"HTTP/1.1 ") <= 1


def test_a_client_that_does_not_read_is_not_read_further(gateway: Gateway) -> None:
    with connect(gateway) as warm:  # the first requests' allocations are not the flood's
        warm.sendall(HEALTHZ * 100)
        read_responses(warm, 100)
    before = gateway.rss_kib()
    with connect(gateway) as sock:
        sock.setblocking(False)
        flood = HEALTHZ * 40_000  # 1.4 MB of requests whose responses are never read
        sent = 0
        deadline = time.monotonic() + 5
        while sent < len(flood) and time.monotonic() < deadline:
            try:
                sent += sock.send(flood[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.05)
        time.sleep(1)
        grown = gateway.rss_kib() - before

    assert grown < 20 * 1024, f"grew {grown} KiB"


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\nHost: other\r\n\r\n",
    ],
    ids=["no Host", "two Hosts"],
)
def test_a_request_without_exactly_one_host_is_400(gateway: Gateway, head: bytes) -> None:
    with connect(gateway) as sock:
        sock.sendall(head)
        status, _, _ = read_response(sock)

    assert status == 400


def test_an_http_1_0_request_needs_no_host(gateway: Gateway) -> None:
    with connect(gateway) as sock:
        sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
        status, _, _ = read_response(sock)

    assert status == 200
