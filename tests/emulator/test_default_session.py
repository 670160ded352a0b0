"""The emulator's `--default-session` (for the benchmark): any unknown key is a session."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.support.servers import start_emulator
from tests.support.sigv4 import signed_headers


def test_unknown_keys_get_the_template_with_their_own_ids(tmp_path: Path) -> None:
    template = tmp_path / "default.json"
    template.write_text(json.dumps({"Name": "template", "Status": "Open"}))
    emulator = start_emulator(options=["--default-session", str(template)])
    try:
        session_url = f"{emulator.url}/voice-connectors/vc-x/proxy-sessions/ps-y"
        reply = httpx.get(session_url, headers=signed_headers("GET", session_url))

        assert reply.status_code == 200
        assert reply.json() == {
            "ProxySession": {
                "Name": "template",
                "Status": "Open",
                "VoiceConnectorId": "vc-x",
                "ProxySessionId": "ps-y",
            }
        }
        assert emulator.calls("vc-x", "ps-y") == 1
    finally:
        emulator.stop()
