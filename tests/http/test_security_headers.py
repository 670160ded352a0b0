"""The security headers every response carries, and CORS on `/graphql` only when configured."""

from __future__ import annotations

from tests.conftest import NAME_QUERY, GatewayFactory
from tests.support.servers import Gateway


def test_security_headers_on_every_response(gateway: Gateway, seeded: tuple[str, str]) -> None:
    for reply in (
        gateway.get_session(*seeded),
        gateway.get_session("vc", " "),
        gateway.client.get("/healthz"),
        gateway.client.get("/nothing"),
        gateway.graphql(NAME_QUERY, {"vc": seeded[0], "ps": seeded[1]}),
    ):
        assert reply.headers["x-content-type-options"] == "nosniff"
        assert reply.headers["x-frame-options"] == "DENY"
        assert reply.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in reply.headers["content-security-policy"]


def test_cors_allows_listed_origins_on_graphql_only(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(cors_origins="https://app.example.test,https://admin.example.test")
    preflight = {
        "Origin": "https://app.example.test",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization",
    }

    allowed = gateway.client.options("/graphql", headers=preflight)
    refused = gateway.client.options(
        "/graphql", headers={**preflight, "Origin": "https://evil.example.test"}
    )
    actual = gateway.graphql(
        NAME_QUERY,
        {"vc": seeded[0], "ps": seeded[1]},
        headers={"Origin": "https://app.example.test"},
    )
    rest = gateway.get_session(*seeded, headers={"Origin": "https://app.example.test"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.test"
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers
    assert actual.headers["access-control-allow-origin"] == "https://app.example.test"
    assert "access-control-allow-origin" not in rest.headers


def test_cors_is_off_by_default(gateway: Gateway) -> None:
    reply = gateway.client.options(
        "/graphql",
        headers={"Origin": "https://app.example.test", "Access-Control-Request-Method": "POST"},
    )

    assert "access-control-allow-origin" not in reply.headers
