"""The GraphQL types mapped from the domain: phone numbers masked when the setting says so."""

from __future__ import annotations

from tests.conftest import GatewayFactory
from tests.graphql.refusals import SESSION_ARGS, VARIABLES


def test_phone_numbers_are_masked_in_graphql_only(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    masking = gateway_factory(mask_phone_numbers="graphql")
    participants = "participants { phoneNumber proxyPhoneNumber }"
    query = f"{VARIABLES} {{ proxySession({SESSION_ARGS}) {{ {participants} }} }}"

    body = masking.graphql(query, {"vc": seeded[0], "ps": seeded[1]}).json()
    rest = masking.get_session(*seeded).json()

    assert body["data"]["proxySession"]["participants"] == [
        {"phoneNumber": "+*******0100", "proxyPhoneNumber": "+*******0199"},
        {"phoneNumber": "+*******0101", "proxyPhoneNumber": "+*******0199"},
    ]
    assert rest["ProxySession"]["Participants"][0]["PhoneNumber"] == "+12065550100"


def test_phone_numbers_are_masked_in_graphql_when_masking_all(
    gateway_factory: GatewayFactory, seeded: tuple[str, str]
) -> None:
    masking = gateway_factory(mask_phone_numbers="all")
    query = f"{VARIABLES} {{ proxySession({SESSION_ARGS}) {{ participants {{ phoneNumber }} }} }}"

    body = masking.graphql(query, {"vc": seeded[0], "ps": seeded[1]}).json()

    assert body["data"]["proxySession"]["participants"][0] == {"phoneNumber": "+*******0100"}
