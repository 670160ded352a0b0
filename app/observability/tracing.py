"""OpenTelemetry traces, configured only by OpenTelemetry's standard `OTEL_*` variables.

Off unless `OTEL_TRACES_EXPORTER` names `otlp`: then spans go over OTLP/HTTP (protobuf)
to `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`, batched by the
SDK's `BatchSpanProcessor` (`OTEL_BSP_*`) on its own thread. The SDK reads every variable
itself: the sampler (`OTEL_TRACES_SAMPLER`, `…_ARG`; `parentbased_always_on` by default),
the resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), the propagators
(`OTEL_PROPAGATORS`: `tracecontext,baggage` by default, `xray` for AWS X-Ray) and the
exporter's endpoint, headers, timeout and compression.

With tracing off the request path does no tracing work at all: the edge and the upstream
client hold no tracer.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry import propagate, trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter, TextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

log = logging.getLogger(__name__)

SERVICE_NAME = "proxy-session-gateway"
"""The `service.name` unless `OTEL_SERVICE_NAME` (or `OTEL_RESOURCE_ATTRIBUTES`) says."""
INSTRUMENTATION = "proxy_session_gateway"
SUPPORTED_PROTOCOLS = ("", "http/protobuf")
SHUTDOWN_SECONDS = 5.0
"""How long the last spans may take to leave at shutdown (an unreachable collector's
spans are dropped after it)."""


def hex_ids(context: trace.SpanContext) -> tuple[str, str]:
    """A span's trace and span ids in hex, as `traceparent` writes them (logs, exemplars)."""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


class TracingConfigError(ValueError):
    """An `OTEL_*` variable the gateway cannot honour (the process stops, saying which)."""


def enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether `OTEL_TRACES_EXPORTER` turns traces on (`otlp`, alone or in a list)."""
    exporters = environ.get("OTEL_TRACES_EXPORTER", "none")
    return "otlp" in {name.strip() for name in exporters.split(",")}


class _HeaderGetter(Getter[Mapping[str, str]]):
    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key.lower())  # X-Ray asks for `X-Amzn-Trace-Id`
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


HEADERS = _HeaderGetter()
"""Reads the propagators' headers from a dict of lower-case names to their first value."""


@dataclass(frozen=True, slots=True)
class Tracing:
    """The tracer, the propagator and the provider that exports what they make."""

    tracer: trace.Tracer
    propagator: TextMapPropagator
    provider: TracerProvider
    exporter: SpanExporter
    fields: frozenset[bytes]
    """The header names the propagator reads (lower case), to pick them out of a request."""

    def carrier(self, headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
        """The propagation headers of an ASGI request (each name's first value)."""
        fields, carrier = self.fields, dict[str, str]()
        for name, value in headers:
            if name in fields:
                carrier.setdefault(name.decode("latin-1"), value.decode("latin-1"))
        return carrier

    def shutdown(self) -> None:
        """Export what is left (within `SHUTDOWN_SECONDS`) and stop the exporter's thread.

        The SDK's flush exports every batch left, each retried up to the exporter's timeout
        whatever time limit it is given: with an unreachable collector that outlasts a pod's
        grace period. So it runs in a thread of its own, and when it is not done in time the
        exporter is shut down first, which ends its retries (the rest is dropped).
        """
        flush = threading.Thread(target=self.provider.force_flush, name="otel-flush", daemon=True)
        flush.start()
        flush.join(SHUTDOWN_SECONDS)
        if flush.is_alive():
            self.exporter.shutdown()
        self.provider.shutdown()


def from_environment(environ: Mapping[str, str] = os.environ) -> Tracing | None:
    """The tracing the `OTEL_*` variables ask for, or None when traces are off.

    Raises TracingConfigError for a protocol other than OTLP over HTTP (protobuf).
    """
    if not enabled(environ):
        return None
    protocol = environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if protocol not in SUPPORTED_PROTOCOLS:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: the gateway exports "
            "OTLP over HTTP (http/protobuf)"
        )
    resource = Resource.create({})  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    propagator = propagate.get_global_textmap()  # OTEL_PROPAGATORS, parsed by the API
    fields = frozenset(name.lower().encode("latin-1") for name in propagator.fields)
    sampler = type(provider.sampler).__name__
    log.info("traces on", extra={"propagators": sorted(propagator.fields), "sampler": sampler})
    return Tracing(provider.get_tracer(INSTRUMENTATION), propagator, provider, exporter, fields)
