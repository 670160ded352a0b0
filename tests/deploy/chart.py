"""The chart under test, rendered offline with the Helm SDK: its scenarios and manifests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import yaml  # type: ignore[import-untyped]

from tests.support.servers import ROOT

CHART = ROOT / "deploy" / "helm" / "proxy-session-gateway"
SCENARIOS = {p.name.removesuffix("-values.yaml"): p for p in sorted(CHART.glob("ci/*-values.yaml"))}
CASES = ["defaults", *SCENARIOS]
RELEASE = "gw"
NAMESPACE = "voice"
FULLNAME = f"{RELEASE}-proxy-session-gateway"

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
