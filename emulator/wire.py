"""The rest-json wire format of Chime SDK Voice GetProxySession, read from botocore's model."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import botocore.session
from aiohttp import web

SERVICE = "chime-sdk-voice"
OPERATION = "GetProxySession"
ERROR_NAMESPACE = "http://internal.amazon.com/coral/com.amazonaws.chimesdkvoice/"
CORAL_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.coral.service/"
JSON = "application/json"
UNMODELED_ERROR_STATUS = 400


@dataclass(frozen=True, slots=True)
class Operation:
    """The HTTP binding of the operation, its SigV4 signing name and each error's status."""

    method: str
    # One entry per path segment: the literal text, or None where an id goes.
    segments: tuple[str | None, ...]
    error_statuses: dict[str, int]
    signing_name: str

    def match(self, method: str, parts: list[str]) -> tuple[str, str] | None:
        """Return the two decoded ids if the method and raw path segments name this operation."""
        if method != self.method or len(parts) != len(self.segments):
            return None
        ids: list[str] = []
        for part, literal in zip(parts, self.segments, strict=True):
            if literal is None:
                ids.append(part)
            elif part != literal:
                return None
        if len(ids) != 2:
            return None
        return ids[0], ids[1]


def load_operation() -> Operation:
    """Read the GetProxySession HTTP binding, signing name and errors from botocore's model."""
    service = botocore.session.get_session().get_service_model(SERVICE)
    model = service.operation_model(OPERATION)
    http: dict[str, object] = dict(model.http)
    uri = str(http["requestUri"]).split("?", 1)[0]
    segments = tuple(
        None if part.startswith("{") and part.endswith("}") else part
        for part in uri.strip("/").split("/")
    )
    statuses: dict[str, int] = {}
    for shape in model.error_shapes:
        error: dict[str, object] = dict(shape.metadata.get("error", {}))
        code = str(error.get("code") or shape.name)
        statuses[code] = int(str(error["httpStatusCode"]))
    return Operation(str(http["method"]), segments, statuses, str(service.signing_name))


def request_id() -> str:
    """Return a fresh AWS-style request id."""
    return str(uuid.uuid4())


def ok(body: bytes) -> web.Response:
    """Answer 200 with a pre-rendered JSON body."""
    return web.Response(body=body, headers={"Content-Type": JSON, "x-amzn-RequestId": request_id()})


def short_code(code: str) -> str:
    """Return the Chime ``ErrorCode`` value carried in the body for an exception name."""
    # Chime bodies carry the ErrorCode enum (NotFound, Throttled...), not the shape name.
    for suffix in ("ClientException", "Exception"):
        if code.endswith(suffix) and len(code) > len(suffix):
            return code[: -len(suffix)]
    return code


def error(code: str, status: int, message: str) -> web.Response:
    """Answer a service error the way Chime SDK Voice does."""
    body = json.dumps({"Code": short_code(code), "Message": message}).encode()
    return _error(status, body, f"{code}:{ERROR_NAMESPACE}")


def denied(code: str, message: str) -> web.Response:
    """Answer a request whose authentication failed the way the AWS front door does."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return _error(403, body, code)


def unknown_operation() -> web.Response:
    """Answer a signed request that names no operation."""
    body = b'{"message":"Unknown operation"}'
    return _error(404, body, f"UnknownOperationException:{CORAL_NAMESPACE}")


def _error(status: int, body: bytes, error_type: str) -> web.Response:
    headers = {
        "Content-Type": JSON,
        "x-amzn-RequestId": request_id(),
        "x-amzn-ErrorType": error_type,
    }
    return web.Response(status=status, body=body, headers=headers)


def raw(status: int, body: bytes) -> web.Response:
    """Answer exactly this status and body, labelled as JSON."""
    return web.Response(
        status=status, body=body, headers={"Content-Type": JSON, "x-amzn-RequestId": request_id()}
    )


def redirect(status: int, location: str) -> web.Response:
    """Answer a redirect to `location`, as a load balancer or a captive portal might."""
    return web.Response(
        status=status,
        body=b"<html>moved</html>",
        headers={"Location": location, "Content-Type": "text/html"},
    )
