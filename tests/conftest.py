"""Fixtures: one emulator per session, gateways started per distinct settings and reused."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness import sample
from harness.otlp import Receiver
from tests.support.servers import Emulator, Gateway, aws_env, start_emulator, start_gateway

GatewayFactory = Callable[..., Gateway]

SAMPLE_SESSION: dict[str, Any] = sample.session(ids=False)
"""The harness's sample session, ids omitted (as AWS may): seeded under each test's own key."""
PHONE_NUMBERS = sorted(
    {
        participant[member].lstrip("+")
        for participant in SAMPLE_SESSION["Participants"]
        for member in ("PhoneNumber", "ProxyPhoneNumber")
    }
)
"""The sample session's phone numbers, digits only (found with or without the `+`)."""


FULL = """
query Full($vc: ID!, $ps: ID!) {
  proxySession(voiceConnectorId: $vc, proxySessionId: $ps) {
    voiceConnectorId proxySessionId name status expiryMinutes capabilities
    createdTimestamp updatedTimestamp endedTimestamp
    participants { phoneNumber proxyPhoneNumber }
    numberSelectionBehavior geoMatchLevel geoMatchParams { country areaCode }
  }
}
"""
"""A GraphQL document asking every field of one session."""

NAME_QUERY = (
    "query Name($vc: ID!, $ps: ID!) {"
    " proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { name } }"
)
"""A GraphQL document asking one session's name, with the ids as variables."""


SHARED_GATEWAY_SETTINGS: dict[str, Any] = {
    "breaker_failure_threshold": 1000,
    "retry_budget_ratio": 10,
    "revalidate_min_interval_seconds": 0,
}
"""Gateways are shared by many tests that inject faults on purpose: their breaker and retry
budget would carry one test's faults into the next. Tests of those two pass their own values.
Many tests revalidate right after a fill: the tests of its minimum interval pass their own."""


@pytest.fixture(scope="session")
def emulator() -> Iterator[Emulator]:
    """The Chime SDK Voice emulator, for the whole session."""
    server = start_emulator()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_faults_left(emulator: Emulator) -> Iterator[None]:
    yield
    emulator.clear_fault("*", "*")


@pytest.fixture(scope="session")
def gateway_factory(
    emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayFactory]:
    """Start (or reuse) a gateway for a given set of GATEWAY_* settings."""
    running: dict[tuple[tuple[str, str], ...], Gateway] = {}

    def factory(**settings: Any) -> Gateway:
        settings = {**SHARED_GATEWAY_SETTINGS, **settings}
        env = {f"GATEWAY_{k.upper()}": str(v) for k, v in settings.items()}
        key = tuple(sorted(env.items()))
        if key not in running:
            log = tmp_path_factory.mktemp("gateway") / "stdout.log"
            running[key] = start_gateway(emulator.url, log, env)
        return running[key]

    yield factory
    for gateway in running.values():
        gateway.stop()


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Gateway:
    """A gateway with the default settings (auth off)."""
    return gateway_factory()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    """An OTLP/HTTP receiver on loopback, for the module's traced gateways."""
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def aws_environment(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """This process's environment pointed at the emulator, as the gateway's would be."""
    for name, value in aws_env(emulator.url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)


@pytest.fixture
def key() -> tuple[str, str]:
    """A fresh (voiceConnectorId, proxySessionId) no other test uses."""
    return f"vc-{uuid.uuid4().hex[:12]}", f"ps-{uuid.uuid4().hex}"


@pytest.fixture
def seeded(emulator: Emulator, key: tuple[str, str]) -> tuple[str, str]:
    """A fresh key with SAMPLE_SESSION stored at the emulator (ids omitted, as AWS may)."""
    emulator.seed(*key, SAMPLE_SESSION)
    return key


def session_with(**members: Any) -> Mapping[str, Any]:
    """SAMPLE_SESSION with some members replaced (None removes one)."""
    out = dict(SAMPLE_SESSION)
    for name, value in members.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch folder for the session."""
    return tmp_path_factory.mktemp("scratch")
