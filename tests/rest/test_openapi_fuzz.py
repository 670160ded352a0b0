"""schemathesis against openapi.json, every check on, against a live gateway and the emulator."""

from __future__ import annotations

import subprocess

from tests.support.servers import ROOT, Gateway

SCHEMATHESIS = ROOT / ".venv" / "bin" / "schemathesis"


def test_schemathesis_all_checks_pass(gateway: Gateway) -> None:
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            str(ROOT / "openapi.json"),
            "--url",
            gateway.url,
            "--checks",
            "all",
            "--max-examples",
            "40",
            "--seed",
            "20261129",
            "--workers",
            "2",
            "--max-failures",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=ROOT,
    )

    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "Tested: 4" in result.stdout
