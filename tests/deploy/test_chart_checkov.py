"""checkov over rendered releases: nothing fails that the skip list does not excuse, and
every skip is justified and still needed."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.deploy.chart import CHART, Render, Rendered, merged, scenario
from tests.support.servers import ROOT

CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"


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
    """checkov over the defaults, over a hardened release: the NetworkPolicy scenario plus
    every `fixedBy` of the skip list, with those checks no longer skipped, and over that
    release in fleet mode, with every Secret the chart can take (the private CA's too)."""
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV} is missing: run `make install`")
    root = tmp_path_factory.mktemp("checkov")
    global_skips = [s for s in SKIPS if not s.resource]
    hardened = merged(scenario("networkpolicy"), *(s.fixed_by for s in SKIPS if s.fixed_by))
    fleet = merged(
        hardened,
        scenario("existing-secret"),
        scenario("shared-cache"),
        scenario("shared-cache-tls-cluster"),
    )
    unfixable = [s.id for s in global_skips if not s.fixed_by]
    return {
        "defaults": _checkov(render(), root / "defaults", [s.id for s in global_skips]),
        "hardened": _checkov(render(hardened), root / "hardened", unfixable, quiet=False),
        "fleet": _checkov(render(fleet), root / "fleet", unfixable),
    }


def test_checkov_skips_are_few_and_justified() -> None:
    assert len({s.id for s in SKIPS}) <= 7
    for skip in SKIPS:
        assert re.fullmatch(r"CKV2?_K8S_\d+", skip.id)
        assert len(skip.reason) > 40, skip.id


@pytest.mark.parametrize("run", ["defaults", "hardened", "fleet"])
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


def test_only_the_secret_fed_opt_ins_take_secrets_as_variables(scans: dict[str, Scan]) -> None:
    def secrets_as_variables(run: str) -> list[str]:
        return [resource for check, resource in scans[run].failed if check == "CKV_K8S_35"]

    assert secrets_as_variables("defaults") == []
    assert secrets_as_variables("hardened") == []
    assert secrets_as_variables("fleet") == ["Deployment.voice.gw-proxy-session-gateway"]


def test_every_scoped_checkov_skip_still_excuses_something(scans: dict[str, Scan]) -> None:
    failed = [f for scan in scans.values() for f in scan.failed]

    for skip in (s for s in SKIPS if s.resource):
        assert any(c == skip.id and re.search(str(skip.resource), r) for c, r in failed), skip.id
