"""The body timeout: a body must arrive whole within GATEWAY_BODY_TIMEOUT_SECONDS, and a
request waiting for its body holds no in-flight slot."""

from __future__ import annotations

import time

import orjson

from tests.conftest import NAME_QUERY, GatewayFactory
from tests.http.wire import closed_within, connect, read_response


def _graphql_post(seeded: tuple[str, str]) -> tuple[bytes, bytes]:
    body = orjson.dumps({"query": NAME_QUERY, "variables": {"vc": seeded[0], "ps": seeded[1]}})
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    return head, body


def test_a_body_too_slow_to_arrive_is_408_and_the_connection_closed(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(body_timeout_seconds=1)
    head, body = _graphql_post(seeded)
    with connect(gateway) as sock:
        started = time.monotonic()
        sock.sendall(head + body[:5])

        status, headers, answer = read_response(sock)
        elapsed = time.monotonic() - started
        closed = closed_within(sock, 2)

    assert status == 408
    assert 0.9 < elapsed < 3
    assert headers["connection"] == "close"
    assert headers["x-request-id"]
    assert orjson.loads(answer)["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert closed is not None
    assert gateway.metric("gateway_shed_requests_total", reason="body_timeout") >= 1


def test_a_body_sent_in_pieces_within_the_timeout_is_served(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(body_timeout_seconds=1)
    head, body = _graphql_post(seeded)
    with connect(gateway) as sock:
        sock.sendall(head + body[:5])
        time.sleep(0.3)
        sock.sendall(body[5:20])
        time.sleep(0.3)
        sock.sendall(body[20:])

        status, _, answer = read_response(sock)

    assert status == 200
    assert orjson.loads(answer)["data"]["proxySession"]["name"] == "order-1234"


def test_slow_bodies_hold_no_inflight_slot(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(max_inflight=4, body_timeout_seconds=5)
    assert gateway.get_session(*seeded).status_code == 200  # now cached
    head, body = _graphql_post(seeded)
    slow = [connect(gateway) for _ in range(24)]
    try:
        for sock in slow:
            sock.sendall(head + body[:1])
        time.sleep(0.5)

        hits = [gateway.get_session(*seeded) for _ in range(10)]
        graphql = gateway.graphql(NAME_QUERY, {"vc": seeded[0], "ps": seeded[1]})
    finally:
        for sock in slow:
            sock.close()

    assert [hit.status_code for hit in hits] == [200] * 10
    assert all("hit" in hit.headers["cache-status"] for hit in hits)
    assert graphql.status_code == 200
