"""A whole reply is the bytes uvicorn's `send` writes for the same answer, and leaves the
request/response cycle as `send` does; where it cannot, it declines."""

from __future__ import annotations

import asyncio
import logging

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from app.http.whole_reply import WRITE_REPLY, cycle_writer, encode_headers, write_now

DATE = [(b"date", b"Wed, 02 Dec 2026 05:00:00 GMT")]
HEADERS = (
    (b"etag", b'"abc"'),
    (b"cache-control", b"private, max-age=30"),
    (b"Cache-Status", b"proxy-gateway; hit; ttl=30"),  # upper case: uvicorn lowers it
    (b"content-length", b"11"),
    (b"content-type", b"application/json"),
)


class Transport:
    """What a cycle writes, and whether it closed the connection."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _cycle(
    *, keep_alive: bool = True, method: str = "GET", access_log: bool = False
) -> tuple[RequestResponseCycle, Transport, list[str]]:
    transport = Transport()
    responded: list[str] = []
    cycle = RequestResponseCycle(
        scope={"method": method, "http_version": "1.1", "path": "/"},  # type: ignore[typeddict-item]
        transport=transport,  # type: ignore[arg-type]
        flow=FlowControl(transport),  # type: ignore[arg-type]
        logger=logging.getLogger("test"),
        access_logger=logging.getLogger("test.access"),
        access_log=access_log,
        default_headers=DATE,
        message_event=asyncio.Event(),
        expect_100_continue=False,
        keep_alive=keep_alive,
        on_response=lambda: responded.append("done"),
    )
    return cycle, transport, responded


def _state(cycle: RequestResponseCycle) -> tuple[bool, bool, bool, bool]:
    return (
        cycle.response_started,
        cycle.response_complete,
        cycle.message_event.is_set(),
        cycle.keep_alive,
    )


Headers = tuple[tuple[bytes, bytes], ...]
Outcome = tuple[bytes, bool, list[str], tuple[bool, bool, bool, bool]]
"""What was written, whether the connection closed, the protocol told, the cycle's state."""


async def _sent(status: int, headers: Headers, body: bytes, keep_alive: bool) -> Outcome:
    cycle, transport, responded = _cycle(keep_alive=keep_alive)
    await cycle.send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await cycle.send({"type": "http.response.body", "body": body})
    return transport.written, transport.closed, responded, _state(cycle)


def _written(status: int, headers: Headers, body: bytes, keep_alive: bool) -> Outcome:
    cycle, transport, responded = _cycle(keep_alive=keep_alive)
    assert cycle_writer(cycle)(status, encode_headers(headers), body)
    return transport.written, transport.closed, responded, _state(cycle)


@pytest.mark.parametrize(
    ("status", "headers", "body", "keep_alive"),
    [
        (200, HEADERS, b'{"ok":true}', True),
        (200, HEADERS, b'{"ok":true}', False),  # HTTP/1.0 or a caller's Connection: close
        (304, HEADERS[:3], b"", True),
        (404, (*HEADERS[:3], (b"content-length", b"0")), b"", True),
    ],
)
def test_a_whole_reply_is_what_send_writes(
    status: int, headers: Headers, body: bytes, keep_alive: bool
) -> None:
    sent = asyncio.run(_sent(status, headers, body, keep_alive))
    written = _written(status, headers, body, keep_alive)

    assert written == sent
    assert written[0].startswith(b"HTTP/1.1 %d " % status)
    assert written[1] is not keep_alive  # the connection closed when it is not kept
    assert written[2] == ["done"]  # the protocol told, so the next request may start


@pytest.mark.parametrize("case", ["HEAD", "access log", "started", "write paused", "disconnected"])
def test_the_writer_declines_what_it_does_not_write_as_send_would(case: str) -> None:
    cycle, transport, responded = _cycle(
        method="HEAD" if case == "HEAD" else "GET", access_log=case == "access log"
    )
    cycle.response_started = case == "started"
    cycle.flow.write_paused = case == "write paused"
    cycle.disconnected = case == "disconnected"

    assert not cycle_writer(cycle)(200, encode_headers(HEADERS), b'{"ok":true}')
    assert (transport.written, responded) == (b"", [])


def test_write_now_declines_without_a_writer() -> None:
    assert not write_now({"type": "http"}, 200, b"", b"")
    cycle, transport, _ = _cycle()
    assert write_now({WRITE_REPLY: cycle_writer(cycle)}, 200, b"content-length: 0\r\n", b"")
    assert transport.written.startswith(b"HTTP/1.1 200 OK\r\n")


@pytest.mark.parametrize(
    "header",
    [
        (b"connection", b"close"),  # uvicorn acts on these: they go through send
        (b"Transfer-Encoding", b"chunked"),
        (b"x-bad name", b"v"),  # what uvicorn refuses is refused here too
        (b"x-injected", b"a\r\nset-cookie: b"),
    ],
)
def test_headers_uvicorn_acts_on_or_refuses_are_not_encoded(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="cannot be written whole"):
        encode_headers((header,))
