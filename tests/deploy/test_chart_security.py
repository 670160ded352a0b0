"""The release is locked down: security contexts, secrets mounted from outside and never
rendered, the `helm test` Pod alike."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

import pytest

from tests.deploy.chart import CASES, FULLNAME, Render, scenario

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


SHARED_CACHE = {"sharedCache": {"enabled": True, "existingSecret": "gateway-shared-cache"}}


def test_the_shared_cache_url_is_only_a_secret_key_ref_the_rest_read_only_files(
    render: Render,
) -> None:
    rendered = render(scenario("shared-cache"))
    container, pod, env = rendered.container, rendered.pod, rendered.env
    (volume,) = [v for v in pod["volumes"] if v["name"] == "shared-cache"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == "shared-cache"]
    files = {
        name: PurePosixPath(env[name]["value"])
        for name in ("GATEWAY_REDIS_PASSWORD_FILE", "GATEWAY_CACHE_ENCRYPTION_KEY_FILE")
    }

    assert env["GATEWAY_REDIS_URL"] == {
        "name": "GATEWAY_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": "gateway-shared-cache", "key": "redis-url"}},
    }
    assert volume["secret"] == {
        "secretName": "gateway-shared-cache",
        "defaultMode": 0o440,
        # A listed key missing from the Secret must not keep the pod from starting.
        "optional": True,
        # Only the file keys: never redis-url.
        "items": [
            {"key": "redis-password", "path": "redis-password"},
            {"key": "encryption-keys", "path": "encryption-keys"},
        ],
    }
    assert mount == {
        "name": "shared-cache",
        "mountPath": "/var/run/secrets/shared-cache",
        "readOnly": True,
    }
    assert files == {
        "GATEWAY_REDIS_PASSWORD_FILE": PurePosixPath(mount["mountPath"], "redis-password"),
        "GATEWAY_CACHE_ENCRYPTION_KEY_FILE": PurePosixPath(mount["mountPath"], "encryption-keys"),
    }
    assert not [name for name in rendered.config if "REDIS" in name or "ENCRYPTION" in name]


@pytest.mark.parametrize("password", [True, False])
@pytest.mark.parametrize("keys", [True, False])
def test_only_the_keys_the_secret_has_are_mounted_and_pointed_at(
    render: Render, password: bool, keys: bool
) -> None:
    flags = {"passwordInSecret": password, "encryptionKeysInSecret": keys}
    rendered = render({"sharedCache": SHARED_CACHE["sharedCache"] | flags})
    volumes = [v for v in rendered.pod["volumes"] if v["name"] == "shared-cache"]
    mounts = [m for m in rendered.container["volumeMounts"] if m["name"] == "shared-cache"]
    wanted = [k for k, on in (("redis-password", password), ("encryption-keys", keys)) if on]

    assert ("GATEWAY_REDIS_PASSWORD_FILE" in rendered.env) is password
    assert ("GATEWAY_CACHE_ENCRYPTION_KEY_FILE" in rendered.env) is keys
    assert "valueFrom" in rendered.env["GATEWAY_REDIS_URL"]
    # No file key: no volume at all, since a Secret volume without items mounts every key.
    assert [[i["key"] for i in v["secret"]["items"]] for v in volumes] == (
        [wanted] if wanted else []
    )
    assert len(mounts) == len(volumes)
    assert ("no encryption keys" in rendered.notes) is not keys


@pytest.mark.parametrize(
    ("ca", "mount_path", "wanted"),
    [
        ({}, "/var/run/secrets/shared-cache-ca", "/var/run/secrets/shared-cache-ca/ca.crt"),
        (
            {"caSecretKey": "ca.pem", "caMountPath": "/etc/valkey-ca/"},
            "/etc/valkey-ca/",
            "/etc/valkey-ca/ca.pem",
        ),
    ],
    ids=["defaults", "own-key-and-path"],
)
def test_the_private_ca_is_a_read_only_file_of_its_own_volume(
    render: Render, ca: dict[str, str], mount_path: str, wanted: str
) -> None:
    shared = SHARED_CACHE["sharedCache"] | {"caSecret": "valkey-ca"} | ca
    rendered = render({"sharedCache": shared})
    (volume,) = [v for v in rendered.pod["volumes"] if v["name"] == "shared-cache-ca"]
    (mount,) = [m for m in rendered.container["volumeMounts"] if m["name"] == "shared-cache-ca"]
    key = PurePosixPath(wanted).name

    # Its key only: a cert-manager Secret holds the issuer's private key beside ca.crt.
    assert volume["secret"] == {
        "secretName": "valkey-ca",
        "defaultMode": 0o440,
        "items": [{"key": key, "path": key}],
    }
    assert mount == {"name": "shared-cache-ca", "mountPath": mount_path, "readOnly": True}
    assert rendered.env["GATEWAY_REDIS_CA_FILE"] == {
        "name": "GATEWAY_REDIS_CA_FILE",
        "value": wanted,
    }
    assert PurePosixPath(wanted) == PurePosixPath(mount_path, key)
    # The Secret of the URL, password and keys stays a volume of its own.
    assert "shared-cache" in {v["name"] for v in rendered.pod["volumes"]}
    assert "GATEWAY_REDIS_CA_FILE" not in rendered.config


@pytest.mark.parametrize(
    "values",
    [
        SHARED_CACHE,
        {"sharedCache": {"caSecret": "valkey-ca"}},
    ],
    ids=["no-ca-secret", "fleet-mode-off"],
)
def test_no_private_ca_is_mounted_unless_fleet_mode_names_one(
    render: Render, values: dict[str, Any]
) -> None:
    rendered = render(values)

    assert "shared-cache-ca" not in {v["name"] for v in rendered.pod["volumes"]}
    assert "shared-cache-ca" not in {m["name"] for m in rendered.container["volumeMounts"]}
    assert "GATEWAY_REDIS_CA_FILE" not in rendered.env


@pytest.mark.parametrize("case", CASES)
def test_the_shared_cache_url_is_never_a_literal(render: Render, case: str) -> None:
    rendered = render(scenario(case))

    assert "value" not in rendered.env.get("GATEWAY_REDIS_URL", {})
    assert "GATEWAY_REDIS_URL" not in rendered.config
    assert not re.search(r"\b(rediss?(-cluster|-sentinel)?|unix)://", rendered.text)


def test_without_auth_secret_nothing_is_mounted_and_notes_warn(render: Render) -> None:
    rendered = render()

    assert "GATEWAY_AUTH_TOKENS_FILE" not in rendered.env
    assert [v["name"] for v in rendered.pod["volumes"]] == ["tmp"]
    assert "authentication is OFF" in rendered.notes
    assert "aws.region is empty" in rendered.notes
    assert "WARNING" not in render(scenario("irsa")).notes


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
