"""The cost of OpenTelemetry traces on the REST hit: the same gateway with traces on (every
request sampled, exported over OTLP/HTTP to a receiver on loopback) and off, alternated."""

from __future__ import annotations

from bench.cases import pair
from bench.context import HIT_PS, SESSION_PATH, VC, Bench
from bench.results import PairResult
from harness.otlp import Receiver

TRACED = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_TRACES_SAMPLER": "always_on",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
}


def run_traced_hit(bench: Bench) -> PairResult:
    """REST hits with every request traced against the same hits with traces off."""
    receiver = Receiver(decode=False).start()
    traced = untraced = None
    try:
        traced = bench.gateway(
            "gateway-traced", {**TRACED, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        )
        untraced = bench.gateway("gateway-untraced")
        path = SESSION_PATH.format(vc=VC, ps=HIT_PS)
        result = pair(
            bench,
            "traced_hit",
            "untraced_hit",
            (traced, traced.url + path, None),
            (untraced, untraced.url + path, None),
        )
    finally:
        bench.stop(*(server for server in (traced, untraced) if server is not None))
        receiver.stop()
    result.notes.append(
        f"the receiver got {receiver.requests:,} export requests, {receiver.received_bytes:,}"
        " bytes of spans (every request sampled: OTEL_TRACES_SAMPLER=always_on)"
    )
    return result
