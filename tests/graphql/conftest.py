"""Fixtures for the GraphQL tests: a gateway with introspection and GraphiQL turned on."""

from __future__ import annotations

import pytest

from tests.conftest import GatewayFactory
from tests.support.servers import Gateway


@pytest.fixture
def introspective(gateway_factory: GatewayFactory) -> Gateway:
    """A gateway with introspection and GraphiQL on (as `make run` has them)."""
    return gateway_factory(graphql_introspection=True, graphiql=True)
