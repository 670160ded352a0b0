"""The GraphQL response cache: repeated queries answered fast, never staler than REST."""

from __future__ import annotations

import asyncio

import pytest

from app.graphql.response_cache import ResponseCache
from app.observability.metrics import Metrics
from app.service import Lookup, ProxySessionService
from app.settings import Settings
from app.upstream import Upstream
from tests.conftest import FULL, NAME_QUERY, GatewayFactory, session_with
from tests.support.clock import Clock
from tests.support.servers import Emulator, Gateway


def _cache_of(gateway: Gateway, request_id: str) -> str | None:
    [record] = gateway.wait_for_records(lambda r: r.get("request_id") == request_id)
    cache: str | None = record["cache"]
    return cache


def test_a_repeated_query_is_answered_from_the_cache_with_the_same_bytes(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}

    first = gateway.graphql(FULL, variables, headers={"X-Request-ID": "gql-first"})
    second = gateway.graphql(FULL, variables, headers={"X-Request-ID": "gql-second"})

    assert first.content == second.content
    assert "errors" not in second.json()
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["x-request-id"] == "gql-second"
    assert _cache_of(gateway, "gql-first") == "miss"
    assert _cache_of(gateway, "gql-second") == "hit"


def test_a_refreshed_session_retires_the_cached_response(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    gateway.graphql(NAME_QUERY, variables)
    gateway.graphql(NAME_QUERY, variables)
    emulator.seed(*seeded, session_with(Name="renamed"))

    gateway.get_session(*seeded, headers={"Cache-Control": "no-cache"})  # refreshes the entity
    after = gateway.graphql(NAME_QUERY, variables).json()

    assert after["data"]["proxySession"]["name"] == "renamed"


@pytest.mark.usefixtures("aws_environment")
def test_a_response_retires_when_its_session_expires(seeded: tuple[str, str]) -> None:
    async def scenario() -> list[bytes | None]:
        settings = Settings(cache_ttl_seconds=30)
        metrics = Metrics()
        async with Upstream(settings, metrics) as upstream:
            clock = Clock()
            service = ProxySessionService(settings, upstream, metrics, clock)
            responses = ResponseCache()
            lookup = await service.lookup(seeded)
            assert isinstance(lookup, Lookup)
            responses.put("doc", b"body", ((seeded, lookup.record),))
            fresh = responses.get("doc", service)
            clock.now += 29.9
            still = responses.get("doc", service)
            clock.now += 0.2
            expired = responses.get("doc", service)
            return [None if entry is None else entry.body for entry in (fresh, still, expired)]

    assert asyncio.run(scenario()) == [b"body", b"body", None]


def test_responses_with_errors_are_never_cached(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    emulator.fault(*seeded, error="ServiceFailureException", times=3)

    failed = gateway.graphql(NAME_QUERY, variables).json()
    recovered = gateway.graphql(NAME_QUERY, variables).json()

    assert failed["errors"][0]["extensions"]["code"] == "UPSTREAM_FAILURE"
    assert recovered == {"data": {"proxySession": {"name": "order-1234"}}}


def test_variables_are_part_of_the_key(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    one, two = (key[0], key[1] + "-1"), (key[0], key[1] + "-2")
    emulator.seed(*one, session_with(Name="one"))
    emulator.seed(*two, session_with(Name="two"))

    answers = [
        gateway.graphql(NAME_QUERY, {"vc": k[0], "ps": k[1]}).json()["data"]["proxySession"]["name"]
        for k in (one, two, one, two)
    ]

    assert answers == ["one", "two", "one", "two"]


def test_no_cache_bypasses_the_response_cache(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    gateway.graphql(NAME_QUERY, variables)
    gateway.graphql(NAME_QUERY, variables)
    emulator.seed(*seeded, session_with(Name="fresh"))

    fresh = gateway.graphql(NAME_QUERY, variables, headers={"Cache-Control": "no-cache"}).json()

    assert fresh["data"]["proxySession"]["name"] == "fresh"
    assert emulator.calls(*seeded) == 2


def test_a_document_over_a_limit_is_refused_every_time(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(graphql_max_depth=2)
    deep = (
        "query($vc: ID!, $ps: ID!) { proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
        " { participants { phoneNumber } } }"
    )
    variables = {"vc": seeded[0], "ps": seeded[1]}

    replies = [gateway.graphql(deep, variables).json() for _ in range(3)]

    assert [r["errors"][0]["extensions"]["code"] for r in replies] == [
        "GRAPHQL_VALIDATION_FAILED"
    ] * 3
    assert emulator.calls(*seeded) == 0
