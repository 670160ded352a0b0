"""Whole replies written at once: a cached answer sent in one write, without ASGI messages.

A cache hit's headers and body are known before it is sent, and the same for every hit of
one entry. Sent as ASGI messages, each hit would still pay uvicorn's `send` twice: two
awaits, every header checked against two regular expressions, lower-cased and joined again.
So the protocol (`app.http.protocol`) puts a writer in each request's scope under
`WRITE_REPLY`, the edge wraps it to add its own headers and to note the status (as it wraps
`send`), and the doors' fast paths hand it the status, the headers already encoded
(`encode_headers`, once per entry) and the body. The writer sends exactly the bytes
uvicorn's `send` would (a test holds it to that), or declines, and the caller sends ASGI
messages as usual: under another server, for `HEAD`, with uvicorn's access log on, once
the transport asked for a pause, or after a response has started.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import partial

from starlette.types import Scope
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, RequestResponseCycle

WRITE_REPLY = "gateway.write_reply"
"""The scope key of the request's `WriteReply`, when the server offers one."""

WriteReply = Callable[[int, bytes, bytes], bool]
"""Writes a whole reply (status, encoded headers, body); False when it declines."""

# uvicorn's own checks of a header (uvicorn.protocols.utils), made once per encoding here.
_NAME = re.compile(rb"[\x00-\x1F\x7F()<>@,;:\[\]={} \t\\\"]")
_VALUE = re.compile(rb"[\x00-\x08\x0A-\x1F\x7F]")
# Headers that change the framing or the connection: uvicorn acts on them, this writer does
# not, so a reply carrying one goes through `send`.
_FRAMING = frozenset({b"connection", b"transfer-encoding"})
_CLOSE = b"connection: close\r\n"


def encode_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Header lines as uvicorn writes them (`name: value\\r\\n`, the name lower-cased).

    Raises ValueError for a header uvicorn would refuse or act on: what is encoded here
    is sent unchecked.
    """
    lines = []
    for raw_name, value in headers:
        name = raw_name.lower()
        if _NAME.search(name) or _VALUE.search(value) or name in _FRAMING:
            raise ValueError(f"header {name!r} cannot be written whole")
        lines.append(b"%s: %s\r\n" % (name, value))
    return b"".join(lines)


def write_now(scope: Scope, status: int, head: bytes, body: bytes) -> bool:
    """Write the reply through the request's writer; False when there is none or it
    declines (then send it as ASGI messages)."""
    write: WriteReply | None = scope.get(WRITE_REPLY)
    return write is not None and write(status, head, body)


def cycle_writer(cycle: RequestResponseCycle) -> WriteReply:
    """The writer for one of uvicorn's request/response cycles (httptools protocol)."""
    return partial(_write_whole, cycle)


class _EncodedDefaults:
    """uvicorn's default headers (the Date, once a second) change as a whole list: each
    list is encoded once."""

    __slots__ = ("encoded", "headers")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] | None = None
        self.encoded = b""

    def __call__(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        if headers is not self.headers:
            self.encoded = b"".join(b"%s: %s\r\n" % (n.lower(), v) for n, v in headers)
            self.headers = headers  # held, so its id is not reused
        return self.encoded


_encoded_defaults = _EncodedDefaults()


def _write_whole(cycle: RequestResponseCycle, status: int, head: bytes, body: bytes) -> bool:
    """What `cycle.send` does for a start and a last body message, in one write."""
    if (
        cycle.response_started
        or cycle.disconnected
        or cycle.flow.write_paused
        or cycle.access_log
        or cycle.scope["method"] == "HEAD"
    ):
        return False
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    keep_alive = cycle.keep_alive
    end = b"\r\n" if keep_alive else _CLOSE + b"\r\n"
    defaults = _encoded_defaults(cycle.default_headers)
    cycle.transport.write(b"".join((STATUS_LINE[status], defaults, head, end, body)))
    cycle.response_complete = True
    cycle.message_event.set()
    if not keep_alive:
        cycle.transport.close()
    cycle.on_response()
    return True
