"""A served request leaves no reference cycle behind: once its connection is gone, its
request/response cycle and scope are freed by reference counting alone, without waiting
for the collector (which the gateway runs rarely: `app.runtime`)."""

from __future__ import annotations

import asyncio
import gc
import socket
import weakref
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.server import ServerState

from app.http.protocol import gateway_protocol
from app.main import create_app
from app.settings import Settings

pytestmark = pytest.mark.fast

REQUEST = b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"


@pytest.mark.usefixtures("aws_environment")
@pytest.mark.parametrize("coalesce", [True, False], ids=["coalesced", "plain"])
def test_a_served_connection_is_freed_without_the_collector(coalesce: bool) -> None:
    app = create_app(Settings())
    protocol_class = gateway_protocol(16384, coalesce_writes=coalesce)
    config = uvicorn.Config(app, http=protocol_class, log_config=None, access_log=False)
    config.load()
    cycles: list[weakref.ref[Any]] = []
    original_init = RequestResponseCycle.__init__

    def noting(self: RequestResponseCycle, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        cycles.append(weakref.ref(self))

    async def talk() -> None:
        """One connection, three keep-alive requests, closed by the client."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        theirs.setblocking(False)
        protocol = protocol_class(config=config, server_state=ServerState(), app_state={})
        await loop.create_connection(lambda: protocol, sock=ours)
        for _ in range(3):
            await loop.sock_sendall(theirs, REQUEST)
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += await loop.sock_recv(theirs, 65536)
        theirs.close()
        await asyncio.sleep(0.05)  # the connection's end is seen

    async def serve() -> None:
        async with app.api.router.lifespan_context(app.api):
            await talk()

    gc.disable()
    try:
        RequestResponseCycle.__init__ = noting  # type: ignore[method-assign]
        try:
            asyncio.run(serve())
        finally:
            RequestResponseCycle.__init__ = original_init  # type: ignore[method-assign]
        alive = [ref for ref in cycles if ref() is not None]
    finally:
        gc.enable()

    assert len(cycles) == 3
    assert alive == []
