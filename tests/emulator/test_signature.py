"""The emulator checks every GetProxySession signature with botocore's signer, as AWS would."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import example, given, settings
from hypothesis import strategies as st

from harness import sample
from tests.conftest import SAMPLE_SESSION
from tests.support.servers import Emulator, start_emulator
from tests.support.sigv4 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, signed_headers

pytestmark = pytest.mark.fast

MISMATCH = "The request signature we calculated does not match the signature you provided."
# Spaces, unicode, and what percent-encoding and form-encoding give a meaning to.
_ODD_ID = st.text(
    alphabet=st.one_of(st.sampled_from(" %+=/?#&~*."), st.characters(codec="utf-8")),
    min_size=1,
    max_size=20,
).filter(lambda value: value not in {".", ".."})
"""Ids botocore must encode. Not the dot segments: a path with one is another operation's."""


@pytest.fixture(scope="module")
def botocore_session() -> Any:
    """One botocore session, so that each client skips loading the model again."""
    return botocore.session.get_session()


def chime_client(
    session: Any,
    url: str,
    access_key_id: str = ACCESS_KEY_ID,
    secret_access_key: str = SECRET_ACCESS_KEY,
) -> Any:
    """A stock botocore chime-sdk-voice client for the emulator at `url`, without retries."""
    return session.create_client(
        "chime-sdk-voice",
        region_name=REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        endpoint_url=url,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=10, connect_timeout=5),
    )


@pytest.fixture(scope="module")
def chime(botocore_session: Any, emulator: Emulator) -> Iterator[Any]:
    """A client signing with the emulator's test credentials."""
    client = chime_client(botocore_session, emulator.url)
    yield client
    client.close()


def session_url(emulator: Emulator, vc: str, ps: str) -> str:
    """The GetProxySession URL of a plain (vc, ps) at the emulator."""
    return f"{emulator.url}/voice-connectors/{vc}/proxy-sessions/{ps}"


def refusal(chime: Any, vc: str = "vc", ps: str = "ps") -> dict[str, Any]:
    """Call GetProxySession, expecting a ClientError, and return its parsed response."""
    with pytest.raises(ClientError) as caught:
        chime.get_proxy_session(VoiceConnectorId=vc, ProxySessionId=ps)
    response: dict[str, Any] = caught.value.response
    return response


def assert_refused(reply: httpx.Response, code: str) -> None:
    """AWS's answer to a request whose authentication failed: 403, code in x-amzn-ErrorType."""
    assert reply.status_code == 403
    assert reply.headers["x-amzn-errortype"] == code
    assert reply.headers["content-type"] == "application/json"
    assert uuid.UUID(reply.headers["x-amzn-requestid"])
    assert set(reply.json()) == {"message"}


def test_a_request_signed_by_botocores_signer_verifies(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    url = session_url(emulator, *seeded)

    reply = httpx.get(url, headers=signed_headers("GET", url))

    assert reply.status_code == 200
    assert reply.json()["ProxySession"]["Name"] == SAMPLE_SESSION["Name"]
    assert emulator.calls(*seeded) == 1


def test_a_wrong_secret_is_an_invalid_signature(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    url = session_url(emulator, *seeded)
    before = emulator.rejected("InvalidSignatureException")

    reply = httpx.get(url, headers=signed_headers("GET", url, secret_access_key="not-testing"))

    assert_refused(reply, "InvalidSignatureException")
    message = reply.json()["message"]
    assert message.startswith(MISMATCH)
    assert f"\n/voice-connectors/{seeded[0]}/proxy-sessions/{seeded[1]}\n" in message
    assert emulator.calls(*seeded) == 0
    assert emulator.rejected("InvalidSignatureException") == before + 1


def test_botocore_reads_a_wrong_secret_as_invalid_signature_exception(
    botocore_session: Any, emulator: Emulator
) -> None:
    client = chime_client(botocore_session, emulator.url, secret_access_key="not-testing")
    try:
        response = refusal(client)
    finally:
        client.close()

    assert response["Error"]["Code"] == "InvalidSignatureException"
    assert response["Error"]["Message"].startswith(MISMATCH)
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_an_unknown_access_key_is_an_unrecognized_client(
    botocore_session: Any, emulator: Emulator
) -> None:
    url = session_url(emulator, "vc", "ps")
    reply = httpx.get(url, headers=signed_headers("GET", url, access_key_id="AKIDUNKNOWN"))
    client = chime_client(botocore_session, emulator.url, access_key_id="AKIDUNKNOWN")
    try:
        response = refusal(client)
    finally:
        client.close()

    assert_refused(reply, "UnrecognizedClientException")
    assert reply.json() == {"message": "The security token included in the request is invalid."}
    assert response["Error"]["Code"] == "UnrecognizedClientException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403


def _a_second_later(stamp: str) -> str:
    """An X-Amz-Date of the same day (so the credential scope still matches), but not `stamp`."""
    later = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") + timedelta(seconds=1)
    if later.day != int(stamp[6:8]):
        later -= timedelta(seconds=2)
    return later.strftime("%Y%m%dT%H%M%SZ")


@pytest.mark.parametrize(
    ("name", "tamper"),
    [
        ("X-Custom", lambda _: "tampered"),
        ("X-Amz-Date", _a_second_later),
        ("Host", lambda _: "localhost"),
    ],
)
def test_a_tampered_signed_header_is_an_invalid_signature(
    emulator: Emulator, seeded: tuple[str, str], name: str, tamper: Callable[[str], str]
) -> None:
    url = session_url(emulator, *seeded)
    headers = signed_headers("GET", url, {"X-Custom": "signed"})
    assert name.lower() in headers["Authorization"].split("SignedHeaders=")[1]
    headers[name] = tamper(headers.get(name, ""))

    reply = httpx.get(url, headers=headers)

    assert_refused(reply, "InvalidSignatureException")
    assert reply.json()["message"].startswith(MISMATCH)
    assert emulator.calls(*seeded) == 0


def test_a_tampered_path_is_an_invalid_signature(
    emulator: Emulator, seeded: tuple[str, str]
) -> None:
    vc, ps = seeded
    headers = signed_headers("GET", session_url(emulator, vc, "other"))

    reply = httpx.get(session_url(emulator, vc, ps), headers=headers)

    assert_refused(reply, "InvalidSignatureException")
    assert emulator.calls(vc, ps) == 0
    assert emulator.calls(vc, "other") == 0


def test_an_unsigned_header_may_be_added(emulator: Emulator, seeded: tuple[str, str]) -> None:
    url = session_url(emulator, *seeded)
    headers = {**signed_headers("GET", url), "X-Added-Later": "not signed"}

    assert httpx.get(url, headers=headers).status_code == 200


def test_a_signature_for_another_service_is_refused(emulator: Emulator) -> None:
    url = session_url(emulator, "vc", "ps")

    reply = httpx.get(url, headers=signed_headers("GET", url, service="voice-chime"))

    assert_refused(reply, "InvalidSignatureException")
    assert reply.json() == {"message": "Credential should be scoped to correct service: 'chime'. "}


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer token",
        "AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=00",
        "AWS4-HMAC-SHA256 Credential=testing/20261129/us-east-1/chime, SignedHeaders=host,"
        " Signature=00",
    ],
)
def test_an_incomplete_authorization_is_refused(emulator: Emulator, authorization: str) -> None:
    url = session_url(emulator, "vc", "ps")
    headers = {**signed_headers("GET", url), "Authorization": authorization}

    reply = httpx.get(url, headers=headers)

    assert_refused(reply, "IncompleteSignatureException")


def test_a_signature_without_its_date_is_refused(emulator: Emulator) -> None:
    url = session_url(emulator, "vc", "ps")
    headers = signed_headers("GET", url)
    del headers["X-Amz-Date"]

    reply = httpx.get(url, headers=headers)

    assert_refused(reply, "IncompleteSignatureException")
    assert "'X-Amz-Date'" in reply.json()["message"]


@settings(max_examples=60, deadline=None)
@given(vc=_ODD_ID, ps=_ODD_ID)
@example(vc="vc", ps="\n")  # once routed nowhere: the catch-all route stopped at a newline
def test_odd_ids_signed_by_botocore_verify(chime: Any, vc: str, ps: str) -> None:
    response = refusal(chime, vc, ps)

    # NotFound, not 403: the signature verified and the ids arrived intact.
    assert response["Error"]["Code"] == "NotFoundException"
    assert response["Error"]["Message"] == f"Proxy session {ps} not found on Voice Connector {vc}."


def test_other_credentials_can_be_given(botocore_session: Any) -> None:
    options = ["--access-key-id", "AKIDOTHER", "--secret-access-key", "other-secret"]
    other = start_emulator(options=options)
    try:
        theirs = chime_client(botocore_session, other.url, "AKIDOTHER", "other-secret")
        ours = chime_client(botocore_session, other.url)
        try:
            session = theirs.get_proxy_session(
                VoiceConnectorId=sample.VOICE_CONNECTOR_ID, ProxySessionId=sample.PROXY_SESSION_ID
            )
            refused = refusal(ours)
        finally:
            theirs.close()
            ours.close()
    finally:
        other.stop()

    assert session["ProxySession"]["Status"] == "Open"
    assert refused["Error"]["Code"] == "UnrecognizedClientException"
