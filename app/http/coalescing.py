"""A response's head and body leave in one write.

uvicorn writes a response's head when the app sends `http.response.start` and its body
when the app sends `http.response.body`: two writes, and with nothing queued each is a
system call of its own. A hit is small and sent whole in one step of the event loop, so
the protocol (`app.http.protocol`) hands uvicorn this transport, which gathers what is
written in one step and writes it once at the end of it. Apps and middleware still see
plain ASGI `send`; only the number of writes changes. `GATEWAY_HTTP_TUNING=off` turns it
off.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingTransport:
    """Gathers the writes of one event-loop step and writes them once; the rest is the
    transport's own."""

    __slots__ = ("_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        """Queue `data`; the step's writes leave together when it ends."""
        pending = self._pending
        if not pending:
            self._loop.call_soon(self.flush)
        pending.append(data)

    def flush(self) -> None:
        """Write what is queued, in one write."""
        pending = self._pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        """Write what is queued, then close."""
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    @property
    def transport(self) -> asyncio.Transport:
        """The transport written to."""
        return self._transport

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
