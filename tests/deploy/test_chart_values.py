"""values.yaml and its schema, and every gateway setting carried through `config`."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

import helm_python as helm
import pytest

from app.settings import Settings
from tests.deploy.chart import CHART, Render, scenario

# Settings the chart sets through their own values rather than `config`.
NOT_IN_CONFIG = {"auth_tokens", "auth_tokens_file", "aws_region"}
# The shared cache layer's, which come from `sharedCache` only (`config` refuses them).
SHARED_CACHE_SETTINGS = {
    "redis_url",
    "redis_password_file",
    "redis_key_prefix",
    "redis_timeout_seconds",
    "redis_ca_file",
    "cache_encryption_key_file",
}
# Set by the chart in fleet mode from `autoscaling.maxReplicas` or `replicaCount` (`config`
# refuses it).
CHART_SET_SETTINGS = {"fleet_max_replicas"}
# The trusted documents', which come from `persistedDocuments` only (`config` refuses them).
PERSISTED_DOCUMENTS_SETTINGS = {"graphql_persisted_documents_file", "graphql_persisted_only"}


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
    for closed in (
        "image",
        "service",
        "auth",
        "aws",
        "sharedCache",
        "autoscaling",
        "serviceMonitor",
    ):
        assert schema["properties"][closed]["additionalProperties"] is False, closed
    enums = {
        "pullPolicy": schema["properties"]["image"]["properties"]["pullPolicy"],
        "service type": schema["properties"]["service"]["properties"]["type"],
        "log level": schema["properties"]["config"]["properties"]["GATEWAY_LOG_LEVEL"],
    }
    assert all("enum" in e for e in enums.values())


def _settings_variables() -> list[str]:
    fields = Settings.model_fields
    assert set(fields) >= NOT_IN_CONFIG
    excluded = (
        NOT_IN_CONFIG | SHARED_CACHE_SETTINGS | CHART_SET_SETTINGS | PERSISTED_DOCUMENTS_SETTINGS
    )
    return [f"GATEWAY_{name.upper()}" for name in fields if name not in excluded]


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
        "GATEWAY_UPSTREAM_RATE_RESERVE": "0.3",
    }
    return {name: special.get(name, str(1001 + n)) for n, name in enumerate(names)}


def test_every_setting_reaches_the_container_through_config(
    chart: helm.Chart, render: Render
) -> None:
    names = _settings_variables()
    # And every setting the chart's own `config` sets, which these values must all override.
    names += [name for name in chart.values["config"] if name not in names]
    config = _distinct_values(names)
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


def test_the_rate_limit_and_stale_while_revalidate_apply_without_the_shared_layer(
    render: Render,
) -> None:
    defaults = render()
    rendered = render(
        {
            "config": {
                "GATEWAY_UPSTREAM_RATE_LIMIT": "50",
                "GATEWAY_STALE_WHILE_REVALIDATE_SECONDS": "2.5",
            }
        }
    )

    assert defaults.config["GATEWAY_UPSTREAM_RATE_LIMIT"] == "0"
    assert defaults.config["GATEWAY_UPSTREAM_RATE_RESERVE"] == "0.2"
    assert defaults.config["GATEWAY_STALE_WHILE_REVALIDATE_SECONDS"] == "0"
    assert rendered.config["GATEWAY_UPSTREAM_RATE_LIMIT"] == "50"
    assert rendered.config["GATEWAY_STALE_WHILE_REVALIDATE_SECONDS"] == "2.5"
    assert not [name for name in rendered.env if name.startswith("GATEWAY_")]


def test_the_rate_reserve_default_is_the_gateway_s(chart: helm.Chart) -> None:
    reserve = chart.values["config"]["GATEWAY_UPSTREAM_RATE_RESERVE"]

    assert float(reserve) == Settings.model_fields["upstream_rate_reserve"].default


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
        {"config": {"GATEWAY_UPSTREAM_RATE_LIMIT": "-1"}},
        {"config": {"GATEWAY_STALE_WHILE_REVALIDATE_SECONDS": "soon"}},
        {"awsAccessKeyId": "AKIA"},
        {"image": {"pullPolicy": "Sometimes"}},
        {"image": {"digest": "latest"}},
        {"service": {"type": "ExternalName"}},
        {"auth": {"token": "s3cret-token"}},
        *({"config": {f"GATEWAY_{name.upper()}": "x"}} for name in sorted(SHARED_CACHE_SETTINGS)),
        {"extraEnv": [{"name": "GATEWAY_REDIS_URL", "value": "redis://:s3cret@valkey:6379"}]},
        {
            "extraEnv": [
                {
                    "name": "GATEWAY_REDIS_URL",
                    "valueFrom": {"secretKeyRef": {"name": "other", "key": "url"}},
                }
            ]
        },
        {"extraEnv": [{"name": "GATEWAY_CACHE_ENCRYPTION_KEY_FILE", "value": "/tmp/keys"}]},
        {"extraEnv": [{"name": "GATEWAY_REDIS_CA_FILE", "value": "/tmp/ca.crt"}]},
        *({"config": {f"GATEWAY_{name.upper()}": "4"}} for name in sorted(CHART_SET_SETTINGS)),
        {"extraEnv": [{"name": "GATEWAY_FLEET_MAX_REPLICAS", "value": "4"}]},
        {"config": {"GATEWAY_UPSTREAM_RATE_RESERVE": "1"}},
        {"config": {"GATEWAY_UPSTREAM_RATE_RESERVE": "20%"}},
        {"sharedCache": {"url": "redis://:s3cret@valkey:6379"}},
        {"sharedCache": {"password": "s3cret"}},
        {"sharedCache": {"enabled": "yes"}},
        {"sharedCache": {"keyPrefix": ""}},
        {"sharedCache": {"timeoutSeconds": 0}},
        {"sharedCache": {"mountPath": "secrets"}},
        {"sharedCache": {"port": 0}},
        {"sharedCache": {"port": "6379"}},
        {"sharedCache": {"egressTo": {"podSelector": {}}}},
        {"sharedCache": {"caBundle": "-----BEGIN CERTIFICATE-----"}},
        {"sharedCache": {"caSecret": 1}},
        {"sharedCache": {"caSecret": ["valkey-ca"]}},
        {"sharedCache": {"caSecretKey": "certs/ca.crt"}},
        {"sharedCache": {"caMountPath": "shared-cache-ca"}},
        {"sharedCache": {"extraPorts": 26379}},
        {"sharedCache": {"extraPorts": ["26379"]}},
        {"sharedCache": {"extraPorts": [0]}},
        {"sharedCache": {"extraPorts": [26379, 26379]}},
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
        {"sharedCache": {"enabled": True, "existingSecret": "gateway-shared-cache"}},
        {"sharedCache": {"passwordInSecret": False, "timeoutSeconds": 0.25}},
        {"sharedCache": {"port": 6380, "egressTo": [{"ipBlock": {"cidr": "10.0.32.0/20"}}]}},
        {"sharedCache": {"caSecret": "valkey-ca", "caSecretKey": "ca.pem"}},
        {"sharedCache": {"extraPorts": [26379]}},
        {"config": {"GATEWAY_UPSTREAM_RATE_RESERVE": "0"}},
        {"config": {"GATEWAY_UPSTREAM_RATE_RESERVE": "0.25"}},
    ],
    ids=lambda v: json.dumps(v)[:60],
)
def test_schema_accepts(chart: helm.Chart, values: dict[str, Any]) -> None:
    chart.validate_schema(values)
