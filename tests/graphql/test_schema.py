"""The GraphQL door: the contract's SDL, concurrency, per-field errors, enums, DateTime."""

from __future__ import annotations

import asyncio
import time

import pytest
from graphql import build_schema as build_sdl
from graphql import find_breaking_changes, find_dangerous_changes

from app.graphql.context import Context
from app.graphql.limits import Limits
from app.graphql.schema import build_schema
from app.observability.metrics import Metrics
from app.service.sessions import ProxySessionService
from app.settings import Settings
from app.upstream import Upstream
from tests.conftest import FULL, NAME_QUERY, GatewayFactory, session_with
from tests.support.servers import Emulator, Gateway

CONTRACT_SDL = """
scalar DateTime
enum ProxySessionStatus { OPEN IN_PROGRESS CLOSED }
enum Capability { VOICE SMS }
enum NumberSelectionBehavior { PREFER_STICKY AVOID_STICKY }
enum GeoMatchLevel { COUNTRY AREA_CODE }
type Query {
  proxySession(voiceConnectorId: ID!, proxySessionId: ID!): ProxySession
  node(id: ID!): Node
}
interface Node { id: ID! }
type ProxySession implements Node {
  id: ID!
  voiceConnectorId: ID!
  proxySessionId: ID!
  name: String
  status: ProxySessionStatus
  expiryMinutes: Int
  capabilities: [Capability!]
  createdTimestamp: DateTime
  updatedTimestamp: DateTime
  endedTimestamp: DateTime
  participants: [Participant!]
  numberSelectionBehavior: NumberSelectionBehavior
  geoMatchLevel: GeoMatchLevel
  geoMatchParams: GeoMatchParams
}
type Participant { phoneNumber: String, proxyPhoneNumber: String }
type GeoMatchParams { country: String!, areaCode: String! }
"""


def test_schema_is_exactly_the_contracts_sdl() -> None:
    ours = build_schema()._schema
    contract = build_sdl(CONTRACT_SDL)

    assert find_breaking_changes(contract, ours) == []
    assert find_breaking_changes(ours, contract) == []
    assert find_dangerous_changes(contract, ours) == []
    assert find_dangerous_changes(ours, contract) == []


def test_full_query_maps_every_member(gateway: Gateway, seeded: tuple[str, str]) -> None:
    reply = gateway.graphql(FULL, {"vc": seeded[0], "ps": seeded[1]})

    assert reply.status_code == 200
    assert reply.json() == {
        "data": {
            "proxySession": {
                "voiceConnectorId": seeded[0],
                "proxySessionId": seeded[1],
                "name": "order-1234",
                "status": "OPEN",
                "expiryMinutes": 60,
                "capabilities": ["VOICE", "SMS"],
                "createdTimestamp": "2026-11-29T10:00:00Z",
                "updatedTimestamp": "2026-11-29T10:05:00.250Z",
                "endedTimestamp": None,
                "participants": [
                    {"phoneNumber": "+12065550100", "proxyPhoneNumber": "+12065550199"},
                    {"phoneNumber": "+12065550101", "proxyPhoneNumber": "+12065550199"},
                ],
                "numberSelectionBehavior": "PREFER_STICKY",
                "geoMatchLevel": "AREA_CODE",
                "geoMatchParams": {"country": "US", "areaCode": "206"},
            }
        }
    }


@pytest.mark.parametrize(
    ("members", "field", "value"),
    [
        ({"Status": "InProgress"}, "status", "IN_PROGRESS"),
        ({"Status": "Closed"}, "status", "CLOSED"),
        ({"NumberSelectionBehavior": "AvoidSticky"}, "numberSelectionBehavior", "AVOID_STICKY"),
        ({"GeoMatchLevel": "Country"}, "geoMatchLevel", "COUNTRY"),
        ({"Capabilities": ["SMS"]}, "capabilities", ["SMS"]),
    ],
)
def test_enum_values_are_upper_case(
    gateway: Gateway,
    emulator: Emulator,
    key: tuple[str, str],
    members: dict[str, object],
    field: str,
    value: object,
) -> None:
    emulator.seed(*key, session_with(**members))

    reply = gateway.graphql(FULL, {"vc": key[0], "ps": key[1]})

    assert reply.json()["data"]["proxySession"][field] == value


def test_unknown_enum_values_null_only_their_field(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(
        *key,
        session_with(
            Status="Archived",
            Capabilities=["Voice", "Video"],
            GeoMatchLevel="Planet",
            NumberSelectionBehavior="Random",
        ),
    )

    body = gateway.graphql(FULL, {"vc": key[0], "ps": key[1]}).json()

    assert "errors" not in body
    session = body["data"]["proxySession"]
    assert session["status"] is None
    assert session["capabilities"] is None
    assert session["geoMatchLevel"] is None
    assert session["numberSelectionBehavior"] is None
    assert session["name"] == "order-1234"


def test_absent_members_are_null_and_ids_filled(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(*key, {})

    session = gateway.graphql(FULL, {"vc": key[0], "ps": key[1]}).json()["data"]["proxySession"]

    assert session["voiceConnectorId"] == key[0]
    assert session["proxySessionId"] == key[1]
    assert {k for k, v in session.items() if v is not None} == {
        "voiceConnectorId",
        "proxySessionId",
    }


def test_aliases_resolve_concurrently(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    keys = [(key[0], f"{key[1]}-{i}") for i in range(4)]
    for k in keys:
        emulator.seed(*k, session_with())
        emulator.fault(*k, delay=0.8, times=1)
    fields = " ".join(
        f'a{i}: proxySession(voiceConnectorId: "{k[0]}", proxySessionId: "{k[1]}") {{ name }}'
        for i, k in enumerate(keys)
    )

    started = time.monotonic()
    body = gateway.graphql(f"{{ {fields} }}").json()
    elapsed = time.monotonic() - started

    assert body["data"] == {f"a{i}": {"name": "order-1234"} for i in range(4)}
    assert elapsed < 2.4  # serially it would take at least 3.2 s


def test_one_key_is_looked_up_once_per_request(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    fields = " ".join(
        f"a{i}: proxySession(voiceConnectorId: $vc, proxySessionId: $ps) {{ name }}"
        for i in range(5)
    )
    query = f"query Same($vc: ID!, $ps: ID!) {{ {fields} }}"
    before = gateway.metric("gateway_cache_results_total")

    body = gateway.graphql(
        query, {"vc": seeded[0], "ps": seeded[1]}, headers={"Cache-Control": "no-cache"}
    ).json()

    assert body["data"] == {f"a{i}": {"name": "order-1234"} for i in range(5)}
    assert gateway.metric("gateway_cache_results_total") - before == 1
    assert emulator.calls(*seeded) == 1


def test_no_cache_header_revalidates_graphql_too(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    query = NAME_QUERY
    variables = {"vc": seeded[0], "ps": seeded[1]}
    gateway.graphql(query, variables)
    emulator.seed(*seeded, session_with(Name="renamed"))

    cached = gateway.graphql(query, variables).json()
    fresh = gateway.graphql(query, variables, headers={"Cache-Control": "no-cache"}).json()

    assert cached["data"]["proxySession"]["name"] == "order-1234"
    assert fresh["data"]["proxySession"]["name"] == "renamed"


def test_bad_ids_fail_their_field_without_an_upstream_call(
    gateway: Gateway, emulator: Emulator
) -> None:
    before = emulator.total_calls()

    body = gateway.graphql(
        NAME_QUERY,
        {"vc": " \t", "ps": "x" * 129},
    ).json()

    assert body["data"] == {"proxySession": None}
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert emulator.total_calls() == before


@pytest.mark.parametrize(("vc", "ps"), [(".", "ps"), ("vc", "..")])
def test_dot_segment_ids_fail_their_field_without_an_upstream_call(
    gateway: Gateway, emulator: Emulator, vc: str, ps: str
) -> None:
    before = emulator.total_calls()

    body = gateway.graphql(NAME_QUERY, {"vc": vc, "ps": ps}).json()

    assert body["data"] == {"proxySession": None}
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert emulator.total_calls() == before


def test_invalid_document_is_a_readable_validation_error(gateway: Gateway) -> None:
    body = gateway.graphql('{ proxySession(voiceConnectorId: "a") { nosuchfield } }').json()

    assert body["data"] is None
    codes = {error["extensions"]["code"] for error in body["errors"]}
    assert codes == {"GRAPHQL_VALIDATION_FAILED"}
    assert any("nosuchfield" in error["message"] for error in body["errors"])
    assert not any("Did you mean" in error["message"] for error in body["errors"])


def test_introspection_and_graphiql_are_off_by_default(gateway: Gateway) -> None:
    body = gateway.graphql("{ __schema { queryType { name } } }").json()
    page = gateway.client.get("/graphql", headers={"Accept": "text/html"})

    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert "Introspection is disabled" in body["errors"][0]["message"]
    assert page.status_code == 405


def test_introspection_and_graphiql_can_be_turned_on(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(graphql_introspection=True, graphiql=True)

    body = gateway.graphql("{ __schema { queryType { name } } }").json()
    page = gateway.client.get("/graphql", headers={"Accept": "text/html"})

    assert body["data"] == {"__schema": {"queryType": {"name": "Query"}}}
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def test_queries_are_not_served_over_get(gateway: Gateway, seeded: tuple[str, str]) -> None:
    vc, ps = seeded
    query = f'{{ proxySession(voiceConnectorId: "{vc}", proxySessionId: "{ps}") {{ name }} }}'

    reply = gateway.client.get("/graphql", params={"query": query})

    assert reply.status_code == 405
    assert reply.headers["allow"] == "POST"
    assert reply.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    assert "order-1234" not in reply.text


def test_a_bad_variable_value_is_the_callers_error_not_masked(
    gateway: Gateway, emulator: Emulator
) -> None:
    before, logged = emulator.total_calls(), len(gateway.settled_log_lines())

    body = gateway.graphql(NAME_QUERY, {"vc": {"not": "an id"}, "ps": "x"}).json()

    assert body["data"] is None
    error = body["errors"][0]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("Variable '$vc' has invalid value")
    assert emulator.total_calls() == before
    assert not any("unexpected error" in line for line in gateway.settled_log_lines()[logged:])


@pytest.mark.usefixtures("aws_environment")
def test_schema_execute_through_the_real_client(seeded: tuple[str, str]) -> None:
    async def run() -> dict[str, object] | None:
        settings = Settings()
        metrics = Metrics()
        async with Upstream(settings, metrics) as upstream:
            service = ProxySessionService(settings, upstream, metrics)
            result = await build_schema().execute(
                FULL,
                variable_values={"vc": seeded[0], "ps": seeded[1]},
                context_value=Context(service, metrics, revalidate=False),
            )
            assert result.errors is None
            return result.data

    data = asyncio.run(run())

    assert data is not None
    assert data["proxySession"]["status"] == "OPEN"  # type: ignore[index]


def test_schema_execute_refuses_a_document_over_a_limit() -> None:
    schema = build_schema(limits=Limits(max_depth=1))

    result = asyncio.run(
        schema.execute("{ proxySession(voiceConnectorId: 1, proxySessionId: 2) { name } }")
    )

    assert result.errors is not None
    assert [error.message for error in result.errors] == ["Query depth 2 exceeds the maximum of 1."]


def test_unparsable_document_is_a_parse_error(gateway: Gateway) -> None:
    body = gateway.graphql("{ proxySession(").json()

    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    assert "Syntax Error" in body["errors"][0]["message"]


def test_a_remembered_not_found_says_what_aws_said(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    variables = {"vc": key[0], "ps": key[1]}

    answers = [gateway.graphql(NAME_QUERY, variables).json() for _ in range(2)]

    for answer in answers:
        assert answer["data"] == {"proxySession": None}
        extensions = answer["errors"][0]["extensions"]
        assert (extensions["code"], extensions["upstreamCode"]) == (
            "NOT_FOUND",
            "NotFoundException",
        )
    assert emulator.calls(*key) == 1
