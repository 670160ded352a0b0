"""Metrics, probes and logs, scraped and read as operators would."""

from __future__ import annotations

import re

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import NAME_QUERY, GatewayFactory, session_with
from tests.support.servers import Emulator, Gateway

PHONE = re.compile(r"\+?1?206555\d{4}|\+?1?425555\d{4}")


def _samples(gateway: Gateway) -> list[Sample]:
    reply = gateway.client.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return [s for f in text_string_to_metric_families(reply.text) for s in f.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_probes_answer(gateway: Gateway) -> None:
    assert gateway.client.get("/healthz").json() == {"status": "ok"}
    assert gateway.client.get("/readyz").json() == {"status": "ok"}


def test_metrics_count_requests_cache_and_upstream_by_bounded_labels(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    route = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"
    before = _samples(gateway)
    emulator.fault(*seeded, error="ThrottledClientException", times=1)

    gateway.get_session(*seeded)
    gateway.get_session(*seeded)
    gateway.get_session(seeded[0], "missing-" + seeded[1])
    gateway.graphql(
        NAME_QUERY,
        {"vc": seeded[0], "ps": seeded[1]},
    )
    after = _samples(gateway)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert delta("gateway_http_requests_total", route=route, method="GET", status="200") == 2
    assert delta("gateway_http_requests_total", route=route, method="GET", status="404") == 1
    assert delta("gateway_http_requests_total", route="/graphql", method="POST", status="200") == 1
    assert delta("gateway_http_request_duration_seconds_count", route=route, status="200") == 2
    assert delta("gateway_cache_results_total", result="miss") == 2
    assert delta("gateway_cache_results_total", result="hit") == 2
    assert delta("gateway_upstream_calls_total", outcome="ok") == 1
    assert (
        delta(
            "gateway_upstream_calls_total",
            outcome="THROTTLED",
            aws_error_code="ThrottledClientException",
        )
        == 1
    )
    assert (
        delta(
            "gateway_upstream_calls_total", outcome="NOT_FOUND", aws_error_code="NotFoundException"
        )
        == 1
    )
    assert delta("gateway_upstream_call_duration_seconds_count", outcome="ok") == 1
    assert delta("gateway_graphql_operations_total", operation_type="query", outcome="ok") == 1
    assert _value(after, "gateway_cache_entries") >= 2
    assert _value(after, "gateway_http_requests_in_flight") == 1  # the scrape itself
    [build] = [s for s in after if s.name == "gateway_build_info"]
    assert build.labels["version"]
    assert build.value == 1


def test_an_attempt_cut_by_the_deadline_is_counted_as_a_timeout(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(upstream_timeout_seconds=0.5)
    before = _samples(gateway)
    emulator.fault(*seeded, delay=2)

    assert gateway.get_session(*seeded).status_code == 504

    after = _samples(gateway)
    timeouts = [
        _value(samples, "gateway_upstream_calls_total", outcome="UPSTREAM_TIMEOUT")
        for samples in (before, after)
    ]
    assert timeouts[1] - timeouts[0] == 1


def test_no_label_holds_an_id_a_phone_number_or_a_raw_path(
    gateway: Gateway, emulator: Emulator, key: tuple[str, str]
) -> None:
    emulator.seed(*key, session_with())
    gateway.get_session(*key)
    gateway.get_session(key[0], "unknown-" + key[1])
    gateway.client.get(f"/some/raw/path/{key[1]}")
    emulator.fault(*key, error="WeirdNewException", status=500)
    gateway.get_session(*key, headers={"Cache-Control": "no-cache"})

    labels = {value for s in _samples(gateway) for value in s.labels.values()}

    assert not [v for v in labels if key[0] in v or key[1] in v]
    assert not [v for v in labels if PHONE.search(v)]
    assert not [
        v
        for v in labels
        if v.startswith("/")
        and "{" not in v
        # Fixed routes (the developer pages among them, which other tests may have used).
        and v not in {"/graphql", "/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"}
    ]
    assert "WeirdNewException" not in labels  # unknown AWS codes fold into "other"


def test_every_log_line_is_json_with_an_access_line_per_request(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    gateway.get_session(*seeded, headers={"X-Request-ID": "log-check-1"})
    gateway.get_session(*seeded, headers={"X-Request-ID": "log-check-2"})

    access = gateway.wait_for_records(
        lambda r: r.get("request_id") in {"log-check-1", "log-check-2"}, count=2
    )
    gateway.log_records()  # raises if any line is not JSON
    assert [r["logger"] for r in access] == ["app.access", "app.access"]
    assert (
        access[0]["route"]
        == "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"
    )
    assert [r["cache"] for r in access] == ["miss", "hit"]
    assert all(r["status"] == 200 and r["duration_ms"] >= 0 for r in access)
    assert all(seeded[1] not in r["message"] for r in access)


def test_phone_numbers_never_reach_the_logs_even_at_debug(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(log_level="DEBUG")
    gateway.get_session(*seeded)
    gateway.get_session(*seeded, headers={"Cache-Control": "no-cache"})
    gateway.graphql(
        "query($vc: ID!, $ps: ID!) { proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
        " { participants { phoneNumber proxyPhoneNumber } } }",
        {"vc": seeded[0], "ps": seeded[1]},
    )
    emulator.fault(*seeded, raw_status=500, raw_body='{"Message": "+12065550100 broke"}')
    gateway.get_session(*seeded, headers={"Cache-Control": "no-cache"})

    lines = gateway.settled_log_lines()

    assert any('"level":"DEBUG"' in line for line in lines)
    assert not [line for line in lines if PHONE.search(line)]
    assert not [line for line in lines if "testing" in line]  # the AWS secret key


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probe_routes_are_labelled_by_template(gateway: Gateway, path: str) -> None:
    gateway.client.get(path)

    routes = {s.labels.get("route") for s in _samples(gateway)}

    assert path in routes


def test_an_unusual_method_still_gets_its_access_line(gateway_factory: GatewayFactory) -> None:
    gateway = gateway_factory(log_level="INFO")  # a log of its own, read whole below

    reply = gateway.client.request("PROPFIND", "/healthz", headers={"X-Request-ID": "odd-1"})

    access = gateway.wait_for_records(lambda r: r.get("request_id") == "odd-1")
    assert reply.status_code == 405
    assert [(r["logger"], r["message"], r["method"]) for r in access] == [
        ("app.access", "PROPFIND /healthz 405", "PROPFIND")
    ]
    gateway.settled_log_lines()
    assert not [r for r in gateway.log_records() if r["level"] == "ERROR"]
