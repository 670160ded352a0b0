"""GraphQL types for frontends, mapped from the domain model (enum values upper-case)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import TypeVar

import strawberry

from app.domain import model
from app.domain.masking import mask_phone
from app.domain.model import rfc3339
from app.graphql.node_ids import node_id


def _parse_datetime(value: object) -> datetime:
    if not isinstance(value, str):
        raise ValueError("DateTime must be an RFC 3339 string")
    return datetime.fromisoformat(value)


DATETIME = strawberry.scalar(
    name="DateTime",
    description="An RFC 3339 timestamp in UTC, e.g. `2026-11-29T10:00:00Z`.",
    serialize=rfc3339,
    parse_value=_parse_datetime,
)


@strawberry.enum(description="Where a proxy session stands.")
class ProxySessionStatus(Enum):
    OPEN = "Open"
    IN_PROGRESS = "InProgress"
    CLOSED = "Closed"


@strawberry.enum(description="What a proxy session carries.")
class Capability(Enum):
    VOICE = "Voice"
    SMS = "SMS"


@strawberry.enum(description="Whether a participant keeps the same proxy number.")
class NumberSelectionBehavior(Enum):
    PREFER_STICKY = "PreferSticky"
    AVOID_STICKY = "AvoidSticky"


@strawberry.enum(description="How closely proxy numbers match participants' geography.")
class GeoMatchLevel(Enum):
    COUNTRY = "Country"
    AREA_CODE = "AreaCode"


@strawberry.type(description="A participant's number and the proxy number it talks through.")
class Participant:
    phone_number: str | None
    proxy_phone_number: str | None


@strawberry.type(description="Country and area code used for geographic matching.")
class GeoMatchParams:
    country: str
    area_code: str


@strawberry.interface(description="An object with a global id (Relay's Node).")
class Node:
    id: strawberry.ID = strawberry.field(description="The object's opaque, stable global id.")


@strawberry.type(description="A masked-number call/SMS session between participants.")
class ProxySession(Node):
    voice_connector_id: strawberry.ID
    proxy_session_id: strawberry.ID
    name: str | None
    status: ProxySessionStatus | None
    expiry_minutes: int | None
    capabilities: list[Capability] | None
    created_timestamp: datetime | None
    updated_timestamp: datetime | None
    ended_timestamp: datetime | None
    participants: list[Participant] | None
    number_selection_behavior: NumberSelectionBehavior | None
    geo_match_level: GeoMatchLevel | None
    geo_match_params: GeoMatchParams | None

    @classmethod
    def from_domain(cls, session: model.ProxySession, *, mask_phones: bool = False) -> ProxySession:
        """Map the domain session; an enum value this schema does not know becomes null."""
        geo = session.geo_match_params
        phone = _masked if mask_phones else _as_is
        key = (session.voice_connector_id, session.proxy_session_id)
        return cls(
            id=strawberry.ID(node_id(key)),
            voice_connector_id=strawberry.ID(session.voice_connector_id),
            proxy_session_id=strawberry.ID(session.proxy_session_id),
            name=session.name,
            status=_enum(ProxySessionStatus, session.status),
            expiry_minutes=session.expiry_minutes,
            capabilities=_enum_list(Capability, session.capabilities),
            created_timestamp=session.created_timestamp,
            updated_timestamp=session.updated_timestamp,
            ended_timestamp=session.ended_timestamp,
            participants=None
            if session.participants is None
            else [
                Participant(
                    phone_number=phone(p.phone_number),
                    proxy_phone_number=phone(p.proxy_phone_number),
                )
                for p in session.participants
            ],
            number_selection_behavior=_enum(
                NumberSelectionBehavior, session.number_selection_behavior
            ),
            geo_match_level=_enum(GeoMatchLevel, session.geo_match_level),
            geo_match_params=None
            if geo is None or geo.country is None or geo.area_code is None
            else GeoMatchParams(country=geo.country, area_code=geo.area_code),
        )


def _masked(number: str | None) -> str | None:
    return None if number is None else mask_phone(number)


def _as_is(number: str | None) -> str | None:
    return number


E = TypeVar("E", bound=Enum)


def _enum(enum: type[E], raw: str | None) -> E | None:
    if raw is None:
        return None
    try:
        return enum(raw)
    except ValueError:
        return None


def _enum_list(enum: type[E], raw: tuple[str, ...] | None) -> list[E] | None:
    if raw is None:
        return None
    values = [_enum(enum, item) for item in raw]
    if any(value is None for value in values):
        return None
    return [value for value in values if value is not None]
