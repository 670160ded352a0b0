"""The ProxySession domain model, built from AWS's parsed reply and rendered back in its shape."""

from __future__ import annotations

import functools
import hashlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from app.domain.errors import BadUserInput, NotFound
from app.domain.masking import mask_phone
from app.domain.types import SessionKey

ID_MAX_LENGTH = 128
# AWS's Java `\S` is the complement of these six characters, not Python's `\s`.
ID_PATTERN = r"[^ \t\n\x0B\f\r]"
_NON_SPACE = re.compile(ID_PATTERN)


def validate_id(name: str, value: str) -> str:
    """Return `value` if it is a valid AWS id (1-128 characters, one non-space, not a path
    dot segment), else raise."""
    if not 1 <= len(value) <= ID_MAX_LENGTH:
        raise BadUserInput(f"{name} must be 1 to {ID_MAX_LENGTH} characters long.")
    if _NON_SPACE.search(value) is None:
        raise BadUserInput(f"{name} must contain at least one non-space character.")
    if value in DOT_SEGMENTS:
        raise BadUserInput(f"{name} must not be '.' or '..'.")
    return value


DOT_SEGMENTS = frozenset((".", ".."))
"""Path dot segments: in AWS's request path they would name another operation."""


_SPACES = " \t\n\x0b\f\r"


def validate_key(voice_connector_id: str, proxy_session_id: str) -> SessionKey:
    """Validate both ids and return the cache key they make."""
    # The common case in one expression (stripping AWS's six spaces leaves something);
    # `validate_id` words the refusal.
    if (
        0 < len(voice_connector_id) <= ID_MAX_LENGTH
        and 0 < len(proxy_session_id) <= ID_MAX_LENGTH
        and voice_connector_id.strip(_SPACES)
        and proxy_session_id.strip(_SPACES)
        and voice_connector_id not in DOT_SEGMENTS
        and proxy_session_id not in DOT_SEGMENTS
    ):
        return (voice_connector_id, proxy_session_id)
    return (
        validate_id("voiceConnectorId", voice_connector_id),
        validate_id("proxySessionId", proxy_session_id),
    )


@dataclass(frozen=True, slots=True)
class Participant:
    """One participant of a proxy session (numbers in E.164)."""

    phone_number: str | None = None
    proxy_phone_number: str | None = None


@dataclass(frozen=True, slots=True)
class GeoMatchParams:
    """Country and area code used for geographic matching."""

    country: str | None = None
    area_code: str | None = None


@dataclass(frozen=True, slots=True)
class ProxySession:
    """A proxy session; enum members keep AWS's raw value, so unknown values survive."""

    voice_connector_id: str
    proxy_session_id: str
    name: str | None = None
    status: str | None = None
    expiry_minutes: int | None = None
    capabilities: tuple[str, ...] | None = None
    created_timestamp: datetime | None = None
    updated_timestamp: datetime | None = None
    ended_timestamp: datetime | None = None
    participants: tuple[Participant, ...] | None = None
    number_selection_behavior: str | None = None
    geo_match_level: str | None = None
    geo_match_params: GeoMatchParams | None = None

    def masked(self) -> ProxySession:
        """A copy with every participant's numbers masked to their last four digits."""
        if not self.participants:
            return self
        participants = tuple(
            Participant(
                None if p.phone_number is None else mask_phone(p.phone_number),
                None if p.proxy_phone_number is None else mask_phone(p.proxy_phone_number),
            )
            for p in self.participants
        )
        return replace(self, participants=participants)

    @property
    def closed(self) -> bool:
        """Whether the session is over and will no longer change."""
        return self.status == "Closed"

    @classmethod
    def from_aws(cls, member: Mapping[str, Any], key: SessionKey) -> ProxySession:
        """Build from botocore's parsed `ProxySession` member, filling ids from the key."""
        participants = member.get("Participants")
        capabilities = member.get("Capabilities")
        geo = member.get("GeoMatchParams")
        return cls(
            voice_connector_id=member.get("VoiceConnectorId", key[0]),
            proxy_session_id=member.get("ProxySessionId", key[1]),
            name=member.get("Name"),
            status=member.get("Status"),
            expiry_minutes=member.get("ExpiryMinutes"),
            capabilities=None if capabilities is None else tuple(capabilities),
            created_timestamp=_timestamp(member, "CreatedTimestamp"),
            updated_timestamp=_timestamp(member, "UpdatedTimestamp"),
            ended_timestamp=_timestamp(member, "EndedTimestamp"),
            participants=None
            if participants is None
            else tuple(
                Participant(p.get("PhoneNumber"), p.get("ProxyPhoneNumber")) for p in participants
            ),
            number_selection_behavior=member.get("NumberSelectionBehavior"),
            geo_match_level=member.get("GeoMatchLevel"),
            geo_match_params=None
            if geo is None
            else GeoMatchParams(geo.get("Country"), geo.get("AreaCode")),
        )

    def to_aws(self) -> dict[str, Any]:
        """Render in AWS's shape (PascalCase, RFC 3339 UTC timestamps); absent stays absent."""
        out: dict[str, Any] = {
            "VoiceConnectorId": self.voice_connector_id,
            "ProxySessionId": self.proxy_session_id,
        }
        _put(out, "Name", self.name)
        _put(out, "Status", self.status)
        _put(out, "ExpiryMinutes", self.expiry_minutes)
        _put(out, "Capabilities", None if self.capabilities is None else list(self.capabilities))
        _put(out, "CreatedTimestamp", rfc3339(self.created_timestamp))
        _put(out, "UpdatedTimestamp", rfc3339(self.updated_timestamp))
        _put(out, "EndedTimestamp", rfc3339(self.ended_timestamp))
        if self.participants is not None:
            out["Participants"] = [
                _compact({"PhoneNumber": p.phone_number, "ProxyPhoneNumber": p.proxy_phone_number})
                for p in self.participants
            ]
        _put(out, "NumberSelectionBehavior", self.number_selection_behavior)
        _put(out, "GeoMatchLevel", self.geo_match_level)
        if self.geo_match_params is not None:
            geo = self.geo_match_params
            out["GeoMatchParams"] = _compact({"Country": geo.country, "AreaCode": geo.area_code})
        return out


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session with its REST body and ETag, rendered once when the cache is filled."""

    session: ProxySession
    body: bytes
    etag: str

    @classmethod
    def render(cls, session: ProxySession) -> SessionRecord:
        """Serialize `session` to the REST body and derive its strong ETag."""
        body = orjson.dumps({"ProxySession": session.to_aws()})
        return cls(session, body, etag_of(body))

    @classmethod
    def from_body(cls, body: bytes, key: SessionKey, *, mask: bool = False) -> SessionRecord:
        """Read back a body `render` made for `key` (the shared cache stores bodies), rendered
        again, so that only what the gateway itself would say is served (masked if `mask`).

        Raises ValueError when it is not one: not JSON, not a session, or another key's.
        """
        try:
            member = orjson.loads(body)["ProxySession"]
            if not _well_typed(member):
                raise ValueError("a member of another type")
            for name in _TIMESTAMPS:
                if name in member:
                    member[name] = datetime.fromisoformat(member[name])
            session = ProxySession.from_aws(member, key)
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError("not a rendered session") from exc
        if (session.voice_connector_id, session.proxy_session_id) != key:
            raise ValueError("a session of another key")
        return cls.render(session.masked() if mask else session)


_TIMESTAMPS = ("CreatedTimestamp", "UpdatedTimestamp", "EndedTimestamp")


def _text(value: object) -> bool:
    return isinstance(value, str)


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _texts_by_name(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(item, str) for item in value.values())


def _participants(value: object) -> bool:
    return isinstance(value, list) and all(_texts_by_name(item) for item in value)


_MEMBER_TYPES = {
    "VoiceConnectorId": _text,
    "ProxySessionId": _text,
    "Name": _text,
    "Status": _text,
    "ExpiryMinutes": _whole,
    "Capabilities": _texts,
    "CreatedTimestamp": _text,
    "UpdatedTimestamp": _text,
    "EndedTimestamp": _text,
    "Participants": _participants,
    "NumberSelectionBehavior": _text,
    "GeoMatchLevel": _text,
    "GeoMatchParams": _texts_by_name,
}
"""What each member of a rendered body holds (a body read back is input: checked first)."""


def _well_typed(member: object) -> bool:
    """Whether every known member of `member` has the type the gateway renders."""
    return isinstance(member, dict) and all(
        check(member[name]) for name, check in _MEMBER_TYPES.items() if name in member
    )


def measured_size(value: object) -> int:
    """The bytes `value` holds, measured with `sys.getsizeof` over its parts: a rendered
    record (its body, ETag and session, every member of it), a NotFound, or a key.

    Shared objects (None, small ints, interned strings) are counted each time they appear:
    the measure errs on the large side. One walk with a stack (every cache fill pays it).
    """
    getsizeof = sys.getsizeof
    size = 0
    stack = [value]
    while stack:
        item = stack.pop()
        size += getsizeof(item)
        kind: type = type(item)
        if kind in _LEAVES:
            continue
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif isinstance(item, _LEAF_CLASSES):  # a str enum, a datetime subclass
            continue
        elif isinstance(item, NotFound):
            stack += (item.detail, item.upstream_code)
        else:
            stack.extend([getattr(item, name) for name in _slots(kind)])
    return size


_LEAF_CLASSES = (str, bytes, int, float, datetime)  # bool is an int
_LEAVES = frozenset({*_LEAF_CLASSES, bool, type(None)})


@functools.lru_cache(maxsize=64)
def _slots(kind: type) -> tuple[str, ...]:
    """The attribute names a slotted class's instances hold (none for another class)."""
    return tuple(getattr(kind, "__slots__", ()))


def etag_of(body: bytes) -> str:
    """The strong ETag of a body: equal bodies, equal tags, on every replica."""
    return f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'


def rfc3339(value: datetime | None) -> str | None:
    """Format a timestamp as RFC 3339 in UTC with a `Z` suffix."""
    if value is None:
        return None
    value = _utc(value)
    if not value.microsecond:
        spec = "seconds"
    elif not value.microsecond % 1000:
        spec = "milliseconds"
    else:
        spec = "microseconds"
    text = value.isoformat(timespec=spec)
    return text.removesuffix("+00:00") + "Z"


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _timestamp(member: Mapping[str, Any], name: str) -> datetime | None:
    value = member.get(name)
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{name} is not a timestamp")
    return _utc(value)


def _put(out: dict[str, Any], name: str, value: object) -> None:
    if value is not None:
        out[name] = value


def _compact(members: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in members.items() if value is not None}
