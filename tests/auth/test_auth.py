"""Bearer tokens: required everywhere but probes and metrics, checked before the cache."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import NAME_QUERY, GatewayFactory
from tests.support.servers import Emulator, Gateway

TOKENS = "tok-alpha-0123456789,tok-beta-9876543210"


@pytest.fixture
def secured(gateway_factory: GatewayFactory) -> Gateway:
    return gateway_factory(auth_tokens=TOKENS)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": "Basic dG9rLWFscGhhLTAxMjM0NTY3ODk="},
        {"Authorization": "Bearer"},
        {"Authorization": "tok-alpha-0123456789"},
    ],
    ids=["none", "wrong", "basic", "empty", "no-scheme"],
)
def test_rest_without_a_valid_token_is_401(
    secured: Gateway, emulator: Emulator, seeded: tuple[str, str], headers: dict[str, str]
) -> None:
    reply = secured.get_session(*seeded, headers=headers)

    assert reply.status_code == 401
    # Static tokens only: the plain challenge, no RFC 6750 error code (that comes with JWTs).
    assert reply.headers["www-authenticate"] == 'Bearer realm="proxy-session-gateway"'
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.json()["code"] == "UNAUTHENTICATED"
    assert reply.json()["requestId"] == reply.headers["x-request-id"]
    assert emulator.calls(*seeded) == 0


def test_graphql_without_a_token_is_401_unauthenticated(
    secured: Gateway, seeded: tuple[str, str]
) -> None:
    reply = secured.graphql(NAME_QUERY, {"vc": seeded[0], "ps": seeded[1]})

    assert reply.status_code == 401
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert reply.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert reply.json()["data"] is None


@pytest.mark.parametrize("token", TOKENS.split(","))
def test_each_configured_token_is_accepted(
    secured: Gateway, seeded: tuple[str, str], token: str
) -> None:
    assert secured.get_session(*seeded, headers=_bearer(token)).status_code == 200
    gql = secured.graphql(NAME_QUERY, {"vc": seeded[0], "ps": seeded[1]}, headers=_bearer(token))
    assert gql.json()["data"]["proxySession"]["name"] == "order-1234"


def test_cached_entries_never_answer_an_unauthenticated_caller(
    secured: Gateway, seeded: tuple[str, str]
) -> None:
    assert secured.get_session(*seeded, headers=_bearer("tok-alpha-0123456789")).status_code == 200

    reply = secured.get_session(*seeded)

    assert reply.status_code == 401
    assert "order-1234" not in reply.text


def test_a_websocket_handshake_needs_a_token_too(secured: Gateway) -> None:
    async def handshake() -> int:
        url = secured.url.replace("http://", "ws://") + "/graphql"
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, protocols=["graphql-transport-ws"]):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert asyncio.run(handshake()) == 403


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open(secured: Gateway, path: str) -> None:
    assert secured.client.get(path).status_code == 200


def test_docs_need_a_token_too(secured: Gateway) -> None:
    assert secured.client.get("/openapi.json").status_code == 401
    assert (
        secured.client.get("/openapi.json", headers=_bearer("tok-beta-9876543210")).status_code
        == 200
    )


def test_tokens_file_is_read_one_per_line(
    gateway_factory: GatewayFactory, seeded: tuple[str, str], tmp_root: Path
) -> None:
    tokens = tmp_root / "tokens"
    tokens.write_text("\nfile-token-aaaaaaaa\n  file-token-bbbbbbbb  \n\n")
    gateway = gateway_factory(auth_tokens_file=tokens)

    assert gateway.get_session(*seeded).status_code == 401
    assert gateway.get_session(*seeded, headers=_bearer("file-token-bbbbbbbb")).status_code == 200


def test_refusals_are_counted_by_reason(secured: Gateway, seeded: tuple[str, str]) -> None:
    def count(reason: str) -> float:
        return secured.metric("gateway_auth_failures_total", reason=reason)

    missing, invalid = count("missing"), count("invalid_token")
    secured.get_session(*seeded)
    secured.get_session(*seeded, headers=_bearer("attacker-guess-456"))

    assert (count("missing"), count("invalid_token")) == (missing + 1, invalid + 1)


def test_tokens_never_reach_the_logs(secured: Gateway, seeded: tuple[str, str]) -> None:
    secured.get_session(*seeded, headers=_bearer("tok-alpha-0123456789"))
    secured.get_session(*seeded, headers=_bearer("attacker-guess-123"))

    text = "\n".join(secured.settled_log_lines())

    assert "tok-alpha" not in text
    assert "tok-beta" not in text
    assert "attacker-guess" not in text
    assert "authentication is off" not in text


def test_auth_off_logs_a_warning_at_start(gateway: Gateway) -> None:
    warnings = [r for r in gateway.log_records() if r["level"] == "WARNING"]

    assert any("authentication is off" in r["message"] for r in warnings)
