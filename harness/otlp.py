"""A real OTLP/HTTP trace receiver on loopback: what a collector would get from the gateway
(for the tests and the benchmark).

It answers `POST /v1/traces` as a collector does (an empty `ExportTraceServiceResponse`),
decodes each request with `opentelemetry-proto`, and keeps the raw bodies too, so that a
test can scan every byte exported.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from harness.network import LOOPBACK

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in value.array_value.values]
    return None if kind is None else getattr(value, kind)


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: _value(item.value) for item in items}


@dataclass(frozen=True)
class Link:
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Span:
    """One exported span, ids in hex as in `traceparent`."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    status: int
    """0 unset, 1 ok, 2 error."""
    links: list[Link]
    resource: dict[str, Any]
    events: list[str] = field(default_factory=list)


class Receiver:
    """Collects the spans exported to it; `url` is the OTLP endpoint (no `/v1/traces`).

    With `decode=False` it only counts what it gets (`requests`, `received_bytes`): a sink
    for the benchmark that costs its core little."""

    def __init__(self, *, decode: bool = True) -> None:
        self.decode = decode
        self.requests = 0
        self.received_bytes = 0
        self.spans: list[Span] = []
        self.bodies: list[bytes] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._receive(self.path, body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _receive(self, path: str, body: bytes) -> None:
        with self._lock:
            self.requests += 1
            self.received_bytes += len(body)
        if not self.decode:
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        spans = [
            Span(
                name=span.name,
                kind=KINDS[span.kind],
                trace_id=span.trace_id.hex(),
                span_id=span.span_id.hex(),
                parent_span_id=span.parent_span_id.hex(),
                attributes=_attributes(span.attributes),
                status=span.status.code,
                links=[
                    Link(link.trace_id.hex(), link.span_id.hex(), _attributes(link.attributes))
                    for link in span.links
                ],
                resource=_attributes(resource_spans.resource.attributes),
                events=[event.name for event in span.events],
            )
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self._lock:
            self.paths.append(path)
            self.bodies.append(body)
            self.spans.extend(spans)

    def wait_for(
        self, predicate: Callable[[list[Span]], bool], timeout: float = 10.0
    ) -> list[Span]:
        """The spans received so far, once `predicate` holds for them (or fail)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                names = [(span.kind, span.name) for span in spans]
                raise AssertionError(f"spans never arrived; received {names}")
            time.sleep(0.05)

    def server_span(self, trace_id: str, timeout: float = 10.0) -> Span:
        """The SERVER span of trace `trace_id`, once it has arrived."""
        spans = self.wait_for(
            lambda spans: any(s.trace_id == trace_id and s.kind == "SERVER" for s in spans),
            timeout,
        )
        [span] = (s for s in spans if s.trace_id == trace_id and s.kind == "SERVER")
        return span

    def trace(self, trace_id: str, count: int, timeout: float = 10.0) -> list[Span]:
        """The `count` spans of trace `trace_id` (waits for them; fails on more or fewer)."""
        self.wait_for(
            lambda spans: sum(span.trace_id == trace_id for span in spans) >= count, timeout
        )
        time.sleep(0.2)  # a span too many would arrive by now
        with self._lock:
            mine = [span for span in self.spans if span.trace_id == trace_id]
        assert len(mine) == count, [(span.kind, span.name) for span in mine]
        return mine


def spans_of(spans: list[Span], kind: str) -> Iterator[Span]:
    return (span for span in spans if span.kind == kind)
