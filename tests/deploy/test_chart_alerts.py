"""The alerts-and-dashboard scenario: every alert and panel, their PromQL checked against a
live gateway's /metrics."""

from __future__ import annotations

import json
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, get_args

from prometheus_client.parser import text_string_to_metric_families

from app.domain.errors import GatewayError
from app.domain.types import CacheResult
from tests.conftest import NAME_QUERY
from tests.deploy.chart import FULLNAME, NAMESPACE, Render, Rendered, merged, scenario
from tests.support.servers import Gateway

REST_ROUTE = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"
# Labels Prometheus adds to every series of a ServiceMonitor target.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "container", "endpoint"}

EXPECTED_ALERTS = {
    "ProxySessionGatewayHttpErrorRatioHigh",
    "ProxySessionGatewayUpstreamErrorRatioHigh",
    "ProxySessionGatewayUpstreamThrottled",
    "ProxySessionGatewayRestLatencyHigh",
    "ProxySessionGatewayCacheHitRatioLow",
    "ProxySessionGatewayServingStale",
    "ProxySessionGatewayDown",
}


def _rules(rendered: Rendered) -> list[dict[str, Any]]:
    groups = rendered.one("PrometheusRule")["spec"]["groups"]
    return [rule for group in groups for rule in group["rules"]]


def test_alerts_scenario_has_every_alert_labelled_and_explained(render: Render) -> None:
    rendered = render(scenario("alerts-and-dashboard"))
    rules = _rules(rendered)

    assert rendered.one("PrometheusRule")["apiVersion"] == "monitoring.coreos.com/v1"
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert re.fullmatch(r"\d+m", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["labels"]["team"] == "voice"
        assert rule["annotations"]["summary"]
        assert "{{ $labels.namespace }}" in rule["annotations"]["description"]
        assert rule["annotations"]["runbook_url"].startswith("https://runbooks.example.internal/")
        assert f'namespace="{NAMESPACE}",job="{FULLNAME}"' in rule["expr"]
    stale = next(r for r in rules if r["alert"] == "ProxySessionGatewayServingStale")
    assert stale["for"] == "10m"
    assert stale["expr"].endswith("> 0")


def test_alert_thresholds_and_switches_come_from_values(render: Render) -> None:
    values = merged(
        scenario("alerts-and-dashboard"),
        {
            "prometheusRule": {
                "alerts": {
                    "restLatencyP99": {"threshold": 2.5, "for": "15m", "severity": "critical"},
                    "servingStale": {"enabled": False},
                }
            }
        },
    )
    rules = {r["alert"]: r for r in _rules(render(values))}
    latency = rules["ProxySessionGatewayRestLatencyHigh"]

    assert "ProxySessionGatewayServingStale" not in rules
    assert latency["expr"].rstrip().endswith("> 2.5")
    assert (latency["for"], latency["labels"]["severity"]) == ("15m", "critical")


def _dashboard(rendered: Rendered) -> dict[str, Any]:
    configmap = rendered.one("ConfigMap", f"{FULLNAME}-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard: dict[str, Any] = json.loads(configmap["data"]["proxy-session-gateway.json"])
    return dashboard


def test_dashboard_scenario_has_the_panels(render: Render) -> None:
    dashboard = _dashboard(render(scenario("alerts-and-dashboard")))
    titles = {p["title"] for p in dashboard["panels"]}

    assert dashboard["uid"] == "proxy-session-gateway"
    assert titles >= {
        "Request rate by route",
        "5xx error rate by route",
        "Latency p50 / p99 by door",
        "Cache results by result",
        "Cache entries",
        "Upstream calls by outcome",
        "Upstream p99 latency",
        "In-flight requests",
    }
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        assert all(t["expr"] for t in panel["targets"])
        assert panel["datasource"]["uid"] == "${datasource}"


# --- PromQL against a live scrape ------------------------------------------------------------


@dataclass
class Exposed:
    """What a live gateway's /metrics shows: series names, their labels and label values."""

    names: set[str] = field(default_factory=set)
    labels: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    values: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))


def _scrape(gateway: Gateway) -> Exposed:
    # Traffic through both doors first, so every labelled series has samples: an unknown
    # session is a NotFound upstream call, and a GraphQL operation is counted by type.
    vc, ps = f"vc-{uuid.uuid4().hex[:12]}", f"ps-{uuid.uuid4().hex}"
    assert gateway.get_session(vc, ps).status_code == 404
    assert gateway.graphql(NAME_QUERY, {"vc": vc, "ps": ps}).status_code == 200
    text = gateway.client.get("/metrics").text
    exposed = Exposed()
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    # A family with no samples yet still prints its HELP and TYPE lines.
    for kind, name, metric_type in re.findall(r"^# (HELP|TYPE) (\S+) ?(\S*)", text, re.M):
        exposed.names.add(name)
        if kind == "TYPE":
            exposed.names.update(name + s for s in suffixes.get(metric_type, []))
    for family in text_string_to_metric_families(text):
        exposed.names.update(family.name + s for s in suffixes.get(family.type, [""]))
        for sample in family.samples:
            exposed.names.add(sample.name)
            exposed.labels[sample.name].update(sample.labels)
            for label, value in sample.labels.items():
                exposed.values[label].add(value)
    return exposed


def _expressions(render: Render) -> list[str]:
    rendered = render(scenario("alerts-and-dashboard"))
    dashboard = _dashboard(rendered)
    exprs = [rule["expr"] for rule in _rules(rendered)]
    exprs += [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return exprs


METRIC_SELECTOR = re.compile(r"\b(gateway_[a-z_]+)\s*\{")
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


def _matchers(expr: str) -> Iterator[tuple[str, str, str, str]]:
    """(metric, label, operator, value) for every matcher in a `gateway_…{…}` selector."""
    for selector in METRIC_SELECTOR.finditer(expr):
        position = selector.end()
        while match := MATCHER.match(expr, position):
            yield selector[1], match[1], match[2], match[3]
            position = match.end()
        assert expr[position:].lstrip().startswith("}"), expr


def _label_universe(exposed: Exposed) -> dict[str, set[str]]:
    """Every value the labels used in matchers can take."""

    def codes(cls: type[GatewayError]) -> set[str]:
        return {cls.code}.union(*(codes(sub) for sub in cls.__subclasses__()))

    return {
        "route": exposed.values["route"],
        "result": set(get_args(CacheResult)),
        "outcome": {"ok"} | codes(GatewayError),
        "status": {str(s.value) for s in HTTPStatus},
    }


def test_alerts_and_dashboard_use_only_exposed_metrics_and_labels(
    gateway: Gateway, render: Render
) -> None:
    exposed = _scrape(gateway)
    universe = _label_universe(exposed)
    exprs = _expressions(render)
    used = {name for expr in exprs for name in re.findall(r"\bgateway_[a-z_]+\b", expr)}
    labels_used: set[str] = set()

    assert used >= {
        "gateway_http_requests_total",
        "gateway_http_request_duration_seconds_bucket",
        "gateway_cache_results_total",
        "gateway_upstream_calls_total",
    }
    assert used <= exposed.names, used - exposed.names
    for expr in exprs:
        metrics = set(re.findall(r"\bgateway_[a-z_]+\b", expr))
        for metric, label, operator, value in _matchers(expr):
            labels_used.add(label)
            assert label in exposed.labels[metric] | TARGET_LABELS, (metric, label)
            if label not in universe:
                continue
            alternatives = [value] if operator in {"=", "!="} else value.split("|")
            for alternative in alternatives:
                if operator in {"=", "!="}:
                    fits = alternative in universe[label]
                else:
                    fits = any(re.fullmatch(alternative, v) for v in universe[label])
                assert fits, (label, operator, alternative)
        for grouping in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            known = set().union(*(exposed.labels[m] for m in metrics)) | TARGET_LABELS
            for label in (g.strip() for g in grouping.split(",")):
                assert label in known, (label, expr)
    assert labels_used >= {"route", "status", "outcome", "result"}
    assert REST_ROUTE in universe["route"]
    assert "/graphql" in universe["route"]
