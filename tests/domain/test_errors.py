"""Every row of the contract's error table, through both doors, caused at the wire."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import NAME_QUERY, GatewayFactory
from tests.support.servers import Emulator, Gateway, free_port, start_gateway


@dataclass(frozen=True)
class Row:
    """One row of the error table: how to cause it and what callers must see."""

    fault: dict[str, Any] | None
    status: int
    code: str
    upstream_code: str | None = None
    retry_after: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


ROWS = {
    "BadRequestException": Row(
        {"error": "BadRequestException"}, 400, "BAD_USER_INPUT", "BadRequestException"
    ),
    "NotFoundException": Row(None, 404, "NOT_FOUND", "NotFoundException"),
    "ForbiddenException": Row(
        {"error": "ForbiddenException"}, 403, "FORBIDDEN", "ForbiddenException"
    ),
    "UnauthorizedClientException": Row(
        {"error": "UnauthorizedClientException"},
        502,
        "UPSTREAM_UNAUTHORIZED",
        "UnauthorizedClientException",
    ),
    "ThrottledClientException": Row(
        {"error": "ThrottledClientException"}, 429, "THROTTLED", "ThrottledClientException", True
    ),
    "ServiceFailureException": Row(
        {"error": "ServiceFailureException"}, 502, "UPSTREAM_FAILURE", "ServiceFailureException"
    ),
    "ServiceUnavailableException": Row(
        {"error": "ServiceUnavailableException"},
        503,
        "SERVICE_UNAVAILABLE",
        "ServiceUnavailableException",
        True,
    ),
    "deadline": Row(
        {"delay": 3}, 504, "UPSTREAM_TIMEOUT", settings={"upstream_timeout_seconds": 0.5}
    ),
    "reset": Row({"reset": True}, 502, "UPSTREAM_UNAVAILABLE"),
    "malformed": Row({"malformed": True}, 502, "UPSTREAM_UNAVAILABLE"),
    "no ProxySession member": Row(
        {"raw_status": 200, "raw_body": '{"Other": {}}'}, 502, "UPSTREAM_UNAVAILABLE"
    ),
    "unknown AWS error": Row(
        {"error": "SessionArchivedException", "status": 410},
        502,
        "UPSTREAM_ERROR",
        "SessionArchivedException",
    ),
    "end of support": Row(
        {"error": "UnknownOperationException", "status": 404},
        502,
        "UPSTREAM_ERROR",
        "UnknownOperationException",
    ),
}


@pytest.fixture(params=sorted(ROWS), ids=str)
def row(request: pytest.FixtureRequest) -> Row:
    return ROWS[request.param]


def _cause(emulator: Emulator, key: tuple[str, str], row: Row) -> None:
    if row.fault is not None:
        emulator.fault(*key, **row.fault)


def test_rest_renders_the_row_as_a_problem(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str], row: Row
) -> None:
    gateway = gateway_factory(**row.settings)
    key = seeded if row.code != "NOT_FOUND" else (seeded[0], "missing-" + seeded[1])
    _cause(emulator, key, row)

    reply = gateway.get_session(*key, headers={"X-Request-ID": "row-test"})

    assert reply.status_code == row.status
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["status"] == row.status
    assert problem["code"] == row.code
    assert problem.get("upstreamCode") == row.upstream_code
    assert problem["requestId"] == "row-test"
    assert {"type", "title", "detail"} <= problem.keys()
    assert ("retry-after" in reply.headers) is row.retry_after
    if row.retry_after:
        assert int(reply.headers["retry-after"]) >= 1
    assert "Traceback" not in reply.text
    assert "+1206" not in reply.text


def test_graphql_fails_only_the_field_with_the_rows_code(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str], row: Row
) -> None:
    gateway = gateway_factory(**row.settings)
    key = seeded if row.code != "NOT_FOUND" else (seeded[0], "missing-" + seeded[1])
    healthy = (seeded[0], seeded[1] + "-healthy")
    emulator.seed(*healthy, {"Name": "ok"})
    _cause(emulator, key, row)
    query = """
    query Two($vc: ID!, $ps: ID!, $hvc: ID!, $hps: ID!) {
      broken: proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { name }
      healthy: proxySession(voiceConnectorId: $hvc, proxySessionId: $hps) { name }
    }
    """
    variables = {"vc": key[0], "ps": key[1], "hvc": healthy[0], "hps": healthy[1]}

    reply = gateway.graphql(query, variables, headers={"X-Request-ID": "gql-row"})

    assert reply.status_code == 200
    body = reply.json()
    assert body["data"] == {"broken": None, "healthy": {"name": "ok"}}
    [error] = body["errors"]
    assert error["path"] == ["broken"]
    assert error["extensions"]["code"] == row.code
    assert error["extensions"].get("upstreamCode") == row.upstream_code
    assert error["extensions"]["requestId"] == "gql-row"


@pytest.fixture(scope="module")
def unreachable_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway whose AWS endpoint is a loopback port nothing listens on."""
    log = tmp_path_factory.mktemp("unreachable") / "stdout.log"
    gateway = start_gateway(f"http://127.0.0.1:{free_port()}", log)
    yield gateway
    gateway.stop()


def test_unreachable_upstream_is_502_upstream_unavailable(unreachable_gateway: Gateway) -> None:
    reply = unreachable_gateway.get_session("vc", "ps")
    gql = unreachable_gateway.graphql(NAME_QUERY, {"vc": "vc", "ps": "ps"})

    assert reply.status_code == 502
    assert reply.json()["code"] == "UPSTREAM_UNAVAILABLE"
    assert "upstreamCode" not in reply.json()
    assert gql.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert unreachable_gateway.process.poll() is None


def test_value_graphql_cannot_represent_fails_that_field_masked(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(*key, {"ExpiryMinutes": 2**40, "Name": "big"})

    reply = gateway.graphql(
        "query($vc: ID!, $ps: ID!) { s: proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
        " { name expiryMinutes } }",
        {"vc": key[0], "ps": key[1]},
    )

    body = reply.json()
    assert body["data"] == {"s": {"name": "big", "expiryMinutes": None}}
    [error] = body["errors"]
    assert error["path"] == ["s", "expiryMinutes"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["message"] == "Internal server error."
    assert "32-bit" not in reply.text
    assert gateway.get_session(*key).json()["ProxySession"]["ExpiryMinutes"] == 2**40
