"""Renders GraphQL errors: the gateway's codes in `extensions`, anything unexpected masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionContext, ExecutionResult

from app.domain.errors import (
    BadUserInput,
    GatewayError,
    GraphQLParseFailed,
    GraphQLValidationFailed,
    InternalError,
)
from app.graphql.limits import Refusal
from app.graphql.persisted import Manifest
from app.http.errors import graphql_extensions
from app.observability.context import RequestContext

log = logging.getLogger(__name__)

# graphql-core appends suggestions to many messages (arguments, types, enum values);
# strawberry's `disable_field_suggestions` only strips them from unknown fields.
SUGGESTION = " Did you mean "


def _readable(message: str) -> str:
    return message.split(SUGGESTION, 1)[0]


def format_error(error: GraphQLError, request_id: str | None = None) -> GraphQLError:
    """Give `error` its code; mask an unexpected exception to INTERNAL_SERVER_ERROR."""
    original = error.original_error
    coded: GatewayError
    if isinstance(original, GatewayError):
        coded = original
    elif error.path is not None or (
        original is not None and not isinstance(original, GraphQLError)
    ):
        log.error(
            "unexpected error in GraphQL resolution: %s",
            type(original).__name__ if original is not None else error.message,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        coded = InternalError("Internal server error.")
    elif isinstance(error, GraphQLSyntaxError):
        coded = GraphQLParseFailed(error.message)
    elif original is not None:
        # graphql-core's own error coercing a variable's value: the caller's input is wrong.
        coded = BadUserInput(_readable(error.message))
    else:
        coded = GraphQLValidationFailed(_readable(error.message))
    return GraphQLError(
        coded.detail,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=graphql_extensions(coded, request_id),
    )


def refused_limits(result: ExecutionResult) -> set[str]:
    """The limits that refused the document, if any (each counted once per request)."""
    return {error.limit for error in result.errors or () if isinstance(error, Refusal)}


class OperationMetrics(SchemaExtension):
    """Counts each operation by type, outcome and trusted document."""

    def __init__(self, manifest: Manifest) -> None:
        super().__init__()
        self._manifest = manifest

    def on_operation(self) -> Iterator[None]:
        failed = True
        try:
            yield
            failed = bool(getattr(self.execution_context.result, "errors", None))
        finally:
            metrics = getattr(self.execution_context.context, "metrics", None)
            if metrics is not None:
                try:
                    kind = self.execution_context.operation_type.value
                except RuntimeError:  # the document did not parse
                    kind = "unknown"
                document = self._manifest.label(self.execution_context.query)
                metrics.graphql_operation(kind, "error" if failed else "ok", document)
                request = getattr(self.execution_context.context, "facts", None)
                facts = request.trace if isinstance(request, RequestContext) else None
                if facts is not None:
                    facts.operation_type = None if kind == "unknown" else kind
                    facts.operation_name = _operation_name(self.execution_context)


def _operation_name(context: ExecutionContext) -> str | None:
    """The executed operation's name (the one asked for, or the document's only one)."""
    try:
        return context.operation_name
    except RuntimeError:  # the document did not parse
        return None


def http_result(result: ExecutionResult, request_id: str | None) -> GraphQLHTTPResponse:
    """The response body, every error given its code and the request's id (done here, where
    every path meets)."""
    body: GraphQLHTTPResponse = {"data": result.data}
    if result.errors:
        body["errors"] = [format_error(error, request_id).formatted for error in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return body
