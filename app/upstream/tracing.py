"""A CLIENT span per AWS attempt (with tracing on): retries are spans of their own.

Named `ChimeSDKVoice/GetProxySession`, with OpenTelemetry's `rpc.*` attributes for AWS,
`aws.request_id`, the HTTP status, the attempt number, and the AWS error code as
`error.type` when the attempt failed. No exception is recorded: AWS's messages are not
the gateway's to export.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from app.domain.errors import GatewayError
from app.domain.types import CallRecord

SPAN_NAME = "ChimeSDKVoice/GetProxySession"
_ATTRIBUTES = {
    "rpc.system": "aws-api",
    "rpc.service": "ChimeSDKVoice",
    "rpc.method": "GetProxySession",
}


class AttemptTracer:
    """Makes the span of each attempt, noted in the call's record for joined requests."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    @contextmanager
    def attempt(self, number: int, record: CallRecord | None = None) -> Iterator[trace.Span]:
        """The span of attempt `number` (1-based), current while the attempt runs, noted in
        the call's `record` for the requests that joined the call."""
        with self._tracer.start_as_current_span(
            SPAN_NAME,
            kind=SpanKind.CLIENT,
            attributes={**_ATTRIBUTES, "proxy_gateway.upstream.attempt": number},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            if record is not None:
                record.append(span.get_span_context())
            yield span


def answered(span: trace.Span, metadata: Any) -> None:
    """Mark an attempt AWS answered (`metadata`: the reply's `ResponseMetadata`)."""
    if isinstance(metadata, dict):
        if isinstance(request_id := metadata.get("RequestId"), str):
            span.set_attribute("aws.request_id", request_id)
        if isinstance(status := metadata.get("HTTPStatusCode"), int):
            span.set_attribute("http.response.status_code", status)


def failed(span: trace.Span, error: GatewayError, metadata: Any = None) -> None:
    """Mark a failed attempt: the AWS error code (else the gateway's) as `error.type`, and
    the reply's `ResponseMetadata` when AWS answered."""
    answered(span, metadata)
    error_type = error.upstream_code or error.code
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR))
