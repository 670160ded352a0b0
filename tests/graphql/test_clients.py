"""The frontends' own clients against a live gateway, run by node (npm packages pinned in
tests/node/package-lock.json): Apollo Client's normalised cache merges what several queries
fetched of one session, without a warning; urql with its defaults runs through trusted
documents (its persisted-queries exchange, by GET)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory
from tests.support.servers import ROOT, Emulator, Gateway

NODE_TESTS = ROOT / "tests" / "node"


def node(*args: str) -> str:
    """Run a script of tests/node with node; its standard output."""
    executable = shutil.which("node")
    assert executable is not None, "node is missing: `make test` installs it (nodejs)"
    assert (NODE_TESTS / "node_modules" / "@apollo" / "client").is_dir(), (
        "the clients are not installed: `make test` runs `npm ci` in tests/node"
    )
    done = subprocess.run(
        [executable, *args], cwd=NODE_TESTS, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_apollo_client_merges_one_sessions_fields_without_a_warning(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    output = node("--conditions=development", "apollo.mjs", f"{gateway.url}/graphql", "", *seeded)
    result: dict[str, Any] = json.loads(output)

    assert result["warnings"] == []
    # NAME, then STATUS (other fields: a call), then NAME again: from the normalised cache.
    assert result["calls"] == 2
    assert result["name"]["proxySession"]["name"] == "order-1234"
    assert result["status"]["proxySession"]["status"] == "OPEN"
    assert result["again"] == result["name"]
    assert result["name"]["proxySession"]["id"] == result["status"]["proxySession"]["id"]
    assert emulator.calls(*seeded) == 1


@pytest.fixture(scope="module")
def urql_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The manifest a build would emit for urql's document (urql hashes its printed text)."""
    text = node("urql.mjs", "print")
    path = tmp_path_factory.mktemp("urql") / "persisted-documents.json"
    path.write_text(json.dumps({hashlib.sha256(text.encode()).hexdigest(): text}), "utf-8")
    return path


def test_urql_with_its_defaults_runs_trusted_documents_by_get(
    gateway_factory: GatewayFactory, urql_manifest: Path, seeded: tuple[str, str]
) -> None:
    gateway = gateway_factory(
        graphql_persisted_documents_file=urql_manifest, graphql_persisted_only=True
    )

    result: dict[str, Any] = json.loads(
        node("urql.mjs", "query", f"{gateway.url}/graphql", "", *seeded)
    )

    assert result["error"] is None
    assert result["data"]["proxySession"]["name"] == "order-1234"
    assert [request["method"] for request in result["sent"]] == ["GET"]
    assert "extensions=" in result["sent"][0]["url"]
    assert "query=" not in result["sent"][0]["url"]
