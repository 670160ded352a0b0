"""The GraphQL schema, exactly the contract's SDL, and the router that serves it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import strawberry
from fastapi import Request
from graphql import GraphQLError
from strawberry.extensions import (
    DisableIntrospection,
    ParserCache,
    SchemaExtension,
    ValidationCache,
)
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult, Info

from app.graphql.context import Context
from app.graphql.errors import OperationMetrics, http_result
from app.graphql.types import DATETIME, ProxySession
from app.revalidation import wants_revalidation
from app.settings import Settings
from app.state import get_service, get_state

CACHE_DOCUMENTS = 1024


@strawberry.type
class Query:
    @strawberry.field(description="One proxy session; null with an error when it cannot be had.")  # type: ignore[untyped-decorator]
    async def proxy_session(
        self,
        info: Info[Context, None],
        voice_connector_id: strawberry.ID,
        proxy_session_id: strawberry.ID,
    ) -> ProxySession | None:
        return await info.context.proxy_session(voice_connector_id, proxy_session_id)


class GatewaySchema(strawberry.Schema):
    """A schema whose errors are logged where they are rendered, not by strawberry's logger."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Expected errors are not worth a traceback; unexpected ones are logged when masked."""


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    """The schema; introspection is refused at validation when turned off."""
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationMetrics,
        lambda: ParserCache(maxsize=CACHE_DOCUMENTS),
        lambda: ValidationCache(maxsize=CACHE_DOCUMENTS),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    config = StrawberryConfig(scalar_map={datetime: DATETIME}, disable_field_suggestions=True)
    return GatewaySchema(query=Query, extensions=extensions, config=config)


async def _context(request: Request) -> Context:
    return Context(
        get_service(request),
        get_state(request).metrics,
        revalidate=wants_revalidation(
            request.headers.get("cache-control"), request.headers.get("pragma")
        ),
    )


class GatewayRouter(GraphQLRouter[Context, None]):
    """strawberry's FastAPI router, rendering errors with the gateway's codes."""

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Give every error its `extensions.code`; mask the unexpected ones."""
        return http_result(result)


def build_router(settings: Settings) -> GraphQLRouter[Context, None]:
    """The `/graphql` route: POST only, GraphiQL on `GET` when turned on."""
    return GatewayRouter(
        build_schema(introspection=settings.graphql_introspection),
        path="/graphql",
        graphql_ide="graphiql" if settings.graphiql else None,
        allow_queries_via_get=False,
        context_getter=_context,
        multipart_uploads_enabled=False,
    )
