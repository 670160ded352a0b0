"""What the tests of GraphQL refusals share: a refused document's message, the refusals
counted, and that nothing was asked upstream."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.support.servers import Emulator, Gateway

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
SESSION_ARGS = "voiceConnectorId: $vc, proxySessionId: $ps"
VARIABLES = "query Q($vc: ID!, $ps: ID!)"


@contextmanager
def no_upstream_call(emulator: Emulator) -> Iterator[None]:
    """Assert that the block makes no GetProxySession call."""
    before = emulator.total_calls()
    yield
    assert emulator.total_calls() == before


def refusal(reply: httpx.Response) -> str:
    """The message of a refused document (asserting it was refused before execution)."""
    assert reply.status_code == 200
    body = reply.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == VALIDATION_FAILED
    message: str = body["errors"][0]["message"]
    return message


def refused_total(gateway: Gateway, limit: str) -> float:
    """`gateway_graphql_refused_total{limit=...}` as the gateway reports it."""
    return gateway.metric("gateway_graphql_refused_total", limit=limit)
