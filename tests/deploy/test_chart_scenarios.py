"""What the chart turns on by default, and what each opt-in ci/ scenario renders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.chart import FULLNAME, NAMESPACE, RELEASE, SCENARIOS, Render, Rendered, scenario

OPT_IN_KINDS = {"ServiceMonitor", "NetworkPolicy", "Ingress", "PrometheusRule"}


def test_one_ci_scenario_per_feature() -> None:
    assert set(SCENARIOS) >= {
        "servicemonitor",
        "networkpolicy",
        "ingress",
        "existing-secret",
        "irsa",
        "no-autoscaling",
        "alerts-and-dashboard",
        "shared-cache",
        "shared-cache-tls-cluster",
    }


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
    # Fleet mode is off: no shared layer.
    assert not [n for n in rendered.env if n.startswith("GATEWAY_REDIS_")]
    assert "GATEWAY_CACHE_ENCRYPTION_KEY_FILE" not in rendered.env
    assert "GATEWAY_FLEET_MAX_REPLICAS" not in rendered.env


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


def test_shared_cache_scenario(render: Render) -> None:
    rendered = render(scenario("shared-cache"))
    env = rendered.env

    assert env["GATEWAY_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "gateway-shared-cache",
        "key": "redis-url",
    }
    assert env["GATEWAY_REDIS_KEY_PREFIX"] == {
        "name": "GATEWAY_REDIS_KEY_PREFIX",
        "value": "psgw-eu:",
    }
    assert env["GATEWAY_REDIS_TIMEOUT_SECONDS"] == {
        "name": "GATEWAY_REDIS_TIMEOUT_SECONDS",
        "value": "0.1",
    }
    # The chart's HPA (2 to 10 replicas) bounds the fleet.
    assert env["GATEWAY_FLEET_MAX_REPLICAS"] == {
        "name": "GATEWAY_FLEET_MAX_REPLICAS",
        "value": "10",
    }
    # No private CA: the system trust store.
    assert "GATEWAY_REDIS_CA_FILE" not in env
    assert rendered.config["GATEWAY_UPSTREAM_RATE_LIMIT"] == "20"
    assert rendered.config["GATEWAY_STALE_WHILE_REVALIDATE_SECONDS"] == "10"
    assert {v["name"] for v in rendered.pod["volumes"]} == {"tmp", "auth-tokens", "shared-cache"}
    assert "WARNING" not in rendered.notes
    assert rendered.one("NetworkPolicy")["spec"]["egress"][-1] == {
        "ports": [{"port": 6379, "protocol": "TCP"}],
        "to": [
            {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cache"}},
                "podSelector": {"matchLabels": {"app.kubernetes.io/name": "valkey"}},
            }
        ],
    }


def test_shared_cache_tls_cluster_scenario(render: Render) -> None:
    values = scenario("shared-cache-tls-cluster")
    rendered = render(values)
    env = rendered.env
    (volume,) = [v for v in rendered.pod["volumes"] if v["name"] == "shared-cache-ca"]
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["name"] == "shared-cache-ca"]

    # The private CA: its Secret's ca.crt only, a read-only file the variable points at.
    assert volume["secret"] == {
        "secretName": "valkey-ca",
        "defaultMode": 0o440,
        "items": [{"key": "ca.crt", "path": "ca.crt"}],
    }
    assert mount == {
        "name": "shared-cache-ca",
        "mountPath": "/var/run/secrets/shared-cache-ca",
        "readOnly": True,
    }
    assert env["GATEWAY_REDIS_CA_FILE"] == {
        "name": "GATEWAY_REDIS_CA_FILE",
        "value": "/var/run/secrets/shared-cache-ca/ca.crt",
    }
    # The fleet's bound is the HPA's maximum.
    assert values["autoscaling"]["enabled"] is True
    assert rendered.one("HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 6
    assert env["GATEWAY_FLEET_MAX_REPLICAS"] == {"name": "GATEWAY_FLEET_MAX_REPLICAS", "value": "6"}
    assert rendered.config["GATEWAY_UPSTREAM_RATE_LIMIT"] == "20"
    assert rendered.config["GATEWAY_UPSTREAM_RATE_RESERVE"] == "0.3"
    assert env["GATEWAY_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "gateway-shared-cache",
        "key": "redis-url",
    }
    assert "WARNING" not in rendered.notes


@pytest.mark.parametrize(
    ("values", "wanted"),
    [
        ({}, "10"),
        ({"autoscaling": {"maxReplicas": 4}, "replicaCount": 7}, "4"),
        ({"autoscaling": {"enabled": False, "maxReplicas": 4}, "replicaCount": 7}, "7"),
        ({"autoscaling": {"enabled": False}, "replicaCount": 0}, "1"),
    ],
    ids=["hpa-default", "hpa", "fixed-count", "scaled-to-zero"],
)
def test_the_fleet_s_bound_is_the_hpa_maximum_or_the_replica_count(
    render: Render, values: dict[str, Any], wanted: str
) -> None:
    shared = {"sharedCache": {"enabled": True, "existingSecret": "gateway-shared-cache"}}
    rendered = render(values | shared)
    replicas = rendered.one("Deployment")["spec"].get("replicas")
    hpas = rendered.all("HorizontalPodAutoscaler")

    assert rendered.env["GATEWAY_FLEET_MAX_REPLICAS"]["value"] == wanted
    assert [h["spec"]["maxReplicas"] for h in hpas] == (
        [] if replicas is not None else [int(wanted)]
    )
    assert "GATEWAY_FLEET_MAX_REPLICAS" not in rendered.config
    # Without the shared layer the gateway has no use for it.
    assert "GATEWAY_FLEET_MAX_REPLICAS" not in render(values).env


def test_otel_scenario(render: Render) -> None:
    rendered = render(scenario("otel"))
    env = rendered.env
    values = {name: var.get("value") for name, var in env.items()}

    assert values["OTEL_TRACES_EXPORTER"] == "otlp"
    assert values["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability:4318"
    assert values["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert values["OTEL_TRACES_SAMPLER"] == "parentbased_traceidratio"
    assert values["OTEL_TRACES_SAMPLER_ARG"] == "0.1"
    assert values["OTEL_SERVICE_NAME"] == "gw-proxy-session-gateway"
    assert values["OTEL_PROPAGATORS"] == "tracecontext,baggage"
    assert values["OTEL_RESOURCE_ATTRIBUTES"] == (
        "k8s.pod.name=$(OTEL_K8S_POD_NAME),k8s.namespace.name=$(OTEL_K8S_NAMESPACE_NAME),"
        "k8s.node.name=$(OTEL_K8S_NODE_NAME),deployment.environment.name=production"
    )
    # The downward API fills the pod's names, defined before the variable that uses them.
    names = list(env)
    assert env["OTEL_K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert names.index("OTEL_K8S_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert env["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"] == {
        "name": "gateway-otlp",
        "key": "otlp-headers",
    }
    assert rendered.one("NetworkPolicy")["spec"]["egress"][-1] == {
        "ports": [{"port": 4318, "protocol": "TCP"}],
        "to": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "observability"}}}
        ],
    }


def test_persisted_documents_scenario(render: Render) -> None:
    rendered = render(scenario("persisted-documents"))
    values = {name: var.get("value") for name, var in rendered.env.items()}
    mount = "/etc/proxy-session-gateway/persisted-documents"

    assert values["GATEWAY_GRAPHQL_PERSISTED_DOCUMENTS_FILE"] == f"{mount}/persisted-documents.json"
    assert values["GATEWAY_GRAPHQL_PERSISTED_ONLY"] == "true"
    [volume] = [v for v in rendered.pod["volumes"] if v["name"] == "persisted-documents"]
    assert volume["configMap"] == {
        "name": "gateway-persisted-documents",
        "items": [{"key": "persisted-documents.json", "path": "persisted-documents.json"}],
    }
    [mounted] = [
        m for m in rendered.container["volumeMounts"] if m["name"] == "persisted-documents"
    ]
    assert mounted == {"name": "persisted-documents", "mountPath": mount, "readOnly": True}


def test_the_trusted_documents_settings_come_only_from_persisted_documents(
    render: Render,
) -> None:
    with pytest.raises(Exception, match="GATEWAY_GRAPHQL_PERSISTED_ONLY"):
        render({"config": {"GATEWAY_GRAPHQL_PERSISTED_ONLY": "true"}})


def test_traces_are_off_by_default(render: Render) -> None:
    assert not any(name.startswith("OTEL_") for name in render().env)


def test_the_networkpolicy_lets_fleet_mode_reach_the_shared_layer_port_only(
    render: Render,
) -> None:
    shared = {"enabled": True, "existingSecret": "gateway-shared-cache", "port": 6380}
    on = render({"networkPolicy": {"enabled": True}, "sharedCache": shared})
    off = render({"networkPolicy": {"enabled": True}})
    without_policy = render({"sharedCache": shared})

    def egress(rendered: Rendered) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = rendered.one("NetworkPolicy")["spec"]["egress"]
        return rules

    assert egress(on) == [
        *egress(off),
        # No peers given: any address, on that port only.
        {"ports": [{"port": 6380, "protocol": "TCP"}]},
    ]
    assert "NetworkPolicy" not in without_policy.kinds


def test_the_networkpolicy_opens_the_sentinels_port_too_when_listed(render: Render) -> None:
    valkey = {"podSelector": {"matchLabels": {"app.kubernetes.io/name": "valkey"}}}
    shared = {
        "enabled": True,
        "existingSecret": "gateway-shared-cache",
        "extraPorts": [26379],
        "egressTo": [valkey],
    }
    rendered = render({"networkPolicy": {"enabled": True}, "sharedCache": shared})

    assert rendered.one("NetworkPolicy")["spec"]["egress"][-1] == {
        "ports": [{"port": 6379, "protocol": "TCP"}, {"port": 26379, "protocol": "TCP"}],
        "to": [valkey],
    }


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
