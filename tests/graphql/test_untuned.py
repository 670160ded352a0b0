"""`GATEWAY_GRAPHQL_TUNING=off`: strawberry parses and validates every request itself, with
none of the strawberry and graphql-core seams, and the door still serves and refuses."""

from __future__ import annotations

import pytest

from tests.conftest import GatewayFactory
from tests.graphql.test_limits import padded
from tests.support.servers import Emulator, Gateway


@pytest.fixture
def untuned(gateway_factory: GatewayFactory) -> Gateway:
    return gateway_factory(graphql_tuning="false")


def test_a_query_is_served(untuned: Gateway, seeded: tuple[str, str]) -> None:
    reply = untuned.graphql(padded(*seeded, 100))

    assert reply.status_code == 200
    assert reply.json()["data"]["p"] == {"name": "order-1234"}


def test_a_document_past_the_token_limit_is_refused_before_any_call(
    untuned: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    before = emulator.calls(*seeded)
    reply = untuned.graphql(padded(*seeded, 2001))

    [error] = reply.json()["errors"]
    assert "2000 tokens" in error["message"]
    assert error["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert emulator.calls(*seeded) == before


def test_an_invalid_document_is_refused(untuned: Gateway) -> None:
    reply = untuned.graphql("{ proxySession { name } }")

    errors = reply.json()["errors"]
    assert errors
    assert {error["extensions"]["code"] for error in errors} == {"GRAPHQL_VALIDATION_FAILED"}
