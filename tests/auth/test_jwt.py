"""OIDC JWTs beside static tokens: RS256/ES256 against a live JWKS, refused before the cache."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from app.auth.jwks import MAX_JWKS_BYTES, REFETCH_LIMIT, JwksClient, JwksError, parse_jwks
from app.observability.metrics import Metrics
from tests.conftest import NAME_QUERY, GatewayFactory
from tests.support.jwks import (
    AUDIENCE,
    ISSUER,
    SUBJECT,
    JwksServer,
    SigningKey,
    claims,
    ec_key,
    hmac_signed,
    rsa_key,
    unsigned,
    with_payload,
)
from tests.support.servers import LOOPBACK, Emulator, Gateway, free_port

STATIC = "static-token-5d1c7a0e9f3b"
CHALLENGE = 'Bearer realm="proxy-session-gateway"'
INVALID_TOKEN = CHALLENGE + ', error="invalid_token"'


@dataclass(frozen=True)
class Keys:
    """The provider's keys: `rsa` and `ec` published, `rogue` never, `rotated` after a rotation."""

    rsa: SigningKey
    ec: SigningKey
    rogue: SigningKey
    rotated: SigningKey


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(rsa_key("rsa-1"), ec_key("ec-1"), rsa_key("rogue"), rsa_key("rsa-2"))


@pytest.fixture(scope="session")
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


def _jwt_gateway(factory: GatewayFactory, jwks_url: str) -> Gateway:
    return factory(
        jwt_jwks_url=jwks_url, jwt_issuer=ISSUER, jwt_audience=AUDIENCE, auth_tokens=STATIC
    )


@pytest.fixture
def secured(gateway_factory: GatewayFactory, jwks_server: JwksServer, keys: Keys) -> Gateway:
    """The gateway most tests share: static token plus JWTs, JWKS holding `rsa` and `ec`."""
    jwks_server.publish("main", keys.rsa, keys.ec)
    return _jwt_gateway(gateway_factory, jwks_server.url("main"))


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _vars(key: tuple[str, str]) -> dict[str, str]:
    return {"vc": key[0], "ps": key[1]}


@pytest.mark.parametrize("which", ["rsa", "ec"])
def test_a_valid_rs256_or_es256_token_passes_both_doors(
    secured: Gateway, seeded: tuple[str, str], keys: Keys, which: str
) -> None:
    key: SigningKey = getattr(keys, which)
    headers = _bearer(key.sign(claims()))

    assert secured.get_session(*seeded, headers=headers).status_code == 200
    gql = secured.graphql(NAME_QUERY, _vars(seeded), headers=headers)
    assert gql.status_code == 200
    assert gql.json()["data"]["proxySession"]["name"] == "order-1234"


def test_static_tokens_still_work_beside_jwts(secured: Gateway, seeded: tuple[str, str]) -> None:
    assert secured.get_session(*seeded, headers=_bearer(STATIC)).status_code == 200

    wrong = secured.get_session(*seeded, headers=_bearer(STATIC + "x"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == INVALID_TOKEN


def test_no_token_gets_the_plain_challenge(secured: Gateway, seeded: tuple[str, str]) -> None:
    reply = secured.get_session(*seeded)

    assert reply.status_code == 401
    # RFC 6750 3.1: no error code when the request carried no credentials at all.
    assert reply.headers["www-authenticate"] == CHALLENGE


def _now() -> int:
    return int(time.time())


REFUSED: dict[str, tuple[Callable[[Keys], str], str]] = {
    "expired": (lambda k: k.rsa.sign(claims(exp=_now() - 120)), "expired"),
    "not-yet-valid": (lambda k: k.ec.sign(claims(nbf=_now() + 600)), "not_yet_valid"),
    "issued-in-the-future": (lambda k: k.rsa.sign(claims(iat=_now() + 600)), "not_yet_valid"),
    "wrong-issuer": (lambda k: k.rsa.sign(claims(iss="https://evil.example/")), "wrong_issuer"),
    "wrong-audience": (lambda k: k.ec.sign(claims(aud="another-service")), "wrong_audience"),
    "no-exp": (lambda k: k.rsa.sign(claims(exp=None)), "invalid_token"),
    "no-audience": (lambda k: k.rsa.sign(claims(aud=None)), "invalid_token"),
    "exp-as-a-string": (lambda k: k.rsa.sign(claims(exp=str(_now() + 300))), "invalid_token"),
    "no-kid": (lambda k: jwt.encode(claims(), k.rsa.private, algorithm="RS256"), "unknown_key"),
    "bad-signature": (lambda k: k.rogue.sign(claims(), kid=k.rsa.kid), "bad_signature"),
    "tampered": (
        lambda k: with_payload(k.rsa.sign(claims()), claims(sub="admin")),
        "bad_signature",
    ),
    "unknown-kid": (lambda k: k.rogue.sign(claims(), kid="kid-nobody-published"), "unknown_key"),
    "alg-none": (lambda k: unsigned(claims(), k.rsa.kid), "algorithm"),
    "hs256-with-the-public-key": (
        lambda k: hmac_signed(claims(), k.rsa.kid, k.rsa.public_pem),
        "algorithm",
    ),
    "rs256-with-an-ec-kid": (lambda k: k.rsa.sign(claims(), kid=k.ec.kid), "algorithm"),
    "garbage": (lambda k: "not-a-jwt-at-all", "invalid_token"),
    "garbage-segments": (lambda k: "eyJhbGciOi.bm90IGpzb24.c2ln", "invalid_token"),
    "over-size": (lambda k: k.rsa.sign(claims(pad="x" * 9000)), "invalid_token"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_jwt_gets_401_and_is_counted_by_reason(
    secured: Gateway, emulator: Emulator, seeded: tuple[str, str], keys: Keys, case: str
) -> None:
    build, reason = REFUSED[case]
    before = secured.metric("gateway_auth_failures_total", reason=reason)

    reply = secured.get_session(*seeded, headers=_bearer(build(keys)))

    assert reply.status_code == 401
    assert reply.headers["content-type"] == "application/problem+json"
    assert reply.headers["www-authenticate"] == INVALID_TOKEN
    body = reply.json()
    assert body["code"] == "UNAUTHENTICATED"
    assert body["detail"] == "A valid bearer token is required."  # the same whatever the reason
    assert secured.metric("gateway_auth_failures_total", reason=reason) == before + 1
    assert emulator.calls(*seeded) == 0


def test_graphql_refuses_a_bad_jwt_with_its_own_shape(
    secured: Gateway, seeded: tuple[str, str], keys: Keys
) -> None:
    token = keys.ec.sign(claims(exp=_now() - 120))

    reply = secured.graphql(NAME_QUERY, _vars(seeded), headers=_bearer(token))

    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == INVALID_TOKEN
    assert reply.json()["data"] is None
    assert reply.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


def test_a_cached_session_never_answers_a_refused_jwt(
    secured: Gateway, emulator: Emulator, seeded: tuple[str, str], keys: Keys
) -> None:
    good = _bearer(keys.rsa.sign(claims()))
    assert secured.get_session(*seeded, headers=good).status_code == 200
    assert (
        secured.get_session(*seeded, headers=good)
        .headers["cache-status"]
        .startswith("proxy-gateway; hit")
    )

    for token in (
        keys.rsa.sign(claims(exp=_now() - 120)),
        keys.rogue.sign(claims(), kid=keys.rsa.kid),
    ):
        rest = secured.get_session(*seeded, headers=_bearer(token))
        gql = secured.graphql(NAME_QUERY, _vars(seeded), headers=_bearer(token))
        assert (rest.status_code, gql.status_code) == (401, 401)
        assert "order-1234" not in rest.text + gql.text
    assert emulator.calls(*seeded) == 1


def test_tokens_and_claims_never_reach_the_log(
    secured: Gateway, seeded: tuple[str, str], keys: Keys
) -> None:
    tokens = [
        keys.rsa.sign(claims()),
        keys.ec.sign(claims()),
        keys.rsa.sign(claims(exp=_now() - 120)),
        keys.rogue.sign(claims(), kid=keys.rsa.kid),
        keys.rsa.sign(claims(aud="another-service")),
        unsigned(claims(), keys.rsa.kid),
    ]
    for token in tokens:
        secured.get_session(*seeded, headers=_bearer(token))

    text = "\n".join(secured.settled_log_lines())
    for token in tokens:
        _header, payload, signature = token.split(".")
        assert payload not in text
        assert not signature or signature not in text
    assert SUBJECT not in text
    assert STATIC not in text
    refusals = [r for r in secured.log_records() if r["message"].startswith("authentication")]
    assert {r["reason"] for r in refusals} >= {"expired", "bad_signature", "wrong_audience"}
    assert all(r["level"] == "INFO" for r in refusals)


def test_metrics_count_auth_failures_and_jwks_fetches(
    secured: Gateway, seeded: tuple[str, str], keys: Keys
) -> None:
    secured.get_session(*seeded, headers=_bearer(keys.rsa.sign(claims())))
    secured.get_session(*seeded, headers=_bearer(keys.rsa.sign(claims(exp=_now() - 120))))

    assert secured.metric("gateway_jwks_fetches_total", outcome="ok") >= 1
    assert secured.metric("gateway_auth_failures_total", reason="expired") >= 1


def test_a_rotated_key_works_at_once_with_one_shared_refetch(
    gateway_factory: GatewayFactory, jwks_server: JwksServer, seeded: tuple[str, str], keys: Keys
) -> None:
    jwks_server.publish("rotation", keys.rsa)
    gateway = _jwt_gateway(gateway_factory, jwks_server.url("rotation"))
    old = _bearer(keys.rsa.sign(claims()))
    assert gateway.get_session(*seeded, headers=old).status_code == 200
    assert jwks_server.requests("rotation") == 1

    # The old key withdrawn, the new one published; a slow answer makes the callers overlap.
    jwks_server.publish("rotation", keys.rotated, delay=0.3)
    new = _bearer(keys.rotated.sign(claims()))
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: gateway.get_session(*seeded, headers=new), range(8)))

    assert [r.status_code for r in replies] == [200] * 8
    assert jwks_server.requests("rotation") == 2
    # A token verified before the rotation is checked again, against the keys of now.
    assert gateway.get_session(*seeded, headers=old).status_code == 401


def test_a_flood_of_made_up_kids_refetches_at_most_three_times_a_minute(
    gateway_factory: GatewayFactory, jwks_server: JwksServer, seeded: tuple[str, str], keys: Keys
) -> None:
    jwks_server.publish("flood", keys.rsa)
    gateway = _jwt_gateway(gateway_factory, jwks_server.url("flood"))
    assert gateway.get_session(*seeded, headers=_bearer(keys.rsa.sign(claims()))).status_code == 200
    assert jwks_server.requests("flood") == 1
    limited = gateway.metric("gateway_jwks_fetches_total", outcome="rate_limited")

    for i in range(20):
        made_up = _bearer(keys.rogue.sign(claims(), kid=f"made-up-{i}"))
        assert gateway.get_session(*seeded, headers=made_up).status_code == 401
        valid = _bearer(keys.rsa.sign(claims(jti=f"jti-{i}")))
        assert gateway.get_session(*seeded, headers=valid).status_code == 200

    assert jwks_server.requests("flood") == 1 + REFETCH_LIMIT
    rate_limited = gateway.metric("gateway_jwks_fetches_total", outcome="rate_limited")
    assert rate_limited - limited == 20 - REFETCH_LIMIT


def test_a_jwks_down_at_start_leaves_static_tokens_working_and_jwts_wait_for_it(
    gateway_factory: GatewayFactory, seeded: tuple[str, str], keys: Keys
) -> None:
    port = free_port()
    gateway = _jwt_gateway(gateway_factory, f"http://{LOOPBACK}:{port}/late/jwks.json")
    token = _bearer(keys.rsa.sign(claims()))

    assert gateway.get_session(*seeded, headers=_bearer(STATIC)).status_code == 200
    assert gateway.get_session(*seeded, headers=token).status_code == 401
    assert gateway.metric("gateway_jwks_fetches_total", outcome="error") >= 1

    late = JwksServer(port=port)
    try:
        late.publish("late", keys.rsa)
        assert gateway.get_session(*seeded, headers=token).status_code == 200
        assert late.requests("late") == 1
    finally:
        late.stop()


# The JWKS client itself, in-process but over real HTTP to the same loopback server.


def test_only_usable_signing_keys_are_taken_from_a_jwks(keys: Keys) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1()).public_key()
    assert isinstance(keys.rogue.private, rsa.RSAPrivateKey)
    weak = SigningKey(
        "weak", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024)
    )
    entries = [
        keys.rsa.jwk,
        keys.ec.jwk,
        {**keys.rotated.jwk, "kid": keys.rsa.kid},  # a duplicate kid: the first one wins
        {**keys.rogue.jwk, "kid": "alg-disagrees", "alg": "ES256"},
        {**keys.rogue.jwk, "kid": "ps256", "alg": "PS256"},
        {**keys.rogue.jwk, "kid": "for-encryption", "use": "enc"},
        {**keys.rogue.jwk, "kid": "ops-without-verify", "key_ops": ["encrypt"]},
        {**RSAAlgorithm.to_jwk(keys.rogue.private, as_dict=True), "kid": "private"},
        {**ECAlgorithm.to_jwk(p384, as_dict=True), "kid": "p384"},
        weak.jwk,
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {**keys.rogue.jwk, "kid": "broken", "n": "AA"},
        {name: value for name, value in keys.rogue.jwk.items() if name != "kid"},
        "not-an-object",
    ]

    parsed = parse_jwks(orjson.dumps({"keys": entries}))

    assert {kid: key.algorithm for kid, key in parsed.items()} == {
        "rsa-1": "RS256",
        "ec-1": "ES256",
    }
    assert (
        parsed["rsa-1"].jwk.key.public_numbers() == keys.rsa.private.public_key().public_numbers()
    )


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"keys": {}}',
        b'{"keys": []}',
        b'{"keys": [{"kty": "oct", "kid": "h"}]}',
    ],
)
def test_a_jwks_without_usable_keys_is_an_error(body: bytes) -> None:
    with pytest.raises(JwksError):
        parse_jwks(body)


def _fetches(metrics: Metrics, outcome: str) -> float:
    value = metrics.registry.get_sample_value("gateway_jwks_fetches_total", {"outcome": outcome})
    return value or 0.0


def test_a_failed_refetch_keeps_the_keys_already_known(jwks_server: JwksServer, keys: Keys) -> None:
    metrics = Metrics()
    client = JwksClient(jwks_server.url("keep"), metrics)
    jwks_server.publish("keep", keys.rsa)
    failures = [
        (b"{}", 503, True),
        (b"not json", 200, True),
        (b"x" * (MAX_JWKS_BYTES + 1), 200, False),  # over the cap, streamed without a length
    ]

    async def scenario() -> None:
        never_started = JwksClient(jwks_server.url("keep"), metrics)
        assert await never_started.key("rsa-1") is None  # no session: no key, and no crash
        await client.start()
        try:
            assert await client.key("rsa-1") is not None
            for body, status, send_length in failures:
                jwks_server.serve("keep", body, status=status, send_length=send_length)
                assert await client.key("made-up") is None
                assert await client.key("rsa-1") is not None
        finally:
            await client.close()

    asyncio.run(scenario())

    assert _fetches(metrics, "ok") == 1
    assert _fetches(metrics, "error") == 1 + len(failures)
    assert _fetches(metrics, "rate_limited") == 0
    assert jwks_server.requests("keep") == 1 + len(failures)


def test_refetches_are_allowed_again_once_the_minute_has_slid(
    jwks_server: JwksServer, keys: Keys
) -> None:
    metrics = Metrics()
    now = [1000.0]
    client = JwksClient(jwks_server.url("window"), metrics, clock=lambda: now[0])
    jwks_server.publish("window", keys.rsa)

    async def scenario() -> None:
        await client.start()
        try:
            assert await client.key("rsa-1") is not None
            for _ in range(REFETCH_LIMIT + 1):
                assert await client.key("made-up") is None
            jwks_server.publish("window", keys.rsa, keys.rotated)
            now[0] += 59.0
            assert await client.key("rsa-2") is None  # still inside the window
            now[0] += 1.0
            assert await client.key("rsa-2") is not None
        finally:
            await client.close()

    asyncio.run(scenario())

    assert jwks_server.requests("window") == 1 + REFETCH_LIMIT + 1
    assert _fetches(metrics, "rate_limited") == 2


def test_close_does_not_wait_for_a_slow_jwks(jwks_server: JwksServer) -> None:
    jwks_server.serve("slow", b'{"keys": []}', delay=2.0)
    client = JwksClient(jwks_server.url("slow"), Metrics())

    async def scenario() -> float:
        await client.start()
        await asyncio.sleep(0.05)  # the first fetch is in flight
        started = time.monotonic()
        await client.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 1.0
