"""The GraphQL schema, exactly the contract's SDL, and the router that serves it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import strawberry
from graphql import GraphQLError, specified_rules
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, Info

from app.graphql.context import Context, context_getter
from app.graphql.documents import DocumentCache, Documents, graphql_schema
from app.graphql.errors import OperationMetrics
from app.graphql.limits import Limits, validation_rules
from app.graphql.node_ids import session_key
from app.graphql.persisted import Manifest
from app.graphql.response_cache import ResponseCache
from app.graphql.transport import GatewayRouter
from app.graphql.types import DATETIME, Node, ProxySession
from app.settings import Settings


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

    @strawberry.field(  # type: ignore[untyped-decorator]
        description="The object with this global id (Relay's Global Object Identification):"
        " a proxy session, through the same cache; null with an error when it cannot be had."
    )
    async def node(self, info: Info[Context, None], id: strawberry.ID) -> Node | None:
        key = session_key(id)
        return await info.context.proxy_session(*key)


class GatewaySchema(strawberry.Schema):
    """A schema whose errors are logged where they are rendered, not by strawberry's logger."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Expected errors are not worth a traceback; unexpected ones are logged when masked."""


def build_schema(
    *,
    introspection: bool = True,
    limits: Limits | None = None,
    manifest: Manifest | None = None,
    tuned: bool = True,
) -> strawberry.Schema:
    """The schema, refusing documents over `limits` (and introspection when turned off),
    with the manifest's trusted documents parsed and validated (ManifestError if one is not
    valid).

    `tuned`: documents parsed and validated once each (`app.graphql.documents`), with the
    field-merging check bounded (`app.graphql.merging`); else strawberry parses and
    validates every request itself, with its token limiter and graphql-core's own rules."""
    limits = limits or Limits()
    manifest = manifest or Manifest.empty()
    # Built once: the rule classes and the document cache are shared by every request.
    rules = validation_rules(limits, introspection=introspection)
    config = StrawberryConfig(scalar_map={datetime: DATETIME}, disable_field_suggestions=True)
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        lambda: OperationMetrics(manifest),
        lambda: AddValidationRules(rules),
    ]
    if not tuned:
        extensions.append(lambda: MaxTokensLimiter(limits.max_tokens))
        return GatewaySchema(query=Query, extensions=extensions, config=config)
    documents = Documents(limits.max_tokens)
    extensions.insert(1, lambda: DocumentCache(documents))
    schema = GatewaySchema(query=Query, extensions=extensions, config=config)
    # The rules a request runs with: strawberry's defaults (the specification's), then ours.
    documents.trust(graphql_schema(schema), manifest, (*specified_rules, *rules))
    return schema


def load_manifest(settings: Settings) -> Manifest:
    """The trusted documents the settings name (none without a manifest file)."""
    path = settings.graphql_persisted_documents_file
    if path is None:
        return Manifest.empty()
    return Manifest.load(path, persisted_only=settings.graphql_persisted_only)


def build_router(settings: Settings, response_cache: ResponseCache | None = None) -> GatewayRouter:
    """The `/graphql` route: JSON POSTs, GraphiQL on a browser's `GET` when turned on.

    Raises ManifestError for a trusted-documents manifest that cannot be used."""
    limits = Limits.of(settings)
    manifest = load_manifest(settings)
    return GatewayRouter(
        build_schema(
            introspection=settings.graphql_introspection,
            limits=limits,
            manifest=manifest,
            tuned=settings.graphql_tuning,
        ),
        graphiql=settings.graphiql,
        context_getter=context_getter(mask_phones=settings.mask_phone_numbers != "none"),
        response_cache=response_cache,
        manifest=manifest,
    )
