"""GraphQL over HTTP: one JSON object POSTed as application/json, anything else refused
with a GraphQL body and no upstream call."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.conftest import NAME_QUERY
from tests.graphql.refusals import VALIDATION_FAILED, no_upstream_call, refused_total
from tests.support.servers import Emulator, Gateway


def test_a_batch_is_refused(gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]) -> None:
    operation = {"query": NAME_QUERY, "variables": {"vc": seeded[0], "ps": seeded[1]}}
    before = refused_total(gateway, "batching")

    with no_upstream_call(emulator):
        reply = gateway.client.post("/graphql", json=[operation, operation])

    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["errors"][0]
    assert error["extensions"]["code"] == VALIDATION_FAILED
    assert "Batched requests are not supported" in error["message"]
    assert refused_total(gateway, "batching") == before + 1


def test_a_query_over_get_is_405(
    gateway: Gateway, introspective: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    vc, ps = seeded
    query = f'{{ proxySession(voiceConnectorId: "{vc}", proxySessionId: "{ps}") {{ name }} }}'

    with no_upstream_call(emulator):
        replies = [
            g.client.get("/graphql", params={"query": query}) for g in (gateway, introspective)
        ]

    for reply in replies:
        assert reply.status_code == 405
        assert reply.headers["allow"] == "POST"
        assert reply.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
        assert "order-1234" not in reply.text


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_other_methods_are_405(gateway: Gateway, method: str) -> None:
    reply = gateway.client.request(method, "/graphql", json={"query": "{ __typename }"})

    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST"
    assert reply.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": {"query": NAME_QUERY}},
        {"files": {"operations": ("operations", b'{"query": "{ __typename }"}')}},
        {"content": b'{"query": "{ __typename }"}', "headers": {"content-type": "text/plain"}},
        {"content": b'{"query": "{ __typename }"}'},
    ],
    ids=["form", "multipart", "text-plain", "no-content-type"],
)
def test_non_json_posts_are_415(
    gateway: Gateway, emulator: Emulator, request_kwargs: dict[str, Any]
) -> None:
    with no_upstream_call(emulator):
        reply = gateway.client.post("/graphql", **request_kwargs)

    assert reply.status_code == 415
    assert reply.headers["content-type"] == "application/json"
    assert reply.json()["errors"][0]["extensions"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON"])
def test_json_media_type_parameters_and_case_are_fine(gateway: Gateway, content_type: str) -> None:
    reply = gateway.client.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"content-type": content_type}
    )

    assert reply.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"query": ', "Unable to parse request body as JSON"),
        (b"\xff\xfe", "Unable to parse request body as JSON"),
        (b'"{ __typename }"', "The request body must be a JSON object."),
        (b"null", "The request body must be a JSON object."),
        (b"{}", "No GraphQL query found in the request"),
        (b'{"query": 1}', "The GraphQL operation's `query` must be a string or null, if provided."),
        (b'{"query": "{ __typename }", "variables": []}', "`variables` must be an object"),
        (
            b'{"query": "{ __typename }", "operationName": "Nope"}',
            'Unknown operation named "Nope".',
        ),
    ],
)
def test_malformed_bodies_are_400_graphql_errors(
    gateway: Gateway, body: bytes, message: str
) -> None:
    reply = gateway.client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )

    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"
    error = reply.json()["errors"][0]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert message in error["message"]


def test_graphiql_is_only_a_browser_page_when_turned_on(introspective: Gateway) -> None:
    page = introspective.client.get("/graphql", headers={"Accept": "text/html"})
    api = introspective.client.get("/graphql", headers={"Accept": "application/json"})

    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
    assert api.status_code == 405


def test_websockets_are_not_served(gateway: Gateway) -> None:
    url = gateway.url.replace("http://", "ws://") + "/graphql"

    with pytest.raises(InvalidStatus) as refused:
        connect(url, subprotocols=[Subprotocol("graphql-transport-ws")], open_timeout=5).close()

    assert refused.value.response.status_code == 403
