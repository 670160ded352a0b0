"""The REST door, over HTTP, against the emulator through the real aioboto3 client."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import SAMPLE_SESSION, session_with
from tests.support.servers import Emulator, Gateway

RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def test_found_session_has_aws_shape_with_ids_filled(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    reply = gateway.get_session(*seeded)

    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert list(body) == ["ProxySession"]
    session = body["ProxySession"]
    assert session["VoiceConnectorId"] == seeded[0]
    assert session["ProxySessionId"] == seeded[1]
    expected = {k: v for k, v in SAMPLE_SESSION.items() if not k.endswith("Timestamp")}
    assert {k: v for k, v in session.items() if k in expected} == expected
    assert session["CreatedTimestamp"] == "2026-11-29T10:00:00Z"
    assert session["UpdatedTimestamp"] == "2026-11-29T10:05:00.250Z"


def test_timestamps_are_rfc3339_utc_whatever_offset_aws_used(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(*key, session_with(CreatedTimestamp="2026-11-29T12:00:00+02:00"))

    session = gateway.get_session(*key).json()["ProxySession"]

    assert session["CreatedTimestamp"] == "2026-11-29T10:00:00Z"
    assert RFC3339_UTC.fullmatch(session["UpdatedTimestamp"])


def test_absent_members_stay_absent_and_empty_ones_are_kept(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(*key, {"Name": "", "Capabilities": [], "Participants": []})

    session = gateway.get_session(*key).json()["ProxySession"]

    assert session == {
        "VoiceConnectorId": key[0],
        "ProxySessionId": key[1],
        "Name": "",
        "Capabilities": [],
        "Participants": [],
    }


def test_ids_aws_returned_must_be_the_requests(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(*key, session_with(VoiceConnectorId=key[0], ProxySessionId=key[1]))
    same = gateway.get_session(*key)
    other = (key[0], key[1] + "-other")
    emulator.seed(*other, session_with(VoiceConnectorId="canonical-vc", ProxySessionId="ps-x"))

    foreign = gateway.get_session(*other)

    assert same.status_code == 200
    assert (same.json()["ProxySession"]["ProxySessionId"]) == key[1]
    assert foreign.status_code == 502
    assert foreign.json()["code"] == "UPSTREAM_UNAVAILABLE"


def test_unknown_members_and_enum_values_do_not_break_the_request(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(
        *key, session_with(Status="Archived", Capabilities=["Voice", "Video"], NewMember={"x": 1})
    )

    reply = gateway.get_session(*key)

    assert reply.status_code == 200
    session = reply.json()["ProxySession"]
    assert session["Status"] == "Archived"
    assert session["Capabilities"] == ["Voice", "Video"]
    assert "NewMember" not in session


def test_second_request_is_a_cache_hit_with_the_same_etag(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    first = gateway.get_session(*seeded)
    second = gateway.get_session(*seeded)

    assert first.headers["cache-status"] == "proxy-gateway; fwd=miss; fwd-status=200; stored"
    assert re.fullmatch(r"proxy-gateway; hit; ttl=(29|30)", second.headers["cache-status"])
    assert first.headers["etag"] == second.headers["etag"]
    assert re.fullmatch(r'"[0-9a-f]{32}"', first.headers["etag"])
    assert first.content == second.content
    assert emulator.calls(*seeded) == 1


def test_cache_control_is_private_with_seconds_left(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    reply = gateway.get_session(*seeded)

    assert re.fullmatch(r"private, max-age=(29|30)", reply.headers["cache-control"])


def test_if_none_match_with_current_etag_is_304_without_body(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    etag = gateway.get_session(*seeded).headers["etag"]

    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        reply = gateway.get_session(*seeded, headers={"If-None-Match": header})
        assert reply.status_code == 304, header
        assert reply.content == b""
        assert reply.headers["etag"] == etag
        assert reply.headers["cache-control"].startswith("private, max-age=")


def test_if_none_match_with_another_etag_is_200(gateway: Gateway, seeded: tuple[str, str]) -> None:
    reply = gateway.get_session(*seeded, headers={"If-None-Match": '"stale-etag"'})

    assert reply.status_code == 200
    assert reply.json()["ProxySession"]["ProxySessionId"] == seeded[1]


def test_etag_changes_when_the_session_changes(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    before = gateway.get_session(*seeded).headers["etag"]
    emulator.seed(*seeded, session_with(Status="Closed"))

    after = gateway.get_session(*seeded, headers={"Cache-Control": "no-cache"})

    assert after.json()["ProxySession"]["Status"] == "Closed"
    assert after.headers["etag"] != before


def test_no_cache_revalidates_upstream(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway.get_session(*seeded)
    emulator.seed(*seeded, session_with(Name="renamed"))

    cached = gateway.get_session(*seeded)
    fresh = gateway.get_session(*seeded, headers={"Cache-Control": "no-cache"})
    after = gateway.get_session(*seeded)

    assert cached.json()["ProxySession"]["Name"] == "order-1234"
    assert fresh.json()["ProxySession"]["Name"] == "renamed"
    assert fresh.headers["cache-status"].startswith("proxy-gateway; fwd=request")
    assert after.json()["ProxySession"]["Name"] == "renamed"
    assert emulator.calls(*seeded) == 2


@pytest.mark.parametrize(
    ("vc", "ps"),
    [
        ("vc", " "),
        ("\t\n\x0b\x0c\r ", "ps"),
        ("vc", "x" * 129),
        ("y" * 200, "ps"),
    ],
)
def test_bad_ids_are_400_without_an_upstream_call(
    gateway: Gateway, emulator: Emulator, vc: str, ps: str
) -> None:
    before = emulator.total_calls()

    reply = gateway.get_session(vc, ps)

    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert problem["code"] == "BAD_USER_INPUT"
    assert problem["status"] == 400
    assert "Id" in problem["detail"]
    assert emulator.total_calls() == before


@pytest.mark.parametrize(("vc", "ps"), [("%2E", "ps"), ("vc", "%2e%2E"), ("vc", "%2E.")])
def test_dot_segment_ids_are_400_without_an_upstream_call(
    gateway: Gateway, emulator: Emulator, vc: str, ps: str
) -> None:
    before = emulator.total_calls()

    # Percent-encoded, so that the client does not resolve the dots away itself.
    reply = gateway.client.get(f"/v1/voice-connectors/{vc}/proxy-sessions/{ps}")

    assert reply.status_code == 400
    assert reply.json()["code"] == "BAD_USER_INPUT"
    assert "'.' or '..'" in reply.json()["detail"]
    assert emulator.total_calls() == before


def test_empty_id_segment_is_400_not_404(gateway: Gateway, emulator: Emulator) -> None:
    before = emulator.total_calls()

    reply = gateway.client.get("/v1/voice-connectors//proxy-sessions/ps")

    assert reply.status_code == 400
    assert reply.json()["code"] == "BAD_USER_INPUT"
    assert emulator.total_calls() == before


@pytest.mark.parametrize("ps", ["\x1c", "\x1f", "\u00a0", "\u2003", "x" * 128, " a ", "é"])
def test_ids_that_java_calls_non_space_are_accepted(
    gateway: Gateway, emulator: Emulator, ps: str
) -> None:
    vc = f"vc-{uuid.uuid4().hex}"
    emulator.seed(vc, ps, SAMPLE_SESSION)

    reply = gateway.get_session(vc, ps)

    assert reply.status_code == 200
    assert reply.json()["ProxySession"]["ProxySessionId"] == ps


def test_caller_request_id_is_echoed_and_a_bad_one_replaced(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    echoed = gateway.get_session(*seeded, headers={"X-Request-ID": "caller-id-123"})
    replaced = gateway.get_session(*seeded, headers={"X-Request-ID": "bad id\twith spaces"})
    missing = gateway.get_session(*seeded)

    assert echoed.headers["x-request-id"] == "caller-id-123"
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", missing.headers["x-request-id"])
    assert replaced.headers["x-request-id"] != missing.headers["x-request-id"]


def test_problem_carries_the_request_id(gateway: Gateway, key: tuple[str, str]) -> None:
    reply = gateway.get_session(*key, headers={"X-Request-ID": "trace-404"})

    assert reply.status_code == 404
    assert reply.headers["x-request-id"] == "trace-404"
    assert reply.json()["requestId"] == "trace-404"


def test_unknown_route_and_wrong_method_are_problems(gateway: Gateway) -> None:
    missing = gateway.client.get("/v2/nothing")
    wrong = gateway.client.post("/v1/voice-connectors/a/proxy-sessions/b")

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "NOT_FOUND"
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "METHOD_NOT_ALLOWED"


def test_a_hit_answers_exactly_like_the_route_does(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    """Hits are served below FastAPI (app/rest/fast_path.py): same bytes, same headers."""
    miss = gateway.get_session(*seeded)
    hit = gateway.get_session(*seeded)
    etag = hit.headers["etag"]
    slow_304 = gateway.get_session(
        *seeded, headers={"If-None-Match": etag, "Cache-Control": "no-cache"}
    )
    fast_304 = gateway.get_session(*seeded, headers={"If-None-Match": etag})

    assert hit.headers["cache-status"].startswith("proxy-gateway; hit")
    assert hit.content == miss.content
    assert sorted(hit.headers.keys()) == sorted(miss.headers.keys())
    assert hit.headers["content-type"] == miss.headers["content-type"]
    assert hit.headers["content-length"] == miss.headers["content-length"]
    assert (slow_304.status_code, fast_304.status_code) == (304, 304)
    assert sorted(fast_304.headers.keys()) == sorted(slow_304.headers.keys())


def test_a_remembered_not_found_says_what_aws_said(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    first = gateway.get_session(*key)
    remembered = gateway.get_session(*key)

    assert (first.status_code, remembered.status_code) == (404, 404)
    assert first.json()["upstreamCode"] == remembered.json()["upstreamCode"]
    assert remembered.json()["upstreamCode"] == "NotFoundException"
    assert first.headers["cache-status"] == "proxy-gateway; fwd=miss; fwd-status=404; stored"
    assert remembered.headers["cache-status"].startswith("proxy-gateway; hit; ttl=")
    assert emulator.calls(*key) == 1
