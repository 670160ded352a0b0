"""The seams into libraries' private names: each holds on the locked releases, each notices
a release that moved what it needs, and the gateway refuses to start on one, saying which
and how to run without it."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from graphql.language.parser import Parser
from graphql.validation.rules import overlapping_fields_can_be_merged
from strawberry.schema import schema as strawberry_schema
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.graphql import documents, merging
from app.http import protocol
from app.main import SEAMS, create_app
from app.seams import Seam, SeamChanged, require
from app.settings import Settings
from tests.support.servers import Emulator, aws_env

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("seam", SEAMS, ids=lambda seam: seam.name)
def test_every_seam_holds_on_the_locked_releases(seam: Seam) -> None:
    assert list(seam.missing()) == []


def test_the_protocol_seam_notices_a_uvicorn_without_a_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(HttpToolsProtocol, "_start_asgi_task")

    with pytest.raises(SeamChanged, match=r"uvicorn changed .*_start_asgi_task.*uvicorn app.main"):
        require([protocol.SEAM])


def test_the_coalescing_seam_notices_a_cycle_that_writes_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def send(self: object, message: object) -> None:
        """A release whose cycle writes through something else."""

    monkeypatch.setattr(RequestResponseCycle, "send", send)

    assert list(protocol.COALESCING_SEAM.missing()) == [
        "RequestResponseCycle.send writing through self.transport"
    ]


def test_the_strawberry_seam_notices_a_strawberry_without_its_validation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(strawberry_schema, "validate_document")

    assert documents.STRAWBERRY_SEAM.missing()
    with pytest.raises(SeamChanged, match="GATEWAY_GRAPHQL_TUNING=off"):
        create_app(Settings())


def test_the_merging_seam_notices_a_graphql_core_without_its_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(overlapping_fields_can_be_merged.RuleContext, "__slots__", ())

    assert list(merging.SEAM.missing()) == ["RuleContext.remaining_complexity_budget"]


def test_the_token_seam_notices_graphql_core_wording_its_limit_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A graphql-core whose parser neither counts tokens nor stops at a limit.
    monkeypatch.setattr(Parser, "parse_document", lambda _parser: object())

    assert set(documents.TOKENS_SEAM.missing()) == {
        "the token limit of parse()",
        "DocumentNode.token_count",
    }


def test_without_graphql_tuning_no_graphql_seam_is_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(strawberry_schema, "validate_document")

    create_app(Settings(graphql_tuning=False))


def test_python_m_app_refuses_to_start_on_a_changed_uvicorn(
    emulator: Emulator, tmp_path: Path
) -> None:
    # A uvicorn release without a name the head guard needs, as `sitecustomize` makes it.
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(
            """
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
            del HttpToolsProtocol._should_upgrade
            """
        ),
        encoding="utf-8",
    )
    env = {**os.environ, **aws_env(emulator.url), "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "app"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cannot start: uvicorn changed under the seam")
    assert "HttpToolsProtocol._should_upgrade" in lines[0]
