"""Pydantic models that document the REST door in OpenAPI (the hit path never builds them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class _AwsShape(BaseModel):
    model_config = ConfigDict(extra="allow")


class AwsParticipant(_AwsShape):
    """A participant's phone number and the proxy number it talks through (E.164)."""

    PhoneNumber: str | None = Field(None, examples=["+12065550100"])
    ProxyPhoneNumber: str | None = Field(None, examples=["+12065550199"])


class AwsGeoMatchParams(_AwsShape):
    """Country and area code used for geographic number matching."""

    Country: str = Field(examples=["US"])
    AreaCode: str = Field(examples=["206"])


class AwsProxySession(_AwsShape):
    """A proxy session in AWS's shape; members AWS did not return are omitted."""

    VoiceConnectorId: str = Field(examples=["abcdef1ghij2klmno3pqr4"])
    ProxySessionId: str = Field(examples=["321c1f5b-7dcb-4a5d-9e07-6b4c6a1b2f10"])
    Name: str | None = Field(None, max_length=128)
    Status: str | None = Field(
        None,
        description="`Open`, `InProgress` or `Closed` (newer values pass through).",
        examples=["Open"],
    )
    ExpiryMinutes: int | None = Field(None, ge=1)
    Capabilities: list[str] | None = Field(
        None, description="Each `Voice` or `SMS` (newer values pass through)."
    )
    CreatedTimestamp: datetime | None = Field(None, description="RFC 3339, UTC.")
    UpdatedTimestamp: datetime | None = Field(None, description="RFC 3339, UTC.")
    EndedTimestamp: datetime | None = Field(None, description="RFC 3339, UTC.")
    Participants: list[AwsParticipant] | None = None
    NumberSelectionBehavior: str | None = Field(
        None, description="`PreferSticky` or `AvoidSticky` (newer values pass through)."
    )
    GeoMatchLevel: str | None = Field(
        None, description="`Country` or `AreaCode` (newer values pass through)."
    )
    GeoMatchParams: AwsGeoMatchParams | None = None


class GetProxySessionResponse(BaseModel):
    """The body of a 200: AWS's GetProxySessionResponse without `$metadata`."""

    ProxySession: AwsProxySession


class Problem(BaseModel):
    """An RFC 9457 problem, with the gateway's error code."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(examples=["NOT_FOUND"])
    upstreamCode: str | None = Field(
        None, description="The AWS exception name, when AWS raised it."
    )
    requestId: str | None = None
