"""Relay's Global Object Identification: `ProxySession.id`, `interface Node` and
`Query.node(id:)`, over the wire; ids that do not decode cost no upstream call."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import BadUserInput
from app.domain.model import ID_MAX_LENGTH, validate_key
from app.graphql.node_ids import node_id, session_key
from tests.graphql.refusals import VALIDATION_FAILED, no_upstream_call, refusal
from tests.support.servers import Emulator, Gateway

ID_QUERY = (
    "query Id($vc: ID!, $ps: ID!) { proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
    " { id name } }"
)
NODE_QUERY = (
    "query Node($id: ID!) { node(id: $id) { __typename id ... on ProxySession"
    " { voiceConnectorId proxySessionId status } } }"
)


def test_a_session_is_found_again_by_its_id_through_the_cache(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    vc, ps = seeded
    first = gateway.graphql(ID_QUERY, {"vc": vc, "ps": ps}).json()["data"]["proxySession"]

    node = gateway.graphql(NODE_QUERY, {"id": first["id"]}).json()

    assert first["name"] == "order-1234"
    assert node == {
        "data": {
            "node": {
                "__typename": "ProxySession",
                "id": first["id"],
                "voiceConnectorId": vc,
                "proxySessionId": ps,
                "status": "OPEN",
            }
        }
    }
    assert emulator.calls(vc, ps) == 1  # the node answered from the cache


def test_the_id_is_stable_and_opaque(gateway: Gateway, seeded: tuple[str, str]) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    ids = {
        gateway.graphql(ID_QUERY, variables).json()["data"]["proxySession"]["id"] for _ in range(3)
    }

    assert len(ids) == 1
    [global_id] = ids
    assert seeded[1] not in global_id
    assert global_id == node_id(seeded)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not base64 !",
        base64.urlsafe_b64encode(b"Participant:2:vc:ps").decode(),
        base64.urlsafe_b64encode(b"ProxySession:9:vc:ps").decode(),
        base64.urlsafe_b64encode(b"ProxySession:2:vc:..").decode(),
        base64.urlsafe_b64encode(b"ProxySession:x:vc:ps").decode(),
        "A" * 5000,
    ],
)
def test_an_id_that_does_not_decode_is_bad_user_input(
    gateway: Gateway, emulator: Emulator, bad: str
) -> None:
    with no_upstream_call(emulator):
        reply = gateway.graphql(NODE_QUERY, {"id": bad}).json()

    assert reply["data"] == {"node": None}
    assert reply["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert reply["errors"][0]["path"] == ["node"]


def test_node_fields_count_toward_the_fan_out_limit(gateway: Gateway, emulator: Emulator) -> None:
    document = (
        "query Many($id: ID!) { "
        + " ".join(f"n{i}: node(id: $id) {{ id }}" for i in range(21))
        + " }"
    )

    with no_upstream_call(emulator):
        reply = gateway.graphql(document, {"id": node_id(("vc", "ps"))})

    assert reply.json()["errors"][0]["extensions"]["code"] == VALIDATION_FAILED
    assert refusal(reply) == "Document has 21 proxySession fields; the maximum is 20."


ids = st.text(min_size=1, max_size=ID_MAX_LENGTH).filter(
    lambda s: s.strip() and s not in {".", ".."}
)


@given(vc=ids, ps=ids)
def test_every_valid_key_round_trips(vc: str, ps: str) -> None:
    try:
        key = validate_key(vc, ps)
    except BadUserInput:  # ids the gateway refuses anyway
        return
    assert session_key(node_id(key)) == key
