"""GraphQL over HTTP: `POST` with `application/json` only, every refusal a GraphQL body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from cross_web import HTTPException
from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.schema import BaseSchema
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET

from app.domain.errors import (
    BadRequest,
    GatewayError,
    GraphQLValidationFailed,
    MethodNotAllowed,
    PersistedQueryNotFound,
    UnsupportedMediaType,
)
from app.domain.model import etag_of
from app.graphql import ide
from app.graphql.context import Context
from app.graphql.errors import http_result, refused_limits
from app.graphql.media import GRAPHQL_RESPONSE_TYPE, prefers_graphql_response
from app.graphql.persisted import Manifest, named_document
from app.graphql.response_cache import ResponseCache, cache_key
from app.http.asgi import GRAPHQL_PATH as PATH
from app.http.asgi import request_context
from app.http.cache_status import etag_matches, private_max_age
from app.http.errors import error_response
from app.http.state import get_state

JSON = "application/json"
HTTP_OK = 200
HTTP_NOT_MODIFIED = 304
# Every other method gets a GraphQL-shaped 405 (or the IDE page) instead of the REST one.
NOT_POST = ["GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]


_JSON_BYTES = JSON.encode()


def is_json(content_type: str | bytes | None) -> bool:
    """Whether a Content-Type names exactly `application/json` (parameters aside).

    Form and text/plain posts are what a browser sends cross-site without a preflight.
    """
    if content_type == _JSON_BYTES:  # what nearly every client sends, decided at once
        return True
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == JSON


class GatewayRouter(GraphQLRouter[Context, None]):
    """strawberry's FastAPI router, narrowed to JSON POSTs and rendering errors with codes."""

    def __init__(
        self,
        schema: BaseSchema,
        *,
        graphiql: bool,
        context_getter: Callable[[Request], Awaitable[Context]],
        response_cache: ResponseCache | None = None,
        manifest: Manifest | None = None,
    ) -> None:
        self.manifest = manifest or Manifest.empty()
        super().__init__(
            schema,
            path=PATH,
            graphql_ide="graphiql" if graphiql else None,
            allow_queries_via_get=False,
            context_getter=context_getter,
            subscription_protocols=(),
            multipart_uploads_enabled=False,
        )
        # Keep strawberry's POST route only: its WebSocket route would run queries past
        # the HTTP middleware (limits, POST-only), and its GET route answers in plain text.
        self.routes[:] = [
            route
            for route in self.routes
            if isinstance(route, APIRoute) and "POST" in (route.methods or ())
        ]
        self.add_api_route(PATH, self.not_post, methods=NOT_POST, include_in_schema=False)
        self.response_cache = response_cache
        self._make_context = context_getter

    async def not_post(self, request: Request) -> Response:
        """A persisted query by `GET`; else the GraphiQL page for a browser when turned on;
        else 405: documents are POSTed."""
        if request.method in {"GET", "HEAD"} and _names_a_document(request):
            graphql_response = prefers_graphql_response(request.headers.get("accept"))
            response = await self._persisted_get(request, graphql_response)
            if graphql_response:
                response = _as_graphql_response(response)
            return response
        accept = request.headers.get("accept", "")
        if self.graphql_ide and request.method in {"GET", "HEAD"} and "text/html" in accept:
            html, policy = ide.page(self.graphql_ide_html)
            return HTMLResponse(html, headers={"content-security-policy": policy})
        refusal = MethodNotAllowed(
            "GraphQL is served on POST with Content-Type: application/json.", allow=("POST",)
        )
        return error_response(request.scope, refusal)

    # strawberry's `run` is overloaded for WebSockets too, which this router no longer serves.
    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """Serve one POST in the media type the client prefers (app.graphql.media)."""
        response = await self._run(request, context, root_value)
        if prefers_graphql_response(request.headers.get("accept")):
            return _as_graphql_response(response)
        return response

    async def _run(self, request: Any, context: Any, root_value: Any) -> Response:
        """Serve one POST; refusals and strawberry's plain-text errors become GraphQL bodies."""
        try:
            if not is_json(request.headers.get("content-type")):
                raise UnsupportedMediaType(
                    "GraphQL requests must have Content-Type: application/json."
                )
            response: Response = await super().run(request, context, root_value)
            return response
        except GatewayError as refused:
            if isinstance(refused, GraphQLValidationFailed) and refused.limit is not None:
                get_state(request).metrics.graphql_refusal(refused.limit)
            return error_response(request.scope, refused)
        except HTTPException as error:  # a malformed body, no query, an unknown operation name
            return error_response(request.scope, _strawberry_refusal(error))

    async def _persisted_get(self, request: Request, graphql_response: bool) -> Response:
        """Run the trusted document a `GET` names, answered with `Cache-Control` and an
        `ETag` as the REST door's (304 for a matching `If-None-Match`): browsers and CDNs
        can keep it. The ETag is of the representation (`graphql_response`: the body as
        `application/graphql-response+json`), so one media type's never matches the
        other's. A raw `query` over `GET` is refused (405)."""
        try:
            body = _get_parameters(request)
            self._check(body)
        except GatewayError as refused:
            return error_response(request.scope, refused)
        context = await self._make_context(request)
        result = await self.schema.execute(
            body["query"],
            variable_values=body.get("variables"),
            context_value=context,
            operation_name=body.get("operationName"),
            allowed_operation_types=(OperationType.QUERY,),
        )
        answer = self.encode_json(await self.process_result(request, result))
        if result.errors or not context.cacheable or context.fresh_for is None:
            return Response(answer, media_type=JSON, headers=_NOT_KEPT)
        etag = etag_of(GRAPHQL_RESPONSE_TYPE + b"\n" + answer if graphql_response else answer)
        headers = {
            "etag": etag,
            "cache-control": private_max_age(context.fresh_for).decode(),
            "vary": "accept, authorization",
        }
        if_none_match = request.headers.get("if-none-match")
        if if_none_match is not None and etag_matches(if_none_match, etag):
            return Response(status_code=304, headers=headers)
        return Response(answer, media_type=JSON, headers=headers)

    def _check(self, body: dict[str, Any]) -> None:
        """Refuse malformed `extensions`, and put the trusted document the request names
        (if any) in its `query` (strawberry checks the rest of a POST's shape)."""
        extensions = body.get("extensions")
        if extensions is not None and not isinstance(extensions, dict):
            raise BadRequest("The request's extensions must be a JSON object.")
        self.manifest.resolve(body)  # a trusted document named by id becomes the query

    def decode_json(self, data: str | bytes) -> object:
        """The request body, which must be one JSON object (batching is off)."""
        body = orjson.loads(data)  # orjson's error is a JSONDecodeError: strawberry's 400
        if isinstance(body, list):
            raise GraphQLValidationFailed(
                "Batched requests are not supported: send one operation per request.",
                limit="batching",
            )
        if not isinstance(body, dict):
            raise BadRequest("The request body must be a JSON object.")
        self._check(body)
        return body

    def encode_json(self, data: object) -> bytes:
        """The response body, encoded by orjson."""
        return orjson.dumps(data)

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        """Give every error its `extensions.code`, and count a refused document."""
        if result.errors:
            metrics = get_state(request).metrics
            for limit in refused_limits(result):
                metrics.graphql_refusal(limit)
        body = http_result(result, request_context(request.scope).request_id)
        if self.response_cache is not None and not result.errors and result.data is not None:
            await self._remember(request, body)
        return body

    async def _remember(self, request: Request, body: GraphQLHTTPResponse) -> None:
        """Keep a successful response for the fast path (app/graphql/fast_path.py)."""
        if request.method != "POST":  # the fast path serves POSTs; a GET has its own cache
            return
        context = getattr(request.state, "graphql_context", None)
        if not isinstance(context, Context) or not context.cacheable or self.response_cache is None:
            return
        key = cache_key(orjson.loads(await request.body()), self.manifest.text_of)
        if key is not None:
            sources = tuple(context.sources.items())
            facts = request_context(request.scope).trace
            name = None if facts is None else facts.operation_name
            document = self.manifest.label(key[0])  # type: ignore[index]
            self.response_cache.put(key, self.encode_json(body), sources, name, document)


_NOT_KEPT = {"cache-control": "no-store"}


def _names_a_document(request: Request) -> bool:
    """Whether a `GET`'s parameters name a trusted document (or carry a raw query)."""
    params = request.query_params
    return "documentId" in params or "extensions" in params or "query" in params


def _get_parameters(request: Request) -> dict[str, Any]:
    """A `GET`'s parameters as a request object: `documentId`, `operationName`, and the
    JSON-encoded `variables` and `extensions`. A raw `query` is refused (405)."""
    params = request.query_params
    if "query" in params:
        raise MethodNotAllowed(
            "A query is sent by POST: GET runs trusted documents only (documentId).",
            allow=("POST",),
        )
    body: dict[str, Any] = {}
    if "documentId" in params:
        body["documentId"] = params["documentId"]
    if "operationName" in params:
        body["operationName"] = params["operationName"]
    for name in ("variables", "extensions"):
        if name in params:
            try:
                body[name] = orjson.loads(params[name])
            except orjson.JSONDecodeError:
                raise BadRequest(f"The {name} parameter must be JSON.") from None
    if not isinstance(body.get("variables", {}), dict):
        raise BadRequest("The variables parameter must be a JSON object.")
    if named_document(body) is None:
        raise PersistedQueryNotFound("A GET names a trusted document by its id.")
    return body


def _as_graphql_response(response: Response) -> Response:
    """`response` as `application/graphql-response+json`: a result without `data` (the
    document did not parse, validate or take its variables) is a 400 without the entry."""
    if response.status_code == HTTP_NOT_MODIFIED:  # no body to type
        return response
    body = orjson.loads(response.body)
    if isinstance(body, dict) and "data" in body and body["data"] is None:
        del body["data"]
        status = 400 if response.status_code == HTTP_OK else response.status_code
        headers = {k: v for k, v in response.headers.items() if k != "content-length"}
        response = Response(orjson.dumps(body), status_code=status, headers=headers)
    response.headers["content-type"] = GRAPHQL_RESPONSE_TYPE.decode()
    return response


def _strawberry_refusal(error: HTTPException) -> GatewayError:
    """strawberry's own refusal (its status and reason) as the gateway's error."""
    if error.status_code == MethodNotAllowed.status:
        return MethodNotAllowed(error.reason, allow=("POST",))
    if error.status_code == UnsupportedMediaType.status:
        return UnsupportedMediaType(error.reason)
    return BadRequest(error.reason)
