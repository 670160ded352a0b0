"""The one service both doors call (cache, single flight, negative caching, stale-if-error)."""

from __future__ import annotations

from app.service.sessions import Lookup, Missing, ProxySessionService, SessionSource

__all__ = ["Lookup", "Missing", "ProxySessionService", "SessionSource"]
