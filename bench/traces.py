"""The cost of OpenTelemetry traces on the REST hit: the same gateway with traces on
(exported over OTLP/HTTP to a receiver on loopback) and off, alternated; every request
sampled (`traced_hit`), or one in ten (`traced_hit_sampled`)."""

from __future__ import annotations

from bench.cases import pair
from bench.context import HIT_PS, SESSION_PATH, VC, Bench
from bench.results import PairResult
from harness.otlp import Receiver

TRACED = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_BSP_SCHEDULE_DELAY": "200",
    "OTEL_BSP_MAX_QUEUE_SIZE": "65536",
}
EVERY_REQUEST = {"OTEL_TRACES_SAMPLER": "always_on"}
ONE_IN_TEN = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}


def run_traced_hit(bench: Bench) -> PairResult:
    """REST hits with every request traced against the same hits with traces off."""
    return _traced(bench, "traced_hit", EVERY_REQUEST)


def run_traced_hit_sampled(bench: Bench) -> PairResult:
    """REST hits with one request in ten traced against the same hits with traces off."""
    return _traced(bench, "traced_hit_sampled", ONE_IN_TEN)


def _traced(bench: Bench, case: str, sampler: dict[str, str]) -> PairResult:
    receiver = Receiver(decode=False).start()
    traced = untraced = None
    try:
        settings = {**TRACED, **sampler, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url}
        traced = bench.gateway("gateway-traced", settings)
        untraced = bench.gateway("gateway-untraced")
        path = SESSION_PATH.format(vc=VC, ps=HIT_PS)
        result = pair(
            bench,
            case,
            "untraced_hit",
            (traced, traced.url + path, None),
            (untraced, untraced.url + path, None),
        )
    finally:
        bench.stop(*(server for server in (traced, untraced) if server is not None))
        receiver.stop()
    result.notes.append(
        f"the receiver got {receiver.requests:,} export requests, {receiver.received_bytes:,}"
        f" bytes of spans ({', '.join(f'{k}={v}' for k, v in sampler.items())})"
    )
    return result
