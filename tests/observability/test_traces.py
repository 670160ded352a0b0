"""OpenTelemetry traces over the wire: a gateway configured by `OTEL_*` variables only,
exporting OTLP/HTTP to a real receiver on loopback (decoded with `opentelemetry-proto`)."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.observability.tracing import SHUTDOWN_SECONDS
from harness.otlp import Receiver, Span, spans_of
from tests.conftest import NAME_QUERY, PHONE_NUMBERS, SAMPLE_SESSION
from tests.support.servers import Emulator, Gateway, _q, free_port, start_gateway

TOKEN = "trace-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SESSION_ROUTE = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def traced_env(endpoint: str, **extra: str) -> dict[str, str]:
    """A gateway's environment with traces on, exported to `endpoint` within 50 ms."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "gateway-under-test",
        "GATEWAY_AUTH_TOKENS": TOKEN,
        "GATEWAY_REVALIDATE_MIN_INTERVAL_SECONDS": "0",
        **extra,
    }


@pytest.fixture(scope="module")
def traced(
    emulator: Emulator, receiver: Receiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    log = tmp_path_factory.mktemp("traced") / "stdout.log"
    gateway = start_gateway(emulator.url, log, traced_env(receiver.url))
    yield gateway
    gateway.stop()


def new_key(emulator: Emulator) -> tuple[str, str]:
    key = (f"vc-{uuid.uuid4().hex[:10]}", f"ps-{uuid.uuid4().hex}")
    emulator.seed(*key, SAMPLE_SESSION)
    return key


def parent() -> tuple[str, str, dict[str, str]]:
    """A caller's trace id, span id and `traceparent` header (sampled)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, {"traceparent": f"00-{trace_id}-{span_id}-01"}


def request_id_of_letters() -> str:
    """A new request id the gateway keeps: no run of ten digits, which would look like a
    phone number and be replaced (a uuid's hex has one about once in ten)."""
    return "trace-" + secrets.token_hex(4)


def path(key: tuple[str, str]) -> str:
    return f"/v1/voice-connectors/{_q(key[0])}/proxy-sessions/{_q(key[1])}"


def one(spans: list[Span], kind: str) -> Span:
    [span] = spans_of(spans, kind)
    return span


def test_a_miss_continues_the_callers_trace_with_one_client_span(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    trace_id, caller_span, headers = parent()

    reply = traced.client.get(path(key), headers={**AUTH, **headers})

    assert reply.status_code == 200
    spans = receiver.trace(trace_id, 2)
    server, client = one(spans, "SERVER"), one(spans, "CLIENT")
    assert server.parent_span_id == caller_span
    assert server.name == f"GET {SESSION_ROUTE}"
    assert server.attributes["http.request.method"] == "GET"
    assert server.attributes["http.route"] == SESSION_ROUTE
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["proxy_gateway.cache.result"] == "miss"
    assert server.resource["service.name"] == "gateway-under-test"
    assert client.parent_span_id == server.span_id
    assert client.name == "ChimeSDKVoice/GetProxySession"
    assert client.attributes["rpc.system"] == "aws-api"
    assert client.attributes["rpc.service"] == "ChimeSDKVoice"
    assert client.attributes["rpc.method"] == "GetProxySession"
    assert client.attributes["proxy_gateway.upstream.attempt"] == 1
    assert client.attributes["http.response.status_code"] == 200
    assert client.attributes["aws.request_id"]
    assert client.status != 2


def test_a_hit_is_one_server_span_and_no_client_span(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    traced.client.get(path(key), headers=AUTH)
    trace_id, _, headers = parent()

    reply = traced.client.get(path(key), headers={**AUTH, **headers})

    assert reply.status_code == 200
    [server] = receiver.trace(trace_id, 1)
    assert server.kind == "SERVER"
    assert server.attributes["proxy_gateway.cache.result"] == "hit"


def test_without_a_traceparent_a_new_trace_starts(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    request_id = request_id_of_letters()

    traced.client.get(path(key), headers={**AUTH, "X-Request-Id": request_id})

    [record] = traced.wait_for_records(lambda r: r.get("request_id") == request_id)
    spans = receiver.trace(record["trace_id"], 2)
    assert one(spans, "SERVER").parent_span_id == ""


def test_each_retry_is_a_client_span_of_its_own(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    emulator.fault(*key, error="ThrottledClientException", times=1)
    trace_id, _, headers = parent()

    reply = traced.client.get(path(key), headers={**AUTH, **headers})

    assert reply.status_code == 200
    spans = receiver.trace(trace_id, 3)
    server = one(spans, "SERVER")
    first, second = sorted(
        spans_of(spans, "CLIENT"), key=lambda s: s.attributes["proxy_gateway.upstream.attempt"]
    )
    assert (first.parent_span_id, second.parent_span_id) == (server.span_id, server.span_id)
    assert first.attributes["error.type"] == "ThrottledClientException"
    assert first.attributes["http.response.status_code"] == 429
    assert first.status == 2
    assert second.attributes["proxy_gateway.upstream.attempt"] == 2
    assert "error.type" not in second.attributes


def test_a_5xx_names_the_contract_code_as_its_error_type(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    emulator.fault(*key, error="ServiceFailureException")
    trace_id, _, headers = parent()

    reply = traced.client.get(path(key), headers={**AUTH, **headers})

    code = reply.json()["code"]
    assert reply.status_code >= 500
    server = receiver.server_span(trace_id)
    assert server.attributes["error.type"] == code
    assert server.status == 2
    clients = [s for s in receiver.spans if s.trace_id == trace_id and s.kind == "CLIENT"]
    assert clients
    assert {s.attributes["error.type"] for s in clients} == {"ServiceFailureException"}


def test_requests_that_joined_a_call_link_to_its_client_span(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    emulator.fault(*key, delay=0.5, times=1)
    callers = [parent() for _ in range(4)]

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=traced.url, timeout=10) as client:
            return list(
                await asyncio.gather(
                    *(client.get(path(key), headers={**AUTH, **h}) for _, _, h in callers)
                )
            )

    replies = asyncio.run(together())

    assert {reply.status_code for reply in replies} == {200}
    assert emulator.calls(*key) == 1
    trace_ids = {trace_id for trace_id, _, _ in callers}
    spans = receiver.wait_for(
        lambda spans: sum(s.trace_id in trace_ids and s.kind == "SERVER" for s in spans) == 4
    )
    ours = [s for s in spans if s.trace_id in trace_ids]
    [client] = spans_of(ours, "CLIENT")
    servers = list(spans_of(ours, "SERVER"))
    leader = next(s for s in servers if s.span_id == client.parent_span_id)
    joined = [s for s in servers if s is not leader]
    assert len(joined) == 3
    for span in joined:
        assert span.attributes["proxy_gateway.cache.result"] == "coalesced"
        assert [(link.trace_id, link.span_id) for link in span.links] == [
            (client.trace_id, client.span_id)
        ]


def test_graphql_spans_name_the_operation(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    variables = {"vc": key[0], "ps": key[1]}
    traces = []
    for _ in range(2):  # the full path, then the response cache's fast path
        trace_id, _, headers = parent()
        reply = traced.graphql(NAME_QUERY, variables, headers={**AUTH, **headers})
        assert reply.json()["data"]["proxySession"]["name"] == "order-1234"
        traces.append(trace_id)

    for trace_id in traces:
        server = receiver.server_span(trace_id)
        assert server.name == "POST /graphql"
        assert server.attributes["http.route"] == "/graphql"
        assert server.attributes["graphql.operation.type"] == "query"
        assert server.attributes["graphql.operation.name"] == "Name"


def test_log_lines_carry_the_trace_and_span_ids(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    emulator.fault(*key, error="ThrottledClientException", times=1)  # a WARNING in the call
    trace_id, _, headers = parent()
    request_id = request_id_of_letters()

    traced.client.get(path(key), headers={**AUTH, **headers, "X-Request-Id": request_id})

    spans = receiver.trace(trace_id, 3)
    records = traced.wait_for_records(lambda r: r.get("trace_id") == trace_id, count=2)
    ids = {span.span_id for span in spans}
    assert {record["logger"] for record in records} >= {"app.access", "app.upstream.client"}
    for record in records:
        assert record["span_id"] in ids
    [access] = [r for r in records if r["logger"] == "app.access"]
    assert access["span_id"] == one(spans, "SERVER").span_id
    assert access["request_id"] == request_id


def test_nothing_sensitive_is_exported(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    _, _, headers = parent()
    traced.client.get(path(key), headers={**AUTH, **headers, "baggage": "user=+14155550100"})
    traced.graphql(NAME_QUERY, {"vc": key[0], "ps": key[1]}, headers=AUTH)
    receiver.wait_for(lambda spans: len(spans) >= 3)

    exported = b"".join(receiver.bodies)
    assert exported  # a real scan
    for secret in (TOKEN, "Bearer", "authorization", "14155550100", *PHONE_NUMBERS):
        assert secret.encode() not in exported, secret


def test_an_unreachable_collector_changes_no_answer(emulator: Emulator, tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    gateway = start_gateway(emulator.url, tmp_path / "stdout.log", traced_env(endpoint))
    try:
        key = new_key(emulator)
        replies = [gateway.client.get(path(key), headers=AUTH) for _ in range(20)]
        assert {reply.status_code for reply in replies} == {200}
    finally:
        stopping = time.monotonic()
        assert gateway.stop() == 0
        # The spans left are dropped after SHUTDOWN_SECONDS, not retried past a grace period.
        assert time.monotonic() - stopping < SHUTDOWN_SECONDS + 3


def test_an_unsupported_protocol_stops_the_process_saying_so(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = traced_env("http://127.0.0.1:4317", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    gateway = start_gateway(emulator.url, tmp_path / "stdout.log", env, wait=False)
    code = gateway.process.wait(timeout=30)
    output = (tmp_path / "stdout.log").read_text()

    assert code == 2
    assert "invalid tracing configuration: OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in output


def test_openmetrics_scrapes_carry_trace_exemplars_and_plain_text_does_not(
    traced: Gateway, receiver: Receiver, emulator: Emulator
) -> None:
    key = new_key(emulator)
    trace_id, _, headers = parent()
    traced.client.get(path(key), headers={**AUTH, **headers})
    server = receiver.server_span(trace_id)

    openmetrics = traced.client.get("/metrics", headers={"Accept": OPENMETRICS})
    plain = traced.client.get("/metrics")

    assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
    exemplar = f'# {{span_id="{server.span_id}",trace_id="{trace_id}"}}'
    lines = [line for line in openmetrics.text.splitlines() if exemplar in line]
    assert lines
    assert all(line.startswith("gateway_http_request_duration_seconds_bucket{") for line in lines)
    assert plain.headers["content-type"].startswith("text/plain")
    assert trace_id not in plain.text
    assert " # {" not in plain.text


def test_xray_headers_continue_the_trace_when_the_propagator_is_xray(
    emulator: Emulator, receiver: Receiver, tmp_path: Path
) -> None:
    env = traced_env(receiver.url, OTEL_PROPAGATORS="xray")
    gateway = start_gateway(emulator.url, tmp_path / "stdout.log", env)
    try:
        key = new_key(emulator)
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        amzn = f"Root=1-{trace_id[:8]}-{trace_id[8:]};Parent={span_id};Sampled=1"

        reply = gateway.client.get(path(key), headers={**AUTH, "X-Amzn-Trace-Id": amzn})

        assert reply.status_code == 200
        server = receiver.server_span(trace_id)
        assert server.parent_span_id == span_id
    finally:
        gateway.stop()
