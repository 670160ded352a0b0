"""The chart's metadata, strict lint, and the workload rendered in every scenario: labels,
probes, selectors, shutdown, image."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from app.settings import Settings
from tests.deploy.chart import CASES, CHART, NAMESPACE, RELEASE, Render, merged, scenario

KUBE_VERSION = "v1.30.0"
SELECTOR_LABELS = {
    "app.kubernetes.io/name": "proxy-session-gateway",
    "app.kubernetes.io/instance": RELEASE,
}


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


def test_the_chart_refuses_fleet_mode_without_a_secret(render: Render) -> None:
    with pytest.raises(
        helm.HelmRenderError,
        match=r"sharedCache\.existingSecret is required when sharedCache\.enabled is true",
    ):
        render({"sharedCache": {"enabled": True}})
    # Off, the empty name is fine.
    assert "GATEWAY_REDIS_URL" not in render({"sharedCache": {"enabled": False}}).env


def test_the_chart_refuses_two_secrets_on_one_mount_path(render: Render) -> None:
    values = {
        "auth": {"existingSecret": "gateway-tokens", "mountPath": "/var/run/secrets/gw"},
        "sharedCache": {
            "enabled": True,
            "existingSecret": "gateway-shared-cache",
            "mountPath": "/var/run/secrets/gw/",
        },
    }

    with pytest.raises(helm.HelmRenderError, match=r"sharedCache\.mountPath .* auth\.mountPath"):
        render(values)


@pytest.mark.parametrize(
    ("values", "other"),
    [
        ({"sharedCache": {"caMountPath": "/var/run/secrets/shared-cache/"}}, "sharedCache"),
        ({"sharedCache": {"caMountPath": "/var/run/secrets/gateway"}}, "auth"),
    ],
    ids=["shared-cache", "auth"],
)
def test_the_chart_refuses_the_ca_on_another_secret_s_mount_path(
    render: Render, values: dict[str, Any], other: str
) -> None:
    fleet = {"enabled": True, "existingSecret": "gateway-shared-cache", "caSecret": "valkey-ca"}
    auth = {"auth": {"existingSecret": "gateway-tokens"}}

    with pytest.raises(
        helm.HelmRenderError, match=rf"sharedCache\.caMountPath .* {other}\.mountPath"
    ):
        render(merged(auth, {"sharedCache": fleet}, values))
    # Without the CA Secret, or once that other Secret is not mounted, the path is free.
    render(merged(auth, {"sharedCache": fleet | {"caSecret": ""}}, values))
    if other == "sharedCache":
        keys = {"passwordInSecret": False, "encryptionKeysInSecret": False}
        render(merged(auth, {"sharedCache": fleet | keys}, values))


def test_a_digest_pins_the_image(render: Render) -> None:
    digest = "sha256:" + "b" * 64
    rendered = render({"image": {"digest": digest, "tag": "ignored"}})

    assert rendered.container["image"] == f"proxy-session-gateway@{digest}"
    assert rendered.test_pod["spec"]["containers"][0]["image"] == rendered.container["image"]
