"""The body limit: a body past `GATEWAY_MAX_BODY_BYTES` is refused with 413, early.

A declared `Content-Length` is checked by the edge before anything runs; a chunked body
is counted while the door reads it (`serve_with_body_limit`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.types import Message, Receive, Send

from app.domain.errors import PayloadTooLarge


class _BodyTooLarge(Exception):
    """Raised from `receive` once the body passes the limit."""


def body_too_large(max_body: int) -> PayloadTooLarge:
    """The refusal of a body over `max_body` bytes."""
    return PayloadTooLarge(f"The request body is larger than {max_body} bytes.")


async def serve_with_body_limit(
    serve: Callable[[Receive, Send], Awaitable[None]],
    receive: Receive,
    send: Send,
    max_body: int,
    on_too_large: Callable[[Send], Awaitable[None]],
) -> None:
    """Run `serve` with a `receive` that stops the body at `max_body` bytes; then refuse."""
    received = 0
    started = False
    body_done = False

    async def counting_receive() -> Message:
        nonlocal received, body_done
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            if received > max_body:
                raise _BodyTooLarge
        return message

    async def tracking_send(message: Message) -> None:
        nonlocal started
        started = started or message["type"] == "http.response.start"
        await send(message)

    try:
        await serve(counting_receive, tracking_send)
    except _BodyTooLarge:
        # A chunked body with no Content-Length: found out while the door reads it.
        if started:
            raise
        # Read (a bounded amount of) what the caller is still sending, so it can read the
        # 413 instead of failing on a closed socket mid-upload.
        if not body_done:  # after the last chunk, receive() would wait for a disconnect
            await _drain(receive, 4 * max_body)
        await on_too_large(send)


async def _drain(receive: Receive, limit: int) -> None:
    drained = 0
    while drained <= limit:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        drained += len(message.get("body", b""))
