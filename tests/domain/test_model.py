"""Property: any ProxySession botocore's model allows comes back faithfully through both doors."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import botocore.session
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.errors import BadUserInput, NotFound
from app.domain.model import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    Participant,
    ProxySession,
    SessionRecord,
    measured_size,
    rfc3339,
    validate_key,
)
from tests.conftest import FULL
from tests.support.servers import Emulator, Gateway

pytestmark = pytest.mark.fast

MODEL = botocore.session.get_session().get_service_model("chime-sdk-voice")
SESSION_SHAPE = MODEL.operation_model("GetProxySession").output_shape.members["ProxySession"]


def _wire_timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (
        f".{value.microsecond // 1000:03d}Z" if value.microsecond else "Z"
    )


def strategy_for(shape: Any) -> st.SearchStrategy[Any]:
    """A strategy for values of a botocore shape, honouring its enum, length and pattern."""
    meta = shape.metadata
    if shape.type_name == "structure":
        required = set(shape.required_members)
        return st.fixed_dictionaries(
            {name: strategy_for(m) for name, m in shape.members.items() if name in required},
            optional={
                name: strategy_for(m) for name, m in shape.members.items() if name not in required
            },
        )
    if shape.type_name == "list":
        return st.lists(strategy_for(shape.member), max_size=3)
    if shape.type_name == "string":
        if shape.enum:
            return st.sampled_from(shape.enum)
        if "pattern" in meta and meta["pattern"] != ".*\\S.*":
            return st.from_regex(meta["pattern"], fullmatch=True)
        size = {"min_size": meta.get("min", 0), "max_size": min(meta.get("max", 40), 40)}
        alphabet = st.characters(codec="utf-8", exclude_categories=["Cs"])
        text = st.text(alphabet, **size)
        return text.filter(lambda t: t.strip() != "") if meta.get("min") else text
    if shape.type_name == "integer":
        return st.integers(min_value=meta.get("min", 0), max_value=2**31 - 1)
    if shape.type_name == "timestamp":
        moments = st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
        )
        return moments.map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)).map(
            _wire_timestamp
        )
    raise AssertionError(f"no strategy for {shape.type_name}")


SESSIONS = strategy_for(SESSION_SHAPE)


def _expected_rest(session: dict[str, Any], key: tuple[str, str]) -> dict[str, Any]:
    out = {"VoiceConnectorId": key[0], "ProxySessionId": key[1], **session}
    for name in ("CreatedTimestamp", "UpdatedTimestamp", "EndedTimestamp"):
        if name in out:
            out[name] = rfc3339(datetime.fromisoformat(out[name]))
    return out


def _upper_snake(value: str) -> str:
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(value)).upper()


def _expected_graphql(rest: dict[str, Any]) -> dict[str, Any]:
    geo = rest.get("GeoMatchParams")
    return {
        "voiceConnectorId": rest["VoiceConnectorId"],
        "proxySessionId": rest["ProxySessionId"],
        "name": rest.get("Name"),
        "status": _upper_snake(rest["Status"]) if "Status" in rest else None,
        "expiryMinutes": rest.get("ExpiryMinutes"),
        "capabilities": [c.upper() for c in rest["Capabilities"]]
        if "Capabilities" in rest
        else None,
        "createdTimestamp": rest.get("CreatedTimestamp"),
        "updatedTimestamp": rest.get("UpdatedTimestamp"),
        "endedTimestamp": rest.get("EndedTimestamp"),
        "participants": [
            {"phoneNumber": p.get("PhoneNumber"), "proxyPhoneNumber": p.get("ProxyPhoneNumber")}
            for p in rest["Participants"]
        ]
        if "Participants" in rest
        else None,
        "numberSelectionBehavior": _upper_snake(rest["NumberSelectionBehavior"])
        if "NumberSelectionBehavior" in rest
        else None,
        "geoMatchLevel": _upper_snake(rest["GeoMatchLevel"]) if "GeoMatchLevel" in rest else None,
        "geoMatchParams": {"country": geo["Country"], "areaCode": geo["AreaCode"]} if geo else None,
    }


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(session=SESSIONS)
def test_any_modeled_session_round_trips_through_both_doors(
    gateway: Gateway, emulator: Emulator, session: dict[str, Any]
) -> None:
    key = (f"vc-{uuid.uuid4().hex[:8]}", f"ps-{uuid.uuid4().hex}")
    # AWS's reply names the request's ids, or none (a reply naming others is refused).
    if "VoiceConnectorId" in session or "ProxySessionId" in session:
        session = {**session, "VoiceConnectorId": key[0], "ProxySessionId": key[1]}
    emulator.seed(*key, session)
    rest = _expected_rest(session, key)

    reply = gateway.get_session(*key)
    gql = gateway.graphql(FULL, {"vc": key[0], "ps": key[1]})

    assert reply.status_code == 200
    assert reply.json() == {"ProxySession": rest}
    assert gql.json() == {"data": {"proxySession": _expected_graphql(rest)}}


_ID_CHARS = st.sampled_from(
    [" ", "\t", "\n", "\x0b", "\f", "\r", "\x1c", "\x1f", "\x85", "\u2000", "a", "é", "/", "."]
)


@settings(max_examples=500, deadline=None)
@given(vc=st.text(_ID_CHARS, max_size=130), ps=st.text(_ID_CHARS, max_size=130))
def test_validate_key_accepts_exactly_what_the_openapi_pattern_does(vc: str, ps: str) -> None:
    def valid(value: str) -> bool:
        return (
            1 <= len(value) <= ID_MAX_LENGTH
            and re.search(ID_PATTERN, value) is not None
            and value not in (".", "..")  # path dot segments: refused beyond the pattern
        )

    try:
        key = validate_key(vc, ps)
    except BadUserInput:
        assert not (valid(vc) and valid(ps))
    else:
        assert key == (vc, ps)
        assert valid(vc)
        assert valid(ps)


def test_measured_size_counts_the_rendered_record_and_its_parts() -> None:
    small = SessionRecord.render(ProxySession("vc", "ps"))
    named = SessionRecord.render(ProxySession("vc", "ps", name="n" * 1000))
    with_participants = SessionRecord.render(
        ProxySession("vc", "ps", participants=(Participant("+15550001234", "+15550005678"),) * 10)
    )

    assert measured_size(small) > len(small.body) + len(small.etag)
    # The name is held twice: in the session and in the body.
    assert measured_size(named) - measured_size(small) >= 2000
    assert measured_size(with_participants) - measured_size(small) > 10 * 2 * 12
    assert measured_size(NotFound("gone", upstream_code="NotFoundException")) > len("gone")
