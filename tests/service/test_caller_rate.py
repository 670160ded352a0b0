"""The per-caller upstream rate (`GATEWAY_CALLER_UPSTREAM_RATE`), over the wire: AWS calls
a caller causes are counted, hits are free, and each caller has a budget of its own."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from app.auth import build_authenticator
from app.http.state import caller_of
from app.observability.context import RequestContext
from app.observability.metrics import Metrics
from app.service.callers import CallerRates
from app.settings import Settings
from tests.conftest import NAME_QUERY, SAMPLE_SESSION, GatewayFactory
from tests.support.clock import Clock
from tests.support.jwks import AUDIENCE, ISSUER, SUBJECT, JwksServer, claims, rsa_key
from tests.support.servers import Emulator


def _keys(emulator: Emulator, count: int) -> list[tuple[str, str]]:
    keys = [(f"vc-{uuid.uuid4().hex[:12]}", f"ps-{uuid.uuid4().hex}") for _ in range(count)]
    for key in keys:
        emulator.seed(*key, SAMPLE_SESSION)
    return keys


def test_a_caller_over_its_rate_is_throttled_without_an_upstream_call(
    gateway_factory: GatewayFactory, emulator: Emulator
) -> None:
    gateway = gateway_factory(caller_upstream_rate=1)
    first, second, third = _keys(emulator, 3)

    served = gateway.get_session(*first)
    hits = [gateway.get_session(*first) for _ in range(5)]  # hits cost nothing
    throttled = gateway.get_session(*second)
    graphql = gateway.graphql(NAME_QUERY, {"vc": third[0], "ps": third[1]}).json()

    assert served.status_code == 200
    assert {r.status_code for r in hits} == {200}
    assert throttled.status_code == 429
    problem = throttled.json()
    assert problem["code"] == "THROTTLED"
    assert "upstreamCode" not in problem
    assert graphql["data"] == {"proxySession": None}
    assert graphql["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "upstreamCode" not in graphql["errors"][0]["extensions"]
    assert (emulator.calls(*first), emulator.calls(*second), emulator.calls(*third)) == (1, 0, 0)


def test_each_static_token_has_a_budget_of_its_own(
    gateway_factory: GatewayFactory, emulator: Emulator
) -> None:
    gateway = gateway_factory(caller_upstream_rate=1, auth_tokens="token-one,token-two")
    keys = _keys(emulator, 4)
    one = {"Authorization": "Bearer token-one"}
    two = {"Authorization": "Bearer token-two"}

    statuses = [
        gateway.get_session(*keys[0], headers=one).status_code,
        gateway.get_session(*keys[1], headers=two).status_code,
        gateway.get_session(*keys[2], headers=one).status_code,
        gateway.get_session(*keys[3], headers=two).status_code,
    ]

    assert statuses == [200, 200, 429, 429]
    assert [emulator.calls(*k) for k in keys] == [1, 1, 0, 0]


def test_the_bucket_holds_one_seconds_worth_and_refills() -> None:
    clock = Clock()
    rates = CallerRates(3, clock)

    assert [rates.take("a") for _ in range(4)] == [True, True, True, False]
    assert rates.take("b")
    clock.now += 1 / 3
    assert [rates.take("a") for _ in range(2)] == [True, False]
    clock.now += 10
    assert [rates.take("a") for _ in range(4)] == [True, True, True, False]


def test_a_new_rate_brings_its_own_burst() -> None:
    # A replica cut off from the shared layer counts a share of the fleet's rate: its burst
    # is a second of that share, not of the fleet's rate.
    clock = Clock()
    rates = CallerRates(4, clock)
    rates.set_rate(2)

    assert [rates.take("a") for _ in range(3)] == [True, True, False]
    clock.now += 10
    assert [rates.take("a") for _ in range(3)] == [True, True, False]


@pytest.mark.parametrize("rate", [0])
def test_zero_turns_the_rate_off(
    gateway_factory: GatewayFactory, emulator: Emulator, rate: int
) -> None:
    gateway = gateway_factory(caller_upstream_rate=rate)
    keys = _keys(emulator, 5)

    assert {gateway.get_session(*k).status_code for k in keys} == {200}


def test_the_caller_is_the_static_token_the_verified_jwt_sub_or_the_address() -> None:
    jwks = JwksServer()
    key = rsa_key("caller-1")
    jwks.publish("callers", key)
    settings = Settings(
        auth_tokens=("static-secret",),
        jwt_jwks_url=jwks.url("callers"),
        jwt_issuer=ISSUER,
        jwt_audience=AUDIENCE,
    )
    client = ("198.51.100.7", 40000)

    async def verdicts() -> list[object]:
        authenticator = build_authenticator(settings, Metrics())
        assert authenticator is not None
        await authenticator.start()
        try:
            return [
                await authenticator.authenticate(b"Bearer static-secret"),
                await authenticator.authenticate(f"Bearer {key.sign(claims())}".encode()),
                await authenticator.authenticate(f"Bearer {key.sign(claims(sub=None))}".encode()),
            ]
        finally:
            await authenticator.close()

    try:
        static, subject, without_sub = asyncio.run(verdicts())
    finally:
        jwks.stop()

    assert isinstance(static, str)
    assert static.startswith("token:")
    assert "static-secret" not in static
    assert subject == f"sub:{SUBJECT}"
    assert isinstance(without_sub, str)
    assert without_sub.startswith("token:")
    # No token accepted (or authentication off): the address counts.
    assert caller_of(RequestContext("rid"), {"type": "http", "client": client}) == (
        "addr:198.51.100.7"
    )
