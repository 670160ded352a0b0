"""`application/graphql-response+json` against legacy `application/json`, negotiated from
`Accept` (GraphQL over HTTP), over the wire."""

from __future__ import annotations

import pytest

from app.graphql.media import prefers_graphql_response
from tests.conftest import NAME_QUERY
from tests.support.servers import Emulator, Gateway

GRAPHQL_RESPONSE = "application/graphql-response+json"
APOLLO = "application/graphql-response+json,application/json;q=0.9"


@pytest.mark.parametrize(
    ("accept", "prefers"),
    [
        (None, False),
        ("*/*", False),
        ("application/json", False),
        (GRAPHQL_RESPONSE, True),
        (APOLLO, True),
        ("application/json, application/graphql-response+json", True),  # a tie
        ("application/json, application/graphql-response+json;q=0.5", False),
        ("application/graphql-response+json;q=0", False),
        ("Application/GraphQL-Response+JSON; charset=utf-8", True),
        ("text/html, application/graphql-response+json;q=bad", False),
    ],
)
def test_the_preference_follows_accept(accept: str | None, prefers: bool) -> None:
    assert prefers_graphql_response(accept) is prefers


def test_a_result_with_data_is_200_in_either_type(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    for _ in range(2):  # the full path, then the response cache's fast path
        modern = gateway.graphql(NAME_QUERY, variables, headers={"Accept": APOLLO})
        legacy = gateway.graphql(NAME_QUERY, variables, headers={"Accept": "application/json"})

        assert modern.status_code == legacy.status_code == 200
        assert modern.headers["content-type"] == f"{GRAPHQL_RESPONSE}; charset=utf-8"
        assert legacy.headers["content-type"] == "application/json"
        assert modern.json() == legacy.json() == {"data": {"proxySession": {"name": "order-1234"}}}


def test_a_field_error_keeps_200_and_its_data(gateway: Gateway, key: tuple[str, str]) -> None:
    reply = gateway.graphql(NAME_QUERY, {"vc": key[0], "ps": key[1]}, headers={"Accept": APOLLO})

    assert reply.status_code == 200
    assert reply.json()["data"] == {"proxySession": None}
    assert reply.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    ("document", "variables", "code"),
    [
        ("{ proxySession(", None, "GRAPHQL_PARSE_FAILED"),
        ("{ nothing }", None, "GRAPHQL_VALIDATION_FAILED"),
        (NAME_QUERY, {"vc": 1, "ps": None}, "BAD_USER_INPUT"),
    ],
)
def test_a_request_error_is_400_without_data_when_preferred_and_200_for_legacy(
    gateway: Gateway,
    emulator: Emulator,
    document: str,
    variables: dict[str, object] | None,
    code: str,
) -> None:
    modern = gateway.graphql(document, variables, headers={"Accept": GRAPHQL_RESPONSE})
    legacy = gateway.graphql(document, variables)

    assert modern.status_code == 400
    assert "data" not in modern.json()
    assert modern.json()["errors"][0]["extensions"]["code"] == code
    assert legacy.status_code == 200
    assert legacy.json()["data"] is None
    assert legacy.json()["errors"][0]["extensions"]["code"] == code
