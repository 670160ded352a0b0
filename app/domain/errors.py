"""The gateway's own errors, which both doors render.

GatewayError
├── BadUserInput             400 BAD_USER_INPUT
├── BadRequest               400 BAD_REQUEST (a GraphQL request that is not one)
├── GraphQLParseFailed       400 GRAPHQL_PARSE_FAILED
├── GraphQLValidationFailed  400 GRAPHQL_VALIDATION_FAILED (a limit, or the schema's rules)
├── PersistedQueryNotFound   400 PERSISTED_QUERY_NOT_FOUND (a document id not in the manifest)
├── PersistedQueryOnly       400 PERSISTED_QUERY_ONLY (a document text not in the manifest)
├── Unauthenticated          401 UNAUTHENTICATED (WWW-Authenticate)
├── Forbidden                403 FORBIDDEN
├── NotFound                 404 NOT_FOUND
├── MethodNotAllowed         405 METHOD_NOT_ALLOWED (Allow)
├── RequestTimeout           408 REQUEST_TIMEOUT (the body did not arrive in time)
├── PayloadTooLarge          413 PAYLOAD_TOO_LARGE
├── UnsupportedMediaType     415 UNSUPPORTED_MEDIA_TYPE
├── HeadersTooLarge          431 HEADERS_TOO_LARGE (request line and headers over the limit)
├── Overloaded               503 OVERLOADED (Retry-After)
├── ShuttingDown             503 SHUTTING_DOWN (Retry-After; still running when the grace ended)
├── InternalError            500 INTERNAL_SERVER_ERROR
├── UpstreamUnauthorized     502 UPSTREAM_UNAUTHORIZED
├── UpstreamError            502 UPSTREAM_ERROR
└── UpstreamFault            (AWS or the path to it failed: stale entries may answer)
    ├── Throttled            429 THROTTLED (Retry-After)
    ├── UpstreamFailure      502 UPSTREAM_FAILURE
    ├── ServiceUnavailable   503 SERVICE_UNAVAILABLE (Retry-After)
    ├── UpstreamTimeout      504 UPSTREAM_TIMEOUT
    ├── UpstreamUnavailable  502 UPSTREAM_UNAVAILABLE
    └── CircuitOpen          503 CIRCUIT_OPEN (Retry-After; no upstream call made)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    pass


class GatewayError(Exception):
    """Base of every error the gateway renders to a caller."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"
    title: ClassVar[str] = "Internal server error"
    retry_after: ClassVar[int | None] = None

    def __init__(self, detail: str, *, upstream_code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.upstream_code = upstream_code


class BadUserInput(GatewayError):
    """The caller's input fails validation, here or at AWS."""

    status, code, title = 400, "BAD_USER_INPUT", "Bad request"


class BadRequest(GatewayError):
    """A GraphQL request that is not one: no query, a body that is not a JSON object."""

    status, code, title = 400, "BAD_REQUEST", "Bad request"


class GraphQLParseFailed(GatewayError):
    """The GraphQL document does not parse."""

    status, code, title = 400, "GRAPHQL_PARSE_FAILED", "GraphQL parse failed"


class GraphQLValidationFailed(GatewayError):
    """The GraphQL document breaks a limit or the schema's rules; nothing was executed."""

    status, code, title = 400, "GRAPHQL_VALIDATION_FAILED", "GraphQL validation failed"

    def __init__(self, detail: str, *, limit: str | None = None) -> None:
        super().__init__(detail)
        self.limit = limit


BEARER_CHALLENGE = b'Bearer realm="proxy-session-gateway"'


class PersistedQueryNotFound(GatewayError):
    """A GraphQL request named a trusted document by an id the manifest does not hold."""

    status, code, title = 400, "PERSISTED_QUERY_NOT_FOUND", "Persisted query not found"


class PersistedQueryOnly(GatewayError):
    """Only trusted documents run here, and this request's document text is not one."""

    status, code, title = 400, "PERSISTED_QUERY_ONLY", "Persisted queries only"


class Unauthenticated(GatewayError):
    """The caller sent no bearer token or a wrong one."""

    status, code, title = 401, "UNAUTHENTICATED", "Unauthenticated"

    def __init__(self, detail: str, *, challenge: bytes = BEARER_CHALLENGE) -> None:
        super().__init__(detail)
        self.challenge = challenge


class Forbidden(GatewayError):
    """AWS forbids the request."""

    status, code, title = 403, "FORBIDDEN", "Forbidden"


class NotFound(GatewayError):
    """The proxy session (or voice connector) does not exist."""

    status, code, title = 404, "NOT_FOUND", "Not found"


class MethodNotAllowed(GatewayError):
    """The route exists but not for this method."""

    status, code, title = 405, "METHOD_NOT_ALLOWED", "Method not allowed"

    def __init__(self, detail: str, *, allow: tuple[str, ...]) -> None:
        super().__init__(detail)
        self.allow = allow


class RequestTimeout(GatewayError):
    """The request body did not arrive whole within GATEWAY_BODY_TIMEOUT_SECONDS."""

    status, code, title = 408, "REQUEST_TIMEOUT", "Request timeout"


class PayloadTooLarge(GatewayError):
    """The request body is larger than GATEWAY_MAX_BODY_BYTES."""

    status, code, title = 413, "PAYLOAD_TOO_LARGE", "Payload too large"


class UnsupportedMediaType(GatewayError):
    """The request body is not in a media type the route accepts."""

    status, code, title = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class HeadersTooLarge(GatewayError):
    """The request line and headers are larger than GATEWAY_MAX_HEADER_BYTES."""

    status, code, title = 431, "HEADERS_TOO_LARGE", "Request header fields too large"


class Overloaded(GatewayError):
    """More requests in flight than GATEWAY_MAX_INFLIGHT: shed at once."""

    status, code, title, retry_after = 503, "OVERLOADED", "Overloaded", 1


class ShuttingDown(GatewayError):
    """The request was still running when the shutdown grace period ended."""

    status, code, title, retry_after = 503, "SHUTTING_DOWN", "Shutting down", 1


class InternalError(GatewayError):
    """A bug in the gateway itself; its detail never leaves the process."""


class UpstreamUnauthorized(GatewayError):
    """AWS refused the gateway's own identity: an operator problem."""

    status, code, title = 502, "UPSTREAM_UNAUTHORIZED", "Upstream refused the gateway's identity"


class UpstreamError(GatewayError):
    """Any other AWS error, including codes this gateway does not know."""

    status, code, title = 502, "UPSTREAM_ERROR", "Upstream error"


class UpstreamFault(GatewayError):
    """A failure of AWS or the path to it, not of the request: stale entries may answer."""


class Throttled(UpstreamFault):
    """AWS kept throttling after the retries."""

    status, code, title, retry_after = 429, "THROTTLED", "Too many requests", 1


class UpstreamFailure(UpstreamFault):
    """AWS reported an internal failure."""

    status, code, title = 502, "UPSTREAM_FAILURE", "Upstream failure"


class ServiceUnavailable(UpstreamFault):
    """AWS reported itself unavailable."""

    status, code, title, retry_after = 503, "SERVICE_UNAVAILABLE", "Service unavailable", 5


class UpstreamTimeout(UpstreamFault):
    """The whole upstream deadline passed, retries included."""

    status, code, title = 504, "UPSTREAM_TIMEOUT", "Upstream timeout"


class UpstreamUnavailable(UpstreamFault):
    """AWS could not be reached, reset the connection or sent a malformed reply."""

    status, code, title = 502, "UPSTREAM_UNAVAILABLE", "Upstream unavailable"


class CircuitOpen(UpstreamFault):
    """The circuit breaker is open and no stale entry can answer: no upstream call was made."""

    status, code, title, retry_after = 503, "CIRCUIT_OPEN", "Upstream circuit open", 10

    def __init__(self, detail: str, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        if retry_after is not None:
            self.retry_after = retry_after  # type: ignore[misc]


_GRAPHQL_ONLY: tuple[type[GatewayError], ...] = (
    BadRequest,
    GraphQLParseFailed,
    GraphQLValidationFailed,
    PersistedQueryNotFound,
    PersistedQueryOnly,
)
GRAPHQL_ONLY = frozenset(_GRAPHQL_ONLY)
"""Errors only the GraphQL door answers (the REST door has no document to refuse)."""


def error_table() -> list[type[GatewayError]]:
    """Every error a caller can be answered with, in the order of the tree above.

    `UpstreamFault` only groups the faults a stale entry may answer; it is never raised.
    """
    table: list[type[GatewayError]] = []

    def walk(cls: type[GatewayError]) -> None:
        for sub in cls.__subclasses__():
            if sub is not UpstreamFault:
                table.append(sub)
            walk(sub)

    walk(GatewayError)
    return table


_REPORTABLE: tuple[type[GatewayError], ...] = (
    BadUserInput,
    Forbidden,
    UpstreamUnauthorized,
    UpstreamError,
    Throttled,
    UpstreamFailure,
    ServiceUnavailable,
    UpstreamTimeout,
    UpstreamUnavailable,
)
REPORTABLE = {cls.code: cls for cls in _REPORTABLE}
"""The failures of an AWS call one replica may report to the others by code: what AWS (or
the way to it) answered about the session. Never a 500, and never one replica's own state
(its breaker)."""


def reportable_code(error: GatewayError) -> str | None:
    """The code by which a replica may report `error` to the others, or None (a 500, or
    one replica's own state: only exactly the reportable kinds, not their subclasses)."""
    return error.code if REPORTABLE.get(error.code) is type(error) else None


def reported_error(code: object) -> GatewayError | None:
    """The error another replica reported for its AWS call by `code`, with that code's own
    detail (a report carries no text); None for a code no report may carry."""
    cls = REPORTABLE.get(code) if isinstance(code, str) else None
    if cls is None:
        return None
    return cls(f"{cls.title}: the AWS call made for this session by another replica failed.")
