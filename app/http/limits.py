"""The body limits: a body past `GATEWAY_MAX_BODY_BYTES` is refused with 413, early, and a
body that does not arrive whole within `GATEWAY_BODY_TIMEOUT_SECONDS` with 408.

A declared `Content-Length` is checked by the edge before anything runs; the body itself is
read whole by the edge (`read_body`), counted as it arrives, before the request takes an
in-flight slot, so a slow sender holds nothing but its connection.
"""

from __future__ import annotations

from starlette.types import Message, Receive

from app.domain.errors import PayloadTooLarge, RequestTimeout


class BodyTooLarge(Exception):
    """Raised by `read_body` once the body passes the limit."""

    def __init__(self, finished: bool) -> None:
        super().__init__("body too large")
        self.finished = finished  # whether the caller sent the last of it already


class Disconnected(Exception):
    """Raised by `read_body` when the caller went away before sending the whole body."""


def body_too_large(max_body: int) -> PayloadTooLarge:
    """The refusal of a body over `max_body` bytes."""
    return PayloadTooLarge(f"The request body is larger than {max_body} bytes.")


def body_timeout(seconds: float) -> RequestTimeout:
    """The refusal of a body that did not arrive whole within `seconds`."""
    return RequestTimeout(f"The request body did not arrive within {seconds:g} seconds.")


async def read_body(receive: Receive, max_body: int) -> bytes:
    """The whole request body, which must hold at most `max_body` bytes (the caller bounds
    the time it may take).

    Raises BodyTooLarge or Disconnected.
    """
    parts: list[bytes] = []
    received = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise Disconnected
        chunk: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        received += len(chunk)
        if received > max_body:
            raise BodyTooLarge(finished=not more)
        if not more:
            if not parts:
                return chunk
            parts.append(chunk)
            return b"".join(parts)
        parts.append(chunk)


def replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` (already read whole) first, then defers to `receive`
    (which reports the disconnect)."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def drain(receive: Receive, limit: int) -> None:
    """Read (a bounded amount of) what the caller is still sending, so it can read a refusal
    instead of failing on a closed socket mid-upload."""
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))
