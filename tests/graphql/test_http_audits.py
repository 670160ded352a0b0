"""graphql-http's server audits (the GraphQL-over-HTTP specification's own suite, from npm,
pinned in tests/node/package-lock.json and installed by `make test`), run by node
against a live gateway with introspection on.

Every MUST and SHOULD audit passes; of the MAY ones, only those the gateway refuses on
purpose fail, each listed in the README with its reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from tests.conftest import GatewayFactory
from tests.support.servers import ROOT

AUDITS = ROOT / "tests" / "node"
REFUSED_ON_PURPOSE = {
    "5A70": "GET with a raw query (form-urlencoded)",
    "D6D5": "GET with a raw query and URL-encoded variables",
    "6A70": "GET with a raw query and URL-encoded variables",
}
"""The MAY audits the contract refuses on purpose: GET runs persisted documents only."""


@pytest.fixture(scope="module")
def audits(gateway_factory: GatewayFactory) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node is not None, "node is missing: `make test` installs it (nodejs)"
    assert (AUDITS / "node_modules" / "graphql-http").is_dir(), (
        "graphql-http is not installed: `make test` runs `npm ci` in tests/node"
    )
    gateway = gateway_factory(graphql_introspection=True)
    done = subprocess.run(
        [node, str(AUDITS / "audit.mjs"), f"{gateway.url}/graphql"],
        cwd=AUDITS,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def test_the_suite_ran_whole(audits: list[dict[str, Any]]) -> None:
    assert len(audits) >= 50
    assert {audit["status"] for audit in audits} <= {"ok", "warn", "notice", "error"}


@pytest.mark.parametrize("level", ["MUST", "SHOULD"])
def test_every_must_and_should_audit_passes(audits: list[dict[str, Any]], level: str) -> None:
    failed = [
        f"{audit['id']} {audit['name']}: {audit['reason']}"
        for audit in audits
        if audit["name"].startswith(f"{level} ") and audit["status"] != "ok"
    ]

    assert any(audit["name"].startswith(f"{level} ") for audit in audits)
    assert failed == []


def test_only_what_the_contract_refuses_fails_among_the_may_audits(
    audits: list[dict[str, Any]],
) -> None:
    failed = {audit["id"] for audit in audits if audit["status"] != "ok"}

    assert failed == set(REFUSED_ON_PURPOSE)
