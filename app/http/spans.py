"""The SERVER span of a request (with tracing on): started where the edge meets the
request, named and finished once it is answered.

It continues the caller's trace from the propagators' headers (`traceparent`, …), is named
`METHOD route-template`, carries OpenTelemetry's HTTP attributes, the cache outcome, the
GraphQL operation, the contract's `code` as `error.type` on a 5xx, and links to the
upstream call of another request it joined (single flight). Nothing from the caller's
baggage is read into it; no header value but the propagators' is looked at.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from app.domain.types import CallRecord
from app.http.asgi import UNMATCHED
from app.observability.context import RequestContext, TraceFacts
from app.observability.tracing import HEADERS, Tracing, hex_ids


class ServerSpan:
    """One request's span, current (with the calls it joins noted) until `end`."""

    __slots__ = ("_context_token", "exemplar", "facts", "ids", "joined", "span")

    def __init__(self, tracing: Tracing, scope: Scope) -> None:
        parent = tracing.propagator.extract(tracing.carrier(scope["headers"]), getter=HEADERS)
        method = scope["method"]
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "url.path": scope["path"],
            "url.scheme": scope.get("scheme", "http"),
            "network.protocol.version": scope.get("http_version", "1.1"),
        }
        client = scope.get("client")
        if client:
            attributes["client.address"] = client[0]
        self.span = tracing.tracer.start_span(
            method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        context = self.span.get_span_context()
        self.ids = hex_ids(context)
        self.exemplar = self.ids if context.trace_flags.sampled else None
        self.facts = TraceFacts()
        self.joined: list[CallRecord] = []
        self._context_token = otel_context.attach(trace.set_span_in_context(self.span, parent))

    def end(self, method: str, route: str, status: int, ctx: RequestContext) -> None:
        """Name the span by its route, say how the request went, and end it."""
        span = self.span
        try:
            if span.is_recording():
                self._describe(span, method, route, status, ctx)
            span.end()
        finally:
            otel_context.detach(self._context_token)

    def _describe(
        self, span: trace.Span, method: str, route: str, status: int, ctx: RequestContext
    ) -> None:
        facts = self.facts
        if route != UNMATCHED:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        span.set_attribute("http.response.status_code", status)
        if ctx.cache_results:
            span.set_attribute("proxy_gateway.cache.result", ",".join(ctx.cache_results))
        if facts.operation_type is not None:
            span.set_attribute("graphql.operation.type", facts.operation_type)
        if facts.operation_name is not None:
            span.set_attribute("graphql.operation.name", facts.operation_name)
        if status >= 500:
            span.set_attribute("error.type", facts.error_code or str(status))
            span.set_status(Status(StatusCode.ERROR))
        for call in self.joined:
            for attempt in call:
                if isinstance(attempt, trace.SpanContext):
                    span.add_link(attempt, {"proxy_gateway.link": "joined_upstream_call"})
