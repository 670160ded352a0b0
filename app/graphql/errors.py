"""Renders GraphQL errors: the gateway's codes in `extensions`, anything unexpected masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from app.errors import GatewayError, InternalError
from app.observability.context import current_request_id

log = logging.getLogger(__name__)

VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
PARSE_FAILED = "GRAPHQL_PARSE_FAILED"


def _extensions(code: str, upstream_code: str | None = None) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": code}
    if upstream_code is not None:
        extensions["upstreamCode"] = upstream_code
    extensions["requestId"] = current_request_id()
    return extensions


def format_error(error: GraphQLError) -> GraphQLError:
    """Give `error` its code; mask an unexpected exception to INTERNAL_SERVER_ERROR."""
    original = error.original_error
    if isinstance(original, GatewayError):
        message, extensions = original.detail, _extensions(original.code, original.upstream_code)
    elif original is not None or error.path is not None:
        log.error(
            "unexpected error in GraphQL resolution: %s",
            type(original).__name__ if original is not None else error.message,
            exc_info=(type(original), original, original.__traceback__) if original else None,
        )
        internal = InternalError("Internal server error.")
        message, extensions = internal.detail, _extensions(internal.code)
    elif isinstance(error, GraphQLSyntaxError):
        message, extensions = error.message, _extensions(PARSE_FAILED)
    else:
        message, extensions = error.message, _extensions(VALIDATION_FAILED)
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class OperationMetrics(SchemaExtension):
    """Counts each operation by type and outcome."""

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
                metrics.graphql_operation(kind, "error" if failed else "ok")


def http_result(result: ExecutionResult) -> GraphQLHTTPResponse:
    """The response body, every error given its code (done here, where every path meets)."""
    body: GraphQLHTTPResponse = {"data": result.data}
    if result.errors:
        body["errors"] = [format_error(error).formatted for error in result.errors]
    if result.extensions:
        body["extensions"] = result.extensions
    return body
