"""GraphQL errors suggest nothing: no `Did you mean`, whatever was mistyped."""

from __future__ import annotations

import pytest

from tests.graphql.refusals import VALIDATION_FAILED, no_upstream_call
from tests.support.servers import Emulator, Gateway

TYPOS = [
    '{ proxySesion(voiceConnectorId: "a", proxySessionId: "b") { name } }',
    '{ proxySession(voiceConnectorID: "a", proxySessionId: "b") { name } }',
    '{ proxySession(voiceConnectorId: "a", proxySessionId: "b") { nme } }',
    'query Q($vc: Id!) { proxySession(voiceConnectorId: $vc, proxySessionId: "b") { name } }',
    '{ proxySession(voiceConnectorId: "a", proxySessionId: "b") { ... on ProxySesion { name } } }',
    "fragment F on ProxySesion { name } { ...F }",
    '{ proxySession(voiceConnectorId: "a", proxySessionId: "b") { name @skip(iff: true) } }',
    '{ proxySession(voiceConnectorId: "a", proxySessionId: "b") { name @skipp(if: true) } }',
    "query Q($s: ProxySessionStatus = OPN) { __typename }",
    "{ __schema { typess { name } } }",
]


@pytest.mark.parametrize("document", TYPOS)
def test_no_suggestions_are_ever_made(
    gateway: Gateway, introspective: Gateway, emulator: Emulator, document: str
) -> None:
    with no_upstream_call(emulator):
        replies = [gateway.graphql(document), introspective.graphql(document)]

    for reply in replies:
        assert reply.json()["errors"][0]["extensions"]["code"] == VALIDATION_FAILED
        assert "did you mean" not in reply.text.lower()
