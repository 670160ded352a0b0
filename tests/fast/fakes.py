"""A `SessionSource` at the service's seam, for the fast tier: sessions from a dict, faults
on demand, every call counted; and a clock the tests move."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Any

from app.domain.errors import GatewayError, NotFound
from app.domain.model import ProxySession
from app.domain.types import CallRecord, SessionKey
from harness import sample


class FakeSource:
    """Answers from `sessions`; a key in `faults` raises its error; `delay` before each."""

    def __init__(self) -> None:
        self.sessions: dict[SessionKey, dict[str, Any]] = {}
        self.faults: dict[SessionKey, GatewayError] = {}
        self.calls: Counter[SessionKey] = Counter()
        self.delay = 0.0

    def seed(self, key: SessionKey, **members: Any) -> None:
        """Store the sample session under `key`, timestamps parsed as botocore parses them."""
        session = {**sample.session(ids=False), **members}
        self.sessions[key] = {
            name: datetime.fromisoformat(value) if name.endswith("Timestamp") else value
            for name, value in session.items()
        }

    async def get_proxy_session(
        self, key: SessionKey, deadline: float | None = None, record: CallRecord | None = None
    ) -> ProxySession:
        self.calls[key] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if key in self.faults:
            raise self.faults[key]
        members = self.sessions.get(key)
        if members is None:
            raise NotFound("No such proxy session.", upstream_code="NotFoundException")
        return ProxySession.from_aws(members, key)


class Clock:
    """Monotonic seconds the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
