"""botocore's per-call shortcuts give botocore's own results, byte for byte."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import aioboto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.context import start_as_current_context
from botocore.credentials import Credentials
from botocore.useragent import register_feature_id
from botocore.utils import parse_timestamp as botocore_parse
from hypothesis import given, settings
from hypothesis import strategies as st

from app.observability.metrics import Metrics
from app.settings import Settings
from app.upstream import Upstream
from app.upstream.tuning import (
    SHORTCUTS,
    FastSigV4Auth,
    drop_idle_handlers,
    memoize_endpoint,
    memoize_user_agent,
    parse_timestamp,
    use_fast_sigv4,
)
from tests.conftest import NAME_QUERY, SAMPLE_SESSION, GatewayFactory
from tests.support.servers import Emulator, Gateway

pytestmark = pytest.mark.fast

_SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=1, max_size=24
)
_ENDPOINTS = st.sampled_from(
    [
        "https://voice-chime.us-east-1.amazonaws.com",
        "https://voice-chime.us-east-1.amazonaws.com:443",
        "http://127.0.0.1:4566",
        "http://localhost",
        "http://[::1]:8080",
        "https://user@example.com:8443",
    ]
)


def _request(url: str, token_header: bool, extra: dict[str, str]) -> AWSRequest:
    headers = {"User-Agent": "Botocore/1.0 ua/2.1", "Content-Type": "application/json", **extra}
    if token_header:
        headers["X-Amz-Security-Token"] = "stale"
    request = AWSRequest(method="GET", url=url, headers=headers, data=b"")
    request.context = {}
    return request


@settings(max_examples=200, deadline=None)
@given(
    endpoint=_ENDPOINTS,
    vc=_SEGMENT,
    ps=_SEGMENT,
    query=st.sampled_from(["", "?b=2&a=1", "?x=%20y"]),
    token=st.sampled_from([None, "session-token/with+symbols="]),
    extra=st.dictionaries(
        st.sampled_from(["X-Amz-Target", "x-custom", "Expect", "X-Amzn-Trace-Id"]),
        st.text(alphabet="ab  c\t", min_size=1, max_size=8),
        max_size=3,
    ),
    day=st.integers(min_value=0, max_value=3),
)
def test_fast_sigv4_signs_exactly_like_botocore(
    endpoint: str,
    vc: str,
    ps: str,
    query: str,
    token: str | None,
    extra: dict[str, str],
    day: int,
) -> None:
    url = f"{endpoint}/voice-connectors/{quote(vc)}/proxy-sessions/{quote(ps)}{query}"
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    now = dt.datetime(2026, 11, 29 - day, 10, 0, 0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", lambda: now)
        expected = _request(url, token is not None, extra)
        SigV4Auth(credentials, "chime", "us-east-1").add_auth(expected)
        actual = _request(url, token is not None, extra)
        base = SigV4Auth(credentials, "chime", "us-east-1")
        FastSigV4Auth.from_auth(base).add_auth(actual)

    assert dict(actual.headers.items()) == dict(expected.headers.items())
    assert actual.headers["Authorization"] == expected.headers["Authorization"]


def _client_calls(check: Any) -> Any:
    async def run() -> Any:
        session = aioboto3.Session(
            aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
        )
        async with session.client("chime-sdk-voice") as client:
            return await check(client)

    return asyncio.run(run())


def test_the_memoized_user_agent_is_botocores_for_every_feature_set() -> None:
    async def check(client: Any) -> list[tuple[str, str]]:
        original = client._user_agent_creator.to_string
        memoize_user_agent(client)
        pairs = []
        for features in ([], ["RETRY_MODE_STANDARD"], ["RETRY_MODE_ADAPTIVE", "WAITER"], []):
            with start_as_current_context():
                for feature in features:
                    register_feature_id(feature)
                pairs.append((client._user_agent_creator.to_string(), original()))
        return pairs

    pairs = _client_calls(check)

    assert all(memoized == built for memoized, built in pairs)
    assert len({built for _, built in pairs}) == 3  # the features do change the string


def test_the_memoized_endpoint_is_botocores_and_resolved_once() -> None:
    async def check(client: Any) -> tuple[list[Any], list[Any], int]:
        operation = client.meta.service_model.operation_model("GetProxySession")
        resolver = client._ruleset_resolver
        calls = [{"VoiceConnectorId": f"vc-{n}", "ProxySessionId": f"ps-{n}"} for n in range(3)]
        plain = [await resolver.construct_endpoint(operation, call_args, {}) for call_args in calls]
        resolutions: list[str] = []
        memoize_endpoint(client)
        # Registered after tuning, to count the resolutions botocore still runs.
        client.meta.events.register(
            "before-endpoint-resolution.chime-sdk-voice",
            lambda **_: resolutions.append("resolved"),
        )
        memoized = [
            await resolver.construct_endpoint(operation, call_args, {}) for call_args in calls
        ]
        memoized[0].headers["x-mutated"] = "by a caller"  # must not reach the next call
        again = await resolver.construct_endpoint(operation, calls[0], {})
        return plain, [*memoized[1:], again], len(resolutions)

    plain, memoized, resolutions = _client_calls(check)

    assert memoized == plain
    assert resolutions == 1


def test_the_client_signs_with_the_fast_signer_where_botocore_chose_sigv4() -> None:
    async def check(client: Any) -> tuple[type, type]:
        signer = client._request_signer
        before = await signer.get_auth_instance("chime", "us-east-1", "v4")
        use_fast_sigv4(client)
        after = await signer.get_auth_instance("chime", "us-east-1", "v4")
        return type(before), type(after)

    assert _client_calls(check) == (SigV4Auth, FastSigV4Auth)


@pytest.mark.usefixtures("aws_environment")
def test_every_shortcut_applies_to_the_client_the_gateway_builds(
    seeded: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.upstream")

    async def run() -> tuple[frozenset[str], str | None]:
        async with Upstream(Settings(), Metrics()) as upstream:
            return upstream.shortcuts, (await upstream.get_proxy_session(seeded)).name

    shortcuts, name = asyncio.run(run())

    assert shortcuts == SHORTCUTS
    assert name == "order-1234"
    reports = [r for r in caplog.records if r.getMessage().startswith("botocore shortcuts")]
    assert [(r.levelname, getattr(r, "shortcuts", None)) for r in reports] == [
        ("INFO", sorted(SHORTCUTS))
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_handler_botocore_no_longer_holds_is_reported_not_applied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def check(client: Any) -> tuple[frozenset[str], frozenset[str]]:
        return drop_idle_handlers(client), drop_idle_handlers(client)

    first, second = _client_calls(check)

    assert first == {"idle_retry_check", "recursion_header"}
    assert second == frozenset()  # botocore's unregister said nothing: the emitter did
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "idle_retry_check not applied" in warnings[0]
    assert "recursion_header not applied" in warnings[1]


def _reported_shortcuts(gateway: Gateway) -> list[list[str]]:
    return [
        record["shortcuts"]
        for record in gateway.log_records()
        if record["message"].startswith("botocore shortcuts")
    ]


def test_tuning_off_applies_no_shortcut_and_answers_the_same(
    gateway_factory: GatewayFactory, gateway: Gateway, seeded: tuple[str, str]
) -> None:
    plain = gateway_factory(botocore_tuning="off")

    reply = plain.get_session(*seeded)

    assert reply.status_code == 200
    assert reply.json() == gateway.get_session(*seeded).json()
    assert _reported_shortcuts(plain) == [[]]
    assert _reported_shortcuts(gateway) == [sorted(SHORTCUTS)]


@pytest.mark.parametrize("ps", ["a b", "ünï 日本", "100%", "a+b=c", "a%2Fb/c", "~*'()!&?#"])
def test_ids_the_signer_must_encode_are_signed_as_botocore_would(
    gateway: Gateway, emulator: Emulator, ps: str
) -> None:
    """The emulator checks with botocore's stock signer what the gateway's fast one sent.

    Through GraphQL, whose ids (unlike a REST path segment) may hold a slash.
    """
    vc = f"vc {uuid.uuid4().hex}"
    emulator.seed(vc, ps, SAMPLE_SESSION)
    before = emulator.rejected("InvalidSignatureException")

    reply = gateway.graphql(NAME_QUERY, {"vc": vc, "ps": ps})

    assert reply.json() == {"data": {"proxySession": {"name": SAMPLE_SESSION["Name"]}}}
    assert emulator.calls(vc, ps) == 1
    assert emulator.rejected("InvalidSignatureException") == before


def test_timestamps_parse_fast_and_as_botocore_would() -> None:
    for text in ("2026-11-29T10:00:00Z", "2026-11-29T10:00:00.250Z", "2026-11-29T12:00:00+02:00"):
        assert parse_timestamp(text) == botocore_parse(text)
    assert parse_timestamp("2026-11-29T10:00:00") == datetime(2026, 11, 29, 10, tzinfo=UTC)
    epoch = datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert parse_timestamp(int(epoch.timestamp())) == epoch
    assert parse_timestamp("2026-11-29T12:00:00+02:00").utcoffset() == timedelta(hours=2)
    assert parse_timestamp("Sun, 29 Nov 2026 10:00:00 GMT") == datetime(
        2026, 11, 29, 10, tzinfo=UTC
    )
