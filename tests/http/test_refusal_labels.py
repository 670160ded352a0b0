"""Requests refused at the edge are counted under the route their path would reach."""

from __future__ import annotations

import orjson

from tests.conftest import NAME_QUERY, GatewayFactory
from tests.http.wire import connect, read_response

SESSION_ROUTE = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"
ORIGIN = "https://app.example"


def test_edge_refusals_are_counted_under_their_route_template(
    gateway_factory: GatewayFactory,
) -> None:
    gateway = gateway_factory(
        auth_tokens="s3cret",
        cors_origins=ORIGIN,
        max_body_bytes=1024,
        max_header_bytes=2048,
        body_timeout_seconds=0.5,
    )
    unmatched_before = gateway.metric("gateway_http_requests_total", route="unmatched")
    session = "/v1/voice-connectors/vc-1/proxy-sessions/ps-1"

    unauthenticated = gateway.client.get(session)
    graphql_401 = gateway.graphql(NAME_QUERY, {"vc": "a", "ps": "b"})
    preflight = gateway.client.options(
        "/graphql",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    too_large = gateway.client.post(
        "/graphql",
        content=b"{" + b" " * 2000 + b"}",
        headers={"Content-Type": "application/json", "Authorization": "Bearer s3cret"},
    )
    with connect(gateway) as sock:
        sock.sendall(f"GET {session} HTTP/1.1\r\nHost: gw\r\nX-Pad: {'p' * 4096}\r\n\r\n".encode())
        head_status, _, _ = read_response(sock)
    with connect(gateway) as sock:
        body = orjson.dumps({"query": NAME_QUERY})
        sock.sendall(
            b"POST /graphql HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n{" % len(body)
        )
        slow_status, _, _ = read_response(sock)
    docs_401 = gateway.client.get("/docs")
    gateway.client.get("/no/such/path")  # unmatched, as before

    def count(route: str, method: str, status: str) -> float:
        return gateway.metric(
            "gateway_http_requests_total", route=route, method=method, status=status
        )

    assert unauthenticated.status_code == 401
    assert graphql_401.status_code == 401
    assert preflight.status_code == 200
    assert too_large.status_code == 413
    assert head_status == 431
    assert slow_status == 408
    assert count(SESSION_ROUTE, "GET", "401") >= 1
    assert count("/graphql", "POST", "401") >= 1
    assert count("/graphql", "OPTIONS", "200") >= 1
    assert count("/graphql", "POST", "413") >= 1
    assert count(SESSION_ROUTE, "GET", "431") >= 1
    assert count("/graphql", "POST", "408") >= 1
    assert docs_401.status_code == 401
    assert count("/docs", "GET", "401") >= 1
    unmatched = gateway.metric("gateway_http_requests_total", route="unmatched")
    assert unmatched - unmatched_before == 1
