"""The Helm chart, rendered offline with the Helm SDK: lint, manifests, schema, alerts, checkov."""

from __future__ import annotations

import json
import os
import re
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Protocol, get_args

import helm_python as helm
import pytest
import yaml  # type: ignore[import-untyped]
from prometheus_client.parser import text_string_to_metric_families

from app.domain.errors import GatewayError
from app.domain.types import CacheResult
from app.settings import Settings
from tests.conftest import NAME_QUERY
from tests.support.servers import ROOT, Gateway

CHART = ROOT / "deploy" / "helm" / "proxy-session-gateway"
SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in sorted(CHART.glob("ci/*-values.yaml"))}
CASES = ["defaults", *SCENARIOS]
RELEASE = "gw"
NAMESPACE = "voice"
FULLNAME = f"{RELEASE}-proxy-session-gateway"
KUBE_VERSION = "v1.30.0"
CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"
REST_ROUTE = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"

SELECTOR_LABELS = {
    "app.kubernetes.io/name": "proxy-session-gateway",
    "app.kubernetes.io/instance": RELEASE,
}
POD_SECURITY = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "fsGroup": 10001,
    "seccompProfile": {"type": "RuntimeDefault"},
}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "capabilities": {"drop": ["ALL"]},
}
# Settings the chart sets through their own values rather than `config`.
NOT_IN_CONFIG = {"auth_tokens", "auth_tokens_file", "aws_region"}
# Labels Prometheus adds to every series of a ServiceMonitor target.
TARGET_LABELS = {"namespace", "job", "pod", "instance", "service", "container", "endpoint"}
OPT_IN_KINDS = {"ServiceMonitor", "NetworkPolicy", "Ingress", "PrometheusRule"}

Manifest = dict[str, Any]


@dataclass
class Rendered:
    """A release rendered offline: the template outputs and the manifests parsed from them."""

    files: dict[str, str]
    manifests: list[Manifest] = field(init=False)

    def __post_init__(self) -> None:
        self.manifests = [
            doc
            for path, text in sorted(self.files.items())
            if path.endswith(".yaml")
            for doc in yaml.safe_load_all(text)
            if doc
        ]

    @property
    def text(self) -> str:
        """Everything rendered, NOTES.txt included."""
        return "\n".join(self.files.values())

    @property
    def notes(self) -> str:
        """The rendered NOTES.txt."""
        return next(text for path, text in self.files.items() if path.endswith("NOTES.txt"))

    def all(self, kind: str) -> list[Manifest]:
        """Every manifest of this kind."""
        return [m for m in self.manifests if m["kind"] == kind]

    def one(self, kind: str, name: str = FULLNAME) -> Manifest:
        """The manifest of this kind and name."""
        found = [m for m in self.all(kind) if m["metadata"]["name"] == name]
        assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
        return found[0]

    @property
    def kinds(self) -> set[str]:
        """The kinds rendered."""
        return {m["kind"] for m in self.manifests}

    @property
    def pod(self) -> dict[str, Any]:
        """The Deployment's pod spec."""
        spec: dict[str, Any] = self.one("Deployment")["spec"]["template"]["spec"]
        return spec

    @property
    def container(self) -> dict[str, Any]:
        """The gateway container."""
        containers: list[dict[str, Any]] = self.pod["containers"]
        assert [c["name"] for c in containers] == ["gateway"]
        return containers[0]

    @property
    def env(self) -> dict[str, Any]:
        """The container's `env` entries by name."""
        return {e["name"]: e for e in self.container.get("env", [])}

    @property
    def config(self) -> dict[str, str]:
        """The data of the ConfigMap the container loads with envFrom."""
        refs = [e["configMapRef"]["name"] for e in self.container["envFrom"] if "configMapRef" in e]
        assert len(refs) == 1
        data: dict[str, str] = self.one("ConfigMap", refs[0]).get("data") or {}
        return data

    @property
    def test_pod(self) -> Manifest:
        """The `helm test` Pod."""
        return self.one("Pod", f"{FULLNAME}-test-connection")


class Render(Protocol):
    """Renders the release with the given values (the chart's defaults for the rest)."""

    def __call__(self, values: Mapping[str, Any] | None = None) -> Rendered: ...


def scenario(name: str) -> dict[str, Any]:
    """The values of a ci/ scenario ("defaults": none)."""
    if name == "defaults":
        return {}
    values: dict[str, Any] = yaml.safe_load(SCENARIOS[name].read_text(encoding="utf-8"))
    return values


def merged(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Values layered like repeated `-f` flags: maps merge deeply, the last layer wins."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = merged(out[key], value)
            else:
                out[key] = json.loads(json.dumps(value))
    return out


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    """The chart, loaded once."""
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def render(chart: helm.Chart) -> Render:
    """Render the chart as `helm install gw -n voice` would, with the given values."""

    def _render(values: Mapping[str, Any] | None = None) -> Rendered:
        files = chart.render(
            merged(values or {}), name=RELEASE, namespace=NAMESPACE, is_install=True
        )
        return Rendered(files)

    return _render


# --- the chart's files --------------------------------------------------------------------


def test_chart_yaml_follows_the_conventions(chart: helm.Chart) -> None:
    meta = chart.metadata

    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "proxy-session-gateway"
    assert meta["type"] == "application"
    assert meta["version"] == "0.1.0"
    assert meta["appVersion"] == "0.1.0"
    assert meta["kubeVersion"] == ">=1.25.0-0"
    assert meta["description"]
    assert meta["maintainers"]
    assert meta["keywords"]


def test_one_ci_scenario_per_feature() -> None:
    assert set(SCENARIOS) >= {
        "servicemonitor",
        "networkpolicy",
        "ingress",
        "existing-secret",
        "irsa",
        "no-autoscaling",
        "alerts-and-dashboard",
    }


def test_values_yaml_has_the_schema_modeline_and_a_comment_above_every_key() -> None:
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    key = re.compile(r"^\s*(- )?[A-Za-z_][\w./-]*:(\s|$)")
    undocumented = [
        line
        for n, line in enumerate(lines)
        if key.match(line) and not lines[n - 1].strip().removeprefix("- ").startswith("#")
    ]

    assert lines[0] == "# yaml-language-server: $schema=values.schema.json"
    assert not undocumented


def test_schema_is_draft_07_with_descriptions_and_closed_objects(chart: helm.Chart) -> None:
    schema = chart.schema
    assert schema is not None
    missing: list[str] = []

    def walk(node: Mapping[str, Any], path: str) -> None:
        for name, sub in node.get("properties", {}).items():
            if "description" not in sub:
                missing.append(f"{path}.{name}")
            walk(sub, f"{path}.{name}")

    walk(schema, "")

    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert schema["additionalProperties"] is False
    assert set(schema["properties"]) >= set(chart.values)
    assert not missing
    for closed in ("image", "service", "auth", "aws", "autoscaling", "serviceMonitor"):
        assert schema["properties"][closed]["additionalProperties"] is False, closed
    enums = {
        "pullPolicy": schema["properties"]["image"]["properties"]["pullPolicy"],
        "service type": schema["properties"]["service"]["properties"]["type"],
        "log level": schema["properties"]["config"]["properties"]["GATEWAY_LOG_LEVEL"],
    }
    assert all("enum" in e for e in enums.values())


# --- lint and render every scenario ----------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_strict_lint_is_clean(case: str) -> None:
    report = helm.lint(CHART, scenario(case), strict=True, kube_version=KUBE_VERSION)

    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems
    assert not report["errors"]


@pytest.mark.parametrize("case", CASES)
def test_every_manifest_is_labelled_and_namespaced(render: Render, case: str) -> None:
    rendered = render(scenario(case))

    assert rendered.manifests
    for m in rendered.manifests:
        labels = m["metadata"]["labels"]
        assert labels["helm.sh/chart"] == "proxy-session-gateway-0.1.0"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert m["metadata"]["namespace"] == NAMESPACE
    assert "Secret" not in rendered.kinds  # secrets are always created outside the chart


@pytest.mark.parametrize("case", CASES)
def test_pod_and_container_are_locked_down(render: Render, case: str) -> None:
    rendered = render(scenario(case))
    pod, container = rendered.pod, rendered.container

    assert pod["securityContext"] == pod["securityContext"] | POD_SECURITY
    assert container["securityContext"] == container["securityContext"] | CONTAINER_SECURITY
    assert "privileged" not in container["securityContext"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["enableServiceLinks"] is False
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert container["image"] == "proxy-session-gateway:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"


@pytest.mark.parametrize("case", CASES)
def test_probes_port_resources_and_tmp(render: Render, case: str) -> None:
    rendered = render(scenario(case))
    container, pod = rendered.container, rendered.pod
    service = rendered.one("Service")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}

    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    for probe, path in (
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ):
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert container["resources"]["limits"]["memory"]
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


@pytest.mark.parametrize("case", CASES)
def test_selectors_are_the_stable_labels_only(render: Render, case: str) -> None:
    rendered = render(scenario(case))
    deployment = rendered.one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = [
        deployment["spec"]["selector"]["matchLabels"],
        rendered.one("Service")["spec"]["selector"],
        *(p["spec"]["selector"]["matchLabels"] for p in rendered.all("PodDisruptionBudget")),
        *(n["spec"]["podSelector"]["matchLabels"] for n in rendered.all("NetworkPolicy")),
        *(s["spec"]["selector"]["matchLabels"] for s in rendered.all("ServiceMonitor")),
        *(t["labelSelector"]["matchLabels"] for t in rendered.pod["topologySpreadConstraints"]),
    ]

    for selector in selectors:
        assert selector == SELECTOR_LABELS
    assert pod_labels.items() >= SELECTOR_LABELS.items()
    for hpa in rendered.all("HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
    # The test Pod must never receive the Service's traffic.
    test_labels = rendered.test_pod["metadata"]["labels"]
    assert not test_labels.items() >= SELECTOR_LABELS.items()


@pytest.mark.parametrize("case", CASES)
def test_shutdown_fits_in_the_grace_period(render: Render, case: str) -> None:
    rendered = render(scenario(case))
    pre_stop = rendered.container["lifecycle"]["preStop"]["exec"]["command"]
    defaults = Settings.model_fields
    drain = float(
        rendered.config.get(
            "GATEWAY_SHUTDOWN_DRAIN_SECONDS", defaults["shutdown_drain_seconds"].default
        )
    )
    grace = float(
        rendered.config.get(
            "GATEWAY_SHUTDOWN_GRACE_SECONDS", defaults["shutdown_grace_seconds"].default
        )
    )

    assert pre_stop == ["sleep", "5"]
    assert rendered.pod["terminationGracePeriodSeconds"] > float(pre_stop[1]) + drain + grace


def test_the_chart_refuses_a_grace_period_the_shutdown_does_not_fit_in(render: Render) -> None:
    fields = Settings.model_fields
    # With the settings unset, the chart must assume the gateway's own defaults.
    unset = {"GATEWAY_SHUTDOWN_DRAIN_SECONDS": None, "GATEWAY_SHUTDOWN_GRACE_SECONDS": None}
    needed = 5 + fields["shutdown_drain_seconds"].default + fields["shutdown_grace_seconds"].default

    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"config": unset, "terminationGracePeriodSeconds": int(needed)})
    with pytest.raises(helm.HelmRenderError, match="terminationGracePeriodSeconds"):
        render({"config": {"GATEWAY_SHUTDOWN_GRACE_SECONDS": "35"}})
    rendered = render({"config": unset, "terminationGracePeriodSeconds": int(needed) + 1})
    assert "GATEWAY_SHUTDOWN_DRAIN_SECONDS" not in rendered.config


def test_the_chart_refuses_a_port_setting_the_probes_would_miss(render: Render) -> None:
    with pytest.raises(helm.HelmRenderError, match="GATEWAY_PORT"):
        render({"config": {"GATEWAY_PORT": "9090"}})


# --- settings -------------------------------------------------------------------------------


def _settings_variables() -> list[str]:
    fields = Settings.model_fields
    assert set(fields) >= NOT_IN_CONFIG
    return [f"GATEWAY_{name.upper()}" for name in fields if name not in NOT_IN_CONFIG]


def _distinct_values(names: list[str]) -> dict[str, str]:
    """A value per setting, all different from each other and from the defaults."""
    special = {
        "GATEWAY_LOG_LEVEL": "DEBUG",
        "GATEWAY_HOST": "::",
        "GATEWAY_PORT": "18080",
        "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "6",
        "GATEWAY_SHUTDOWN_GRACE_SECONDS": "21",
        "GATEWAY_GRAPHQL_INTROSPECTION": "true",
        "GATEWAY_GRAPHIQL": "true",
    }
    return {name: special.get(name, str(1001 + n)) for n, name in enumerate(names)}


def test_every_setting_reaches_the_container_through_config(render: Render) -> None:
    config = _distinct_values(_settings_variables())
    rendered = render({"config": config, "service": {"targetPort": 18080}})

    assert rendered.config == config
    assert not set(rendered.env) & set(config)  # nothing in `env` overrides envFrom
    assert rendered.container["ports"][0]["containerPort"] == 18080


def test_the_default_config_is_accepted_by_the_gateway(
    render: Render, monkeypatch: pytest.MonkeyPatch
) -> None:
    rendered = render(scenario("irsa") | {"auth": {"existingSecret": ""}})
    literal = {name: e["value"] for name, e in rendered.env.items() if "value" in e}
    for name in [n for n in os.environ if n.startswith(("GATEWAY_", "AWS_"))]:
        monkeypatch.delenv(name)
    for name, value in (rendered.config | literal).items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.port == rendered.container["ports"][0]["containerPort"]
    assert settings.aws_region == "us-east-1"
    assert settings.log_level == "INFO"
    assert not settings.graphiql
    assert not settings.graphql_introspection


def test_a_future_setting_needs_no_chart_change(render: Render) -> None:
    rendered = render({"config": {"GATEWAY_GRAPHQL_MAX_DEPTH": "8"}})

    assert rendered.config["GATEWAY_GRAPHQL_MAX_DEPTH"] == "8"


def test_a_config_change_rolls_the_pods_and_nothing_else_does(render: Render) -> None:
    def checksum(values: dict[str, Any]) -> str:
        annotations = render(values).one("Deployment")["spec"]["template"]["metadata"]
        value: str = annotations["annotations"]["checksum/config"]
        return value

    base = checksum({})

    assert re.fullmatch(r"[0-9a-f]{64}", base)
    assert checksum({"config": {"GATEWAY_LOG_LEVEL": "DEBUG"}}) != base
    assert checksum({"config": {"GATEWAY_CACHE_TTL_SECONDS": "60"}}) != base
    assert checksum({"autoscaling": {"minReplicas": 3}}) == base


# --- secrets --------------------------------------------------------------------------------


def test_tokens_are_a_read_only_file_from_the_existing_secret(render: Render) -> None:
    rendered = render(scenario("existing-secret"))
    container, pod = rendered.container, rendered.pod
    volumes = [v for v in pod["volumes"] if "secret" in v]
    mounts = [m for m in container["volumeMounts"] if m["name"] == volumes[0]["name"]]

    assert len(volumes) == 1
    assert volumes[0]["secret"]["secretName"] == "gateway-tokens"
    assert volumes[0]["secret"]["items"] == [{"key": "tokens", "path": "tokens"}]
    assert mounts == [
        {"name": volumes[0]["name"], "mountPath": "/var/run/secrets/gateway", "readOnly": True}
    ]
    assert rendered.env["GATEWAY_AUTH_TOKENS_FILE"] == {
        "name": "GATEWAY_AUTH_TOKENS_FILE",
        "value": "/var/run/secrets/gateway/tokens",
    }
    assert {"secretRef": {"name": "gateway-aws-credentials"}} in container["envFrom"]
    assert "GATEWAY_AUTH_TOKENS_FILE" not in rendered.config


@pytest.mark.parametrize("case", CASES)
def test_no_token_variable_or_aws_key_is_ever_rendered(render: Render, case: str) -> None:
    text = render(scenario(case)).text

    assert not re.search(r"GATEWAY_AUTH_TOKENS(?!_FILE)", text)
    assert "AWS_SECRET_ACCESS_KEY" not in text
    assert "AWS_ACCESS_KEY_ID" not in text


def test_without_auth_secret_nothing_is_mounted_and_notes_warn(render: Render) -> None:
    rendered = render()

    assert "GATEWAY_AUTH_TOKENS_FILE" not in rendered.env
    assert [v["name"] for v in rendered.pod["volumes"]] == ["tmp"]
    assert "authentication is OFF" in rendered.notes
    assert "aws.region is empty" in rendered.notes
    assert "WARNING" not in render(scenario("irsa")).notes


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"GATEWAY_AUTH_TOKENS": "s3cret-token"}},
        {"config": {"GATEWAY_AUTH_TOKENS_FILE": "/tmp/tokens"}},
        {"extraEnv": [{"name": "GATEWAY_AUTH_TOKENS", "value": "s3cret-token"}]},
        {"extraEnv": [{"name": "AWS_SECRET_ACCESS_KEY", "value": "s3cret-key"}]},
        {"config": {"AWS_REGION": "us-east-1"}},
        {"config": {"gateway_log_level": "INFO"}},
        {"config": {"GATEWAY_CACHE_TTL_SECONDS": 30}},
        {"config": {"GATEWAY_LOG_LEVEL": "TRACE"}},
        {"awsAccessKeyId": "AKIA"},
        {"image": {"pullPolicy": "Sometimes"}},
        {"image": {"digest": "latest"}},
        {"service": {"type": "ExternalName"}},
        {"auth": {"token": "s3cret-token"}},
    ],
    ids=lambda v: json.dumps(v)[:60],
)
def test_schema_rejects(chart: helm.Chart, render: Render, values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        render(values)


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"GATEWAY_GRAPHQL_MAX_DEPTH": "8"}},
        {"extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]},
        {
            "extraEnv": [
                {
                    "name": "AWS_SECRET_ACCESS_KEY",
                    "valueFrom": {"secretKeyRef": {"name": "aws", "key": "secret"}},
                }
            ]
        },
        {"image": {"digest": "sha256:" + "a" * 64}},
    ],
    ids=lambda v: json.dumps(v)[:60],
)
def test_schema_accepts(chart: helm.Chart, values: dict[str, Any]) -> None:
    chart.validate_schema(values)


def test_a_digest_pins_the_image(render: Render) -> None:
    digest = "sha256:" + "b" * 64
    rendered = render({"image": {"digest": digest, "tag": "ignored"}})

    assert rendered.container["image"] == f"proxy-session-gateway@{digest}"
    assert rendered.test_pod["spec"]["containers"][0]["image"] == rendered.container["image"]


# --- what is on by default, and each opt-in -----------------------------------------------------


def test_defaults_autoscale_and_keep_a_disruption_budget_only(render: Render) -> None:
    rendered = render()
    hpa = rendered.one("HorizontalPodAutoscaler")
    pdb = rendered.one("PodDisruptionBudget")

    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 10
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 70},
            },
        }
    ]
    assert "replicas" not in rendered.one("Deployment")["spec"]
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["spec"]["maxUnavailable"] == 1
    assert not rendered.kinds & OPT_IN_KINDS
    assert [c["metadata"]["name"] for c in rendered.all("ConfigMap")] == [FULLNAME]


def test_topology_spread_across_nodes_and_zones(render: Render) -> None:
    spread = render().pod["topologySpreadConstraints"]

    assert [(t["topologyKey"], t["whenUnsatisfiable"], t["maxSkew"]) for t in spread] == [
        ("kubernetes.io/hostname", "ScheduleAnyway", 1),
        ("topology.kubernetes.io/zone", "ScheduleAnyway", 1),
    ]


def test_no_autoscaling_scenario_fixes_replicas_and_keeps_the_pdb(render: Render) -> None:
    rendered = render(scenario("no-autoscaling"))

    assert "HorizontalPodAutoscaler" not in rendered.kinds
    assert rendered.one("Deployment")["spec"]["replicas"] == 3
    assert rendered.one("PodDisruptionBudget")


def test_irsa_annotation_lands_on_the_service_account(render: Render) -> None:
    rendered = render(scenario("irsa"))
    account = rendered.one("ServiceAccount")

    assert account["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/proxy-session-gateway"
    }
    assert account["automountServiceAccountToken"] is False
    assert rendered.pod["serviceAccountName"] == account["metadata"]["name"]
    assert rendered.env["AWS_REGION"] == {"name": "AWS_REGION", "value": "us-east-1"}
    assert "AWS_ENDPOINT_URL_CHIME_SDK_VOICE" not in rendered.env


def test_endpoint_override_is_opt_in(render: Render) -> None:
    rendered = render({"aws": {"endpointUrl": "http://emulator:4566"}})

    assert rendered.env["AWS_ENDPOINT_URL_CHIME_SDK_VOICE"]["value"] == "http://emulator:4566"
    assert "does not call" in rendered.notes


def test_servicemonitor_scenario(render: Render) -> None:
    rendered = render(scenario("servicemonitor"))
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["endpoints"] == [
        {
            "port": "http",
            "path": "/metrics",
            "scheme": "http",
            "interval": "15s",
            "scrapeTimeout": "5s",
        }
    ]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert (
        service["metadata"]["labels"].items() >= monitor["spec"]["selector"]["matchLabels"].items()
    )
    assert {p["name"] for p in service["spec"]["ports"]} == {"http"}


def test_networkpolicy_scenario(render: Render) -> None:
    values = scenario("networkpolicy")
    policy = render(values).one("NetworkPolicy")
    spec = policy["spec"]
    sources = spec["ingress"][0]["from"]
    egress_ports = {(p["port"], p["protocol"]) for rule in spec["egress"] for p in rule["ports"]}

    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert {
        "namespaceSelector": {"matchLabels": {"proxy-session-gateway/access": "true"}}
    } in sources
    assert {"podSelector": {"matchLabels": {"app.kubernetes.io/instance": RELEASE}}} in sources
    for rule in spec["ingress"]:
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert egress_ports == {(53, "UDP"), (53, "TCP"), (443, "TCP")}
    assert all("to" not in rule for rule in spec["egress"])


def test_ingress_scenario(render: Render) -> None:
    ingress = render(scenario("ingress")).one("Ingress")
    spec = ingress["spec"]

    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [
        {"hosts": ["proxy-sessions.example.internal"], "secretName": "proxy-sessions-tls"}
    ]
    assert spec["rules"] == [
        {
            "host": "proxy-sessions.example.internal",
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": FULLNAME, "port": {"name": "http"}}},
                    }
                ]
            },
        }
    ]


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


def test_the_test_pod_uses_the_gateway_image_with_the_same_lockdown(render: Render) -> None:
    rendered = render()
    pod = rendered.test_pod
    (container,) = pod["spec"]["containers"]

    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert container["image"] == rendered.container["image"]
    assert container["securityContext"] == rendered.container["securityContext"]
    assert pod["spec"]["securityContext"] == rendered.pod["securityContext"]
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["restartPolicy"] == "Never"
    assert container["command"][:2] == ["python", "-c"]
    assert f"http://{FULLNAME}:80/readyz" in container["command"][2]
    compile(container["command"][2], "test-connection", "exec")


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


# --- checkov ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Skip:
    """One entry of checkov-skips.yaml."""

    id: str
    reason: str
    resource: str | None
    fixed_by: dict[str, Any] | None


SKIPS = [
    Skip(s["id"], s["reason"], s.get("resource"), s.get("fixedBy"))
    for s in yaml.safe_load((CHART / "checkov-skips.yaml").read_text(encoding="utf-8"))["skips"]
]


@dataclass
class Scan:
    """One checkov run over a rendered release."""

    manifests: int
    summary: dict[str, Any]
    failed: list[tuple[str, str]]
    passed: set[str]


def _checkov(rendered: Rendered, folder: Path, skip: list[str], *, quiet: bool = True) -> Scan:
    """Scan the release's manifests, one file each; `quiet` leaves passed checks out."""
    folder.mkdir()
    for n, manifest in enumerate(rendered.manifests):
        name = f"{n:02d}-{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        (folder / name).write_text(yaml.safe_dump(manifest), encoding="utf-8")
    command = [str(CHECKOV), "--framework", "kubernetes", "--skip-download"]
    command += ["--quiet"] if quiet else []
    command += ["--compact", "-o", "json", "-d", str(folder)]
    if skip:
        command += ["--skip-check", ",".join(sorted(set(skip)))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode in {0, 1}, result.stderr
    report = json.loads(result.stdout)
    results = report["results"]
    return Scan(
        len(rendered.manifests),
        report["summary"],
        [(c["check_id"], c["resource"]) for c in results["failed_checks"]],
        {c["check_id"] for c in results.get("passed_checks", [])},
    )


def _excused(check: str, resource: str) -> bool:
    """Whether a scoped entry of the skip list excuses this failure."""
    return any(s.id == check and s.resource and re.search(s.resource, resource) for s in SKIPS)


@pytest.fixture(scope="module")
def scans(render: Render, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Scan]:
    """checkov over the defaults, and over a hardened release: the NetworkPolicy scenario
    plus every `fixedBy` of the skip list, with those checks no longer skipped."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install`")
    root = tmp_path_factory.mktemp("checkov")
    global_skips = [s for s in SKIPS if not s.resource]
    hardened = merged(scenario("networkpolicy"), *(s.fixed_by for s in SKIPS if s.fixed_by))
    return {
        "defaults": _checkov(render(), root / "defaults", [s.id for s in global_skips]),
        "hardened": _checkov(
            render(hardened),
            root / "hardened",
            [s.id for s in global_skips if not s.fixed_by],
            quiet=False,
        ),
    }


def test_checkov_skips_are_few_and_justified() -> None:
    assert len({s.id for s in SKIPS}) <= 6
    for skip in SKIPS:
        assert re.fullmatch(r"CKV2?_K8S_\d+", skip.id)
        assert len(skip.reason) > 40, skip.id


@pytest.mark.parametrize("run", ["defaults", "hardened"])
def test_checkov_finds_nothing_unexcused(scans: dict[str, Scan], run: str) -> None:
    scan = scans[run]

    assert scan.summary["parsing_errors"] == 0
    assert scan.summary["resource_count"] >= scan.manifests
    assert scan.summary["passed"] > 100
    assert [f for f in scan.failed if not _excused(*f)] == []


def test_checkov_fixed_by_values_really_fix_their_check(scans: dict[str, Scan]) -> None:
    fixed = {s.id for s in SKIPS if s.fixed_by and not s.resource}
    hardened = scans["hardened"]

    assert fixed <= hardened.passed
    assert [f for f in hardened.failed if f[0] in fixed and not _excused(*f)] == []


def test_every_scoped_checkov_skip_still_excuses_something(scans: dict[str, Scan]) -> None:
    failed = [f for scan in scans.values() for f in scan.failed]

    for skip in (s for s in SKIPS if s.resource):
        assert any(c == skip.id and re.search(str(skip.resource), r) for c, r in failed), skip.id
