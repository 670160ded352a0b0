"""Which upstream call answered a request, for tracing: a request that joined another's
call (single flight) links its span to that call's attempts.

Both variables stay None with tracing off. The edge gives each traced request a list of
the calls it joined (`joined_calls`); the service gives each flight it starts a record
(`current_call`) that the upstream client fills with its attempts' span contexts, and
hands that record to the requests that join the flight.
"""

from __future__ import annotations

from contextvars import ContextVar

CallRecord = list[object]
"""The span contexts of one upstream call's attempts (opaque here)."""

current_call: ContextVar[CallRecord | None] = ContextVar("current_call", default=None)
joined_calls: ContextVar[list[CallRecord] | None] = ContextVar("joined_calls", default=None)
