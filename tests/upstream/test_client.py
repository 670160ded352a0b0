"""The upstream policy: the error table is complete, retries and the deadline hold at the wire."""

from __future__ import annotations

import json
import time
from pathlib import Path

import botocore.session
import pytest

from app.domain.errors import GatewayError
from app.upstream import AWS_ERRORS, RETRYABLE
from tests.conftest import GatewayFactory
from tests.support.servers import Emulator, Gateway, start_gateway


def test_every_modeled_get_proxy_session_error_is_mapped() -> None:
    model = botocore.session.get_session().get_service_model("chime-sdk-voice")
    modeled = {shape.name for shape in model.operation_model("GetProxySession").error_shapes}

    assert modeled, "botocore lists no errors for GetProxySession"
    assert modeled - AWS_ERRORS.keys() == set()
    assert all(issubclass(error, GatewayError) for error in AWS_ERRORS.values())


def test_only_faults_are_retried() -> None:
    retried = {code for code, error in AWS_ERRORS.items() if issubclass(error, RETRYABLE)}

    assert retried == {
        "ThrottledClientException",
        "ServiceFailureException",
        "ServiceUnavailableException",
    }


def test_throttling_is_retried_then_succeeds(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, error="ThrottledClientException", times=2)

    reply = gateway.get_session(*seeded)

    assert reply.status_code == 200
    assert emulator.calls(*seeded) == 3


def test_throttled_upstream_is_retried_then_429(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, error="ThrottledClientException")

    reply = gateway.get_session(*seeded)

    assert reply.status_code == 429
    assert emulator.calls(*seeded) == 3  # GATEWAY_UPSTREAM_MAX_ATTEMPTS


def test_attempt_budget_comes_from_the_setting(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(upstream_max_attempts=1)
    emulator.fault(*seeded, error="ServiceUnavailableException")

    assert gateway.get_session(*seeded).status_code == 503
    assert emulator.calls(*seeded) == 1


@pytest.mark.parametrize(
    "error", ["NotFoundException", "BadRequestException", "ForbiddenException"]
)
def test_client_errors_are_not_retried(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str], error: str
) -> None:
    emulator.fault(*seeded, error=error)

    gateway.get_session(*seeded)

    assert emulator.calls(*seeded) == 1


def test_connection_reset_is_retried(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, reset=True, times=1)

    assert gateway.get_session(*seeded).status_code == 200
    assert emulator.calls(*seeded) == 2


def test_deadline_covers_every_attempt(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(upstream_timeout_seconds=1, upstream_max_attempts=10)
    emulator.fault(*seeded, error="ServiceUnavailableException", delay=0.4)

    started = time.monotonic()
    reply = gateway.get_session(*seeded)
    elapsed = time.monotonic() - started

    assert reply.status_code in {503, 504}
    assert elapsed < 2.5  # one deadline of 1 s, not ten attempts of 0.4 s
    assert emulator.calls(*seeded) <= 3


def test_deprecated_operation_is_logged_once_at_start(emulator: Emulator, tmp_path: Path) -> None:
    """botocore's AWS_DATA_PATH loads a model that marks GetProxySession deprecated."""
    loader = botocore.session.get_session().get_component("data_loader")
    model, path = loader.load_service_model("chime-sdk-voice", "service-2"), None
    version = loader.determine_latest_version("chime-sdk-voice", "service-2")
    model["operations"]["GetProxySession"]["deprecated"] = True
    path = tmp_path / "models" / "chime-sdk-voice" / version
    path.mkdir(parents=True)
    (path / "service-2.json").write_text(json.dumps(model))
    log = tmp_path / "stdout.log"
    gateway = start_gateway(emulator.url, log, {"AWS_DATA_PATH": str(tmp_path / "models")})
    try:
        warnings = [r for r in gateway.log_records() if "deprecated" in r["message"]]
        assert len(warnings) == 1
        assert warnings[0]["level"] == "WARNING"
        assert "2026-04-07" in warnings[0]["message"]
    finally:
        gateway.stop()


def test_a_gateway_with_the_wrong_secret_is_refused_by_the_emulator(
    emulator: Emulator, seeded: tuple[str, str], tmp_path: Path
) -> None:
    before = emulator.rejected("InvalidSignatureException")
    log = tmp_path / "stdout.log"
    gateway = start_gateway(emulator.url, log, {"AWS_SECRET_ACCESS_KEY": "not-the-secret"})
    try:
        reply = gateway.get_session(*seeded)
    finally:
        gateway.stop()

    assert reply.status_code == 502
    assert reply.json()["code"] == "UPSTREAM_ERROR"
    assert reply.json()["upstreamCode"] == "InvalidSignatureException"
    assert emulator.calls(*seeded) == 0
    assert emulator.rejected("InvalidSignatureException") == before + 1  # one 403, no retry


def test_the_deprecation_warning_follows_the_loaded_model(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DATA_PATH", raising=False)  # the gateway loads botocore's own
    model = botocore.session.get_session().get_service_model("chime-sdk-voice")
    deprecated = bool(model.operation_model("GetProxySession").deprecated)

    warnings = [r for r in gateway.log_records() if "deprecated" in r["message"]]

    assert [r["level"] for r in warnings] == (["WARNING"] if deprecated else [])
