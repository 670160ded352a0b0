"""End-to-end tests of the emulator: a real subprocess, a real botocore client, httpx for admin."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from harness import sample
from harness.servers import Server, start_emulator
from tests.support.sigv4 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, signed_headers

VC = sample.VOICE_CONNECTOR_ID
PS = sample.PROXY_SESSION_ID
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazonaws.chimesdkvoice/"


def _modeled_errors() -> dict[str, int]:
    """Return each GetProxySession error code with its modeled HTTP status."""
    service = botocore.session.get_session().get_service_model("chime-sdk-voice")
    operation = service.operation_model("GetProxySession")
    return {
        shape.name: shape.metadata["error"]["httpStatusCode"] for shape in operation.error_shapes
    }


MODELED_ERRORS = _modeled_errors()


def stop_with(server: Server, signum: int) -> int:
    """Send the emulator `signum` and return its exit status."""
    server.process.send_signal(signum)
    try:
        return server.process.wait(timeout=10)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One emulator subprocess for this module, which must exit 0 on SIGTERM."""
    running = start_emulator()
    yield running
    assert stop_with(running, signal.SIGTERM) == 0


@pytest.fixture(scope="module")
def admin(server: Server) -> Iterator[httpx.Client]:
    """An httpx client for the admin API."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def chime(server: Server) -> Iterator[Any]:
    """A synchronous botocore chime-sdk-voice client pointed at the emulator, without retries."""
    client = botocore.session.get_session().create_client(
        "chime-sdk-voice",
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        endpoint_url=server.url,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=10, connect_timeout=5),
    )
    yield client
    client.close()


@pytest.fixture(autouse=True)
def _fresh_state(admin: httpx.Client) -> None:
    """Start every test from the sample data, with no faults and no counts."""
    assert admin.post("/_emulator/reset").status_code == 204


def put_fault(admin: httpx.Client, vc: str, ps: str, **fault: object) -> None:
    """Install a fault for (vc, ps) through the admin API."""
    response = admin.put(f"/_emulator/faults/{vc}/{ps}", json=fault)
    assert response.status_code == 204, response.text


def signed_request(method: str, url: str) -> httpx.Response:
    """Send a request signed by botocore's stock SigV4 signer with the emulator's credentials."""
    return httpx.request(method, url, headers=signed_headers(method, url))


def client_error(chime: Any, vc: str = VC, ps: str = PS) -> dict[str, Any]:
    """Call GetProxySession, expecting a ClientError, and return its parsed response."""
    with pytest.raises(ClientError) as caught:
        chime.get_proxy_session(VoiceConnectorId=vc, ProxySessionId=ps)
    response: dict[str, Any] = caught.value.response
    return response


def test_health(admin: httpx.Client) -> None:
    response = admin.get("/_emulator/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_sample_session_parses(chime: Any) -> None:
    response = chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)

    session = response["ProxySession"]
    assert session["VoiceConnectorId"] == VC
    assert session["ProxySessionId"] == PS
    assert session["Status"] == "Open"
    assert session["Capabilities"] == ["Voice", "SMS"]
    assert len(session["Participants"]) == 2
    assert session["CreatedTimestamp"] == dt.datetime(2026, 11, 29, 10, tzinfo=dt.UTC)
    assert isinstance(session["UpdatedTimestamp"], dt.datetime)
    metadata = response["ResponseMetadata"]
    assert metadata["HTTPStatusCode"] == 200
    assert metadata["HTTPHeaders"]["content-type"] == "application/json"
    assert uuid.UUID(metadata["RequestId"]).version == 4


def test_the_harness_sample_is_what_the_emulator_serves(server: Server) -> None:
    url = f"{server.url}/voice-connectors/{VC}/proxy-sessions/{PS}"

    reply = httpx.get(url, headers=signed_headers("GET", url))

    assert reply.json() == {"ProxySession": sample.session()}


def test_every_sample_session_parses(chime: Any) -> None:
    items = json.loads(sample.DATA.read_text())
    assert {item["Status"] for item in items} == {"Open", "InProgress", "Closed"}
    for item in items:
        response = chime.get_proxy_session(
            VoiceConnectorId=item["VoiceConnectorId"], ProxySessionId=item["ProxySessionId"]
        )
        assert response["ProxySession"]["Name"] == item["Name"]


def test_missing_session_is_not_found(chime: Any) -> None:
    response = client_error(chime, ps="00000000-0000-4000-8000-000000000000")

    assert response["Error"]["Code"] == "NotFoundException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert "00000000-0000-4000-8000-000000000000" in response["Error"]["Message"]


@pytest.mark.parametrize(("code", "status"), sorted(MODELED_ERRORS.items()))
def test_modeled_error_round_trips(chime: Any, admin: httpx.Client, code: str, status: int) -> None:
    put_fault(admin, VC, PS, error=code, message="injected")

    with pytest.raises(getattr(chime.exceptions, code)) as caught:
        chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)

    response = caught.value.response
    assert response["Error"] == {"Code": code, "Message": "injected"}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-errortype"] == code + ERROR_TYPE_SUFFIX
    assert headers["content-type"] == "application/json"


def test_modeled_statuses_match_the_aws_documentation() -> None:
    assert MODELED_ERRORS == {
        "BadRequestException": 400,
        "UnauthorizedClientException": 401,
        "ForbiddenException": 403,
        "NotFoundException": 404,
        "ThrottledClientException": 429,
        "ServiceFailureException": 500,
        "ServiceUnavailableException": 503,
    }


def test_unmodeled_error_round_trips(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, error="TeapotException", status=418, times=1)
    put_fault(admin, VC, "other", error="NoStatusGivenException")

    teapot = client_error(chime)
    default = client_error(chime, ps="other")

    assert teapot["Error"]["Code"] == "TeapotException"
    assert teapot["ResponseMetadata"]["HTTPStatusCode"] == 418
    assert default["Error"]["Code"] == "NoStatusGivenException"
    assert default["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_status_override_on_a_modeled_error(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, error="ServiceUnavailableException", status=502)

    response = client_error(chime)

    assert response["Error"]["Code"] == "ServiceUnavailableException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 502


def test_delay_delays_then_answers(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, delay=0.4)

    started = time.monotonic()
    response = chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)

    assert time.monotonic() - started >= 0.4
    assert response["ProxySession"]["ProxySessionId"] == PS


def test_delay_combines_with_an_error(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, delay=0.3, error="ThrottledClientException")

    started = time.monotonic()
    response = client_error(chime)

    assert time.monotonic() - started >= 0.3
    assert response["Error"]["Code"] == "ThrottledClientException"


def test_reset_drops_the_connection(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, reset=True, times=1)

    with pytest.raises(ConnectionClosedError):
        chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)

    response = chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)
    assert response["ProxySession"]["ProxySessionId"] == PS


def test_malformed_body_parses_without_a_session(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, malformed=True)

    response = chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)

    assert "ProxySession" not in response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_raw_body_and_status_are_sent_verbatim(admin: httpx.Client, server: Server) -> None:
    put_fault(admin, VC, PS, raw_body='{"ProxySession": []}', raw_status=207)

    response = signed_request("GET", f"{server.url}/voice-connectors/{VC}/proxy-sessions/{PS}")

    assert response.status_code == 207
    assert response.text == '{"ProxySession": []}'


def test_times_expires(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, error="ServiceFailureException", times=2)

    for _ in range(2):
        assert client_error(chime)["Error"]["Code"] == "ServiceFailureException"
    response = chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)
    assert response["ProxySession"]["Status"] == "Open"


def test_wildcard_fault_applies_to_every_key_and_yields_to_a_key_fault(
    chime: Any, admin: httpx.Client
) -> None:
    put_fault(admin, "*", "*", error="ServiceUnavailableException")
    put_fault(admin, VC, PS, error="ForbiddenException")

    assert client_error(chime)["Error"]["Code"] == "ForbiddenException"
    assert client_error(chime, "any", "thing")["Error"]["Code"] == "ServiceUnavailableException"

    assert admin.delete(f"/_emulator/faults/{VC}/{PS}").status_code == 204
    assert client_error(chime)["Error"]["Code"] == "ServiceUnavailableException"

    assert admin.delete("/_emulator/faults/*/*").status_code == 204
    assert chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)["ProxySession"]


def test_deleting_the_wildcard_clears_every_fault(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, PS, error="ForbiddenException")

    assert admin.delete("/_emulator/faults/*/*").status_code == 204

    assert chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)["ProxySession"]


def test_calls_are_counted_including_faulted_ones(chime: Any, admin: httpx.Client) -> None:
    put_fault(admin, VC, "missing", error="BadRequestException", times=1)
    chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)
    chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)
    for _ in range(2):
        client_error(chime, ps="missing")

    counts = admin.get("/_emulator/calls").json()
    times = counts.pop("times")
    assert counts == {
        "total": 4,
        "max_inflight": 1,
        "keys": {f"{VC}/{PS}": 2, f"{VC}/missing": 2},
        "rejected": {},
    }
    assert len(times) == 4
    assert times == sorted(times)
    assert time.time() - 60 < times[0]
    assert admin.get(f"/_emulator/calls/{VC}/{PS}").json() == {"count": 2}
    assert admin.get(f"/_emulator/calls/{VC}/never").json() == {"count": 0}


def test_unsigned_and_unknown_requests_are_not_counted(admin: httpx.Client, server: Server) -> None:
    httpx.get(f"{server.url}/voice-connectors/{VC}/proxy-sessions/{PS}")
    signed_request("GET", f"{server.url}/voice-connectors/{VC}")

    assert admin.get("/_emulator/calls").json() == {
        "total": 0,
        "max_inflight": 0,
        "keys": {},
        "rejected": {"MissingAuthenticationTokenException": 1},
        "times": [],
    }


def test_reset_endpoint_restores_sessions_and_clears_faults_and_counts(
    chime: Any, admin: httpx.Client, server: Server
) -> None:
    assert admin.delete(f"/_emulator/sessions/{VC}/{PS}").status_code == 204
    assert client_error(chime)["Error"]["Code"] == "NotFoundException"
    put_fault(admin, "*", "*", error="ServiceFailureException")
    httpx.get(f"{server.url}/voice-connectors/{VC}/proxy-sessions/{PS}")

    assert admin.post("/_emulator/reset").status_code == 204

    assert chime.get_proxy_session(VoiceConnectorId=VC, ProxySessionId=PS)["ProxySession"]
    counts = admin.get("/_emulator/calls").json()
    assert len(counts.pop("times")) == 1  # the calls before the reset are forgotten
    assert counts == {
        "total": 1,
        "max_inflight": 0,
        "keys": {f"{VC}/{PS}": 1},
        "rejected": {},
    }


def test_put_session_is_returned_verbatim(admin: httpx.Client, server: Server) -> None:
    session = {
        "Status": "Suspended",
        "Capabilities": [],
        "Name": "",
        "FutureMember": {"nested": [1, 2.5, None, True]},
        "Participants": [{"PhoneNumber": "+12065550110"}],
    }
    assert admin.put("/_emulator/sessions/vc-1/ps-1", json=session).status_code == 204

    response = signed_request("GET", f"{server.url}/voice-connectors/vc-1/proxy-sessions/ps-1")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"ProxySession": session}


def test_ids_with_any_characters_round_trip(chime: Any, admin: httpx.Client) -> None:
    vc, ps = "connector with spaces/ünïcødé", "ps+%2F?#*&é 日本"
    session = {"ProxySessionId": ps, "Status": "Open"}
    url = f"/_emulator/sessions/{quote(vc, safe='')}/{quote(ps, safe='')}"
    assert admin.put(url, json=session).status_code == 204

    response = chime.get_proxy_session(VoiceConnectorId=vc, ProxySessionId=ps)

    assert response["ProxySession"] == session
    calls = admin.get(f"/_emulator/calls/{quote(vc, safe='')}/{quote(ps, safe='')}")
    assert calls.json() == {"count": 1}


def test_unsigned_request_gets_missing_authentication_token(server: Server) -> None:
    response = httpx.get(f"{server.url}/voice-connectors/{VC}/proxy-sessions/{PS}")

    assert response.status_code == 403
    assert response.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert response.json() == {"message": "Missing Authentication Token"}
    assert uuid.UUID(response.headers["x-amzn-requestid"])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", f"/voice-connectors/{VC}/proxy-sessions"),
        ("GET", f"/voice-connectors/{VC}/proxy-sessions/{PS}/extra"),
        ("DELETE", f"/voice-connectors/{VC}/proxy-sessions/{PS}"),
    ],
)
def test_unknown_operation(server: Server, method: str, path: str) -> None:
    response = signed_request(method, server.url + path)

    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"].startswith("UnknownOperationException")


@pytest.mark.parametrize(
    "fault",
    [
        {"delay": -1},
        {"delay": "1"},
        {"times": 0},
        {"reset": "yes"},
        {"status": 500},
        {"error": "Bad Code\r\n"},
        {"bogus": 1},
        [],
    ],
)
def test_invalid_fault_is_rejected(admin: httpx.Client, fault: object) -> None:
    response = admin.put(f"/_emulator/faults/{VC}/{PS}", json=fault)

    assert response.status_code == 400
    assert "error" in response.json()


def test_invalid_admin_requests(admin: httpx.Client) -> None:
    assert admin.put("/_emulator/sessions/a/b", content=b"not json").status_code == 400
    assert admin.put("/_emulator/sessions/a/b", json=[1]).status_code == 400
    assert admin.put("/_emulator/faults/*/b", json={}).status_code == 400
    assert admin.get("/_emulator/nothing").status_code == 404


def test_exits_cleanly_on_sigint() -> None:
    running = start_emulator()
    with httpx.Client(base_url=running.url) as client:
        assert client.get("/_emulator/health").status_code == 200

    assert stop_with(running, signal.SIGINT) == 0
