"""The release is locked down: security contexts, secrets mounted from outside and never
rendered, the `helm test` Pod alike."""

from __future__ import annotations

import re

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
