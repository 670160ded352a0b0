"""In-memory, bounded state of the emulator: sessions, faults and call counters."""

from __future__ import annotations

import json
import time
from collections import deque
from pathlib import Path

from emulator.faults import FaultTable, Key

MAX_SESSIONS = 100_000
MAX_FAULTS = 10_000
MAX_COUNTED_KEYS = 100_000
MAX_CALL_TIMES = 10_000


class StoreFullError(Exception):
    """Raised when storing one more session would exceed the bound."""


def render(session: dict[str, object]) -> bytes:
    """Return the GetProxySession response body for a stored session."""
    member = json.dumps(session, ensure_ascii=False, separators=(",", ":"))
    return b'{"ProxySession":' + member.encode() + b"}"


def load_sessions(path: Path) -> dict[Key, bytes]:
    """Read the sample sessions file, a JSON list of ProxySession objects."""
    items = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of ProxySession objects")
    sessions: dict[Key, bytes] = {}
    for index, item in enumerate(items):
        vc = item.get("VoiceConnectorId") if isinstance(item, dict) else None
        ps = item.get("ProxySessionId") if isinstance(item, dict) else None
        if not isinstance(vc, str) or not isinstance(ps, str):
            raise ValueError(f"{path}[{index}]: needs string VoiceConnectorId and ProxySessionId")
        sessions[vc, ps] = render(item)
    return sessions


def load_template(path: Path) -> dict[str, object]:
    """Read one ProxySession object, the answer for unknown keys under --default-session."""
    session = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(session, dict):
        raise ValueError(f"{path}: expected a JSON ProxySession object")
    return session


class Store:
    """Everything the emulator remembers between requests."""

    def __init__(self, data_path: Path) -> None:
        self.data_path = data_path
        self.sessions: dict[Key, bytes] = {}
        self.faults = FaultTable(MAX_FAULTS)
        self.calls_total = 0
        self.calls: dict[Key, int] = {}
        # When the latest calls arrived (Unix time): shows a rate limit held.
        self.call_times: deque[float] = deque(maxlen=MAX_CALL_TIMES)
        # Requests refused on authentication, by AWS error code (a handful of codes).
        self.rejected: dict[str, int] = {}
        # Faulted requests held at once (a delay holds them): shows the gateway's concurrency.
        self.inflight = 0
        self.max_inflight = 0
        self.reset()

    def reset(self) -> None:
        """Restore the sample sessions and forget faults and counters."""
        self.sessions = load_sessions(self.data_path)
        self.faults.clear()
        self.calls_total = 0
        self.calls.clear()
        self.call_times.clear()
        self.rejected.clear()
        self.max_inflight = 0

    def put_session(self, key: Key, session: dict[str, object]) -> None:
        """Store a session exactly as given."""
        if key not in self.sessions and len(self.sessions) >= MAX_SESSIONS:
            raise StoreFullError(f"too many sessions (limit {MAX_SESSIONS})")
        self.sessions[key] = render(session)

    def reject(self, code: str) -> None:
        """Record one request refused on authentication with this AWS error code."""
        self.rejected[code] = self.rejected.get(code, 0) + 1

    def count(self, key: Key) -> None:
        """Record one GetProxySession request for a key."""
        self.calls_total += 1
        self.call_times.append(time.time())
        calls = self.calls
        count = calls.get(key)
        if count is not None:
            calls[key] = count + 1
        # Past the bound a key is only counted in the total, so memory stays flat.
        elif len(calls) < MAX_COUNTED_KEYS:
            calls[key] = 1
