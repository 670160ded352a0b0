"""The one sample session: the first of the emulator's sample data, which `make run` shows."""

from __future__ import annotations

import copy
import json
from typing import Any

from harness import ROOT

DATA = ROOT / "emulator" / "data" / "sessions.json"
"""The sample sessions the emulator serves from start-up and after every reset."""
ID_MEMBERS = ("VoiceConnectorId", "ProxySessionId")

_SAMPLE: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))[0]

VOICE_CONNECTOR_ID: str = _SAMPLE["VoiceConnectorId"]
PROXY_SESSION_ID: str = _SAMPLE["ProxySessionId"]


def session(*, ids: bool = True) -> dict[str, Any]:
    """A copy of the sample ProxySession, without its ids (as AWS may send it) if `ids` is false."""
    members = copy.deepcopy(_SAMPLE)
    return members if ids else {k: v for k, v in members.items() if k not in ID_MEMBERS}
