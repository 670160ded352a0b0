"""A response's head and body leave in one write (app.http.coalescing); with
`GATEWAY_HTTP_TUNING=off` uvicorn writes each as it comes, and the answers are the same."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from app.http.coalescing import CoalescingTransport
from tests.conftest import GatewayFactory
from tests.http.wire import connect, read_responses
from tests.support.servers import Gateway


class _Recorder(asyncio.Protocol):
    """Keeps the transport it is given."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport


async def _pair() -> tuple[asyncio.Transport, socket.socket, list[bytes]]:
    """A real transport over a socket pair, its writes counted, and the other end."""
    ours, theirs = socket.socketpair()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(_Recorder, sock=ours)
    writes: list[bytes] = []
    write = transport.write

    def counted(data: Any) -> None:
        writes.append(bytes(data))
        write(data)

    transport.write = counted  # type: ignore[method-assign]
    return transport, theirs, writes


@pytest.mark.fast
def test_writes_of_one_loop_step_leave_in_one_write() -> None:
    async def scenario() -> tuple[list[bytes], bytes]:
        transport, theirs, writes = await _pair()
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        coalescing.write(b"HTTP/1.1 200 OK\r\n\r\n")
        coalescing.write(b"body")
        assert writes == []  # nothing yet: the step has not ended
        await asyncio.sleep(0)
        coalescing.write(b"next")
        coalescing.close()  # what is queued goes before the close
        await asyncio.sleep(0.01)
        received = theirs.recv(100)
        theirs.close()
        return writes, received

    writes, received = asyncio.run(scenario())

    assert writes == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]
    assert received == b"HTTP/1.1 200 OK\r\n\r\nbodynext"


@pytest.fixture
def untuned(gateway_factory: GatewayFactory) -> Gateway:
    return gateway_factory(http_tuning="false")


@pytest.mark.parametrize("tuned", [True, False], ids=["coalesced", "as uvicorn writes"])
def test_pipelined_answers_are_the_same_either_way(
    gateway: Gateway, untuned: Gateway, seeded: tuple[str, str], tuned: bool
) -> None:
    server = gateway if tuned else untuned
    vc, ps = seeded
    request = (
        f"GET /v1/voice-connectors/{vc}/proxy-sessions/{ps} HTTP/1.1\r\nHost: gw\r\n\r\n"
    ).encode()
    with connect(server) as sock:
        sock.sendall(request * 3 + b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        answers = read_responses(sock, 4)

    assert [status for status, _, _ in answers] == [200, 200, 200, 200]
    assert len({body for _, _, body in answers[:3]}) == 1
    assert answers[3][2] == b'{"status":"ok"}'
