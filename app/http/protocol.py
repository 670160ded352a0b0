"""The HTTP/1.1 protocol: uvicorn's httptools protocol with the two guards it lacks.

uvicorn offers no limit on the size of a request's head with httptools
(`h11_max_incomplete_event_size` applies to h11 alone), and arms its keep-alive timeout only
after a response: a connection that sends nothing, or half a request line, is kept forever.
An ASGI guard cannot help with either: the app sees a request only once its head was read
whole. So this subclass, the only protocol-level seam of the gateway:

- counts the bytes of each request's head as they arrive; past `GATEWAY_MAX_HEADER_BYTES`
  it stops reading the request (what is still sent is dropped unparsed) and hands the edge a
  scope marked `HEAD_TOO_LARGE`, which answers 431 through the one error pipeline (request
  id, metrics, access line) and closes the connection;
- closes a connection whose request head has not arrived whole within the keep-alive
  timeout (`GATEWAY_KEEP_ALIVE_SECONDS`, 5 s) of the connection opening or the head starting.

Idle connections are closed after the keep-alive timeout as uvicorn closes them, with one
timer per connection re-armed only when it fires, instead of a timer made and cancelled
for every response.

It also marks a request whose body has arrived whole (`BODY_COMPLETE`), so that the edge
need not time the reading of a body that is already there, and gives each request a
writer for whole replies (`app.http.whole_reply`), which cache hits are sent with.

Per request it costs an addition per read and a comparison once the head is parsed: the
exact size is summed only when the reads that carried the head exceed the limit.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

import httptools
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.http.whole_reply import WRITE_REPLY, cycle_writer

HEAD_TOO_LARGE = "gateway.head_too_large"
"""The scope key marking a request whose head was over the limit (the edge answers 431)."""
BODY_COMPLETE = "gateway.body_complete"
"""The scope key marking a request whose body has arrived whole: reading it cannot wait."""

# " HTTP/1.1\r\n" after the target, ": " and "\r\n" per header, the blank line at the end.
_REQUEST_LINE_REST = 11
_PER_HEADER = 4
_END = 2


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request over the limit."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a head size limit and a head timeout."""

    max_header_bytes = 16384

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reading_head = True  # waiting for (the rest of) a request's head
        self._head_bytes = 0  # bytes read since, an upper bound of the head's size
        self._refused = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._idle_since: float | None = None  # loop time the connection went idle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        if self.timeout_keep_alive_task is not None:
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        """The connection is busy: the keep-alive timer, when it fires, finds it so."""
        self._idle_since = None

    def on_response_complete(self) -> None:
        """uvicorn's, with the keep-alive timer armed only when none is (see `_keep_alive`)."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._idle_since = None
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        self._idle_since = self.loop.time()
        if self.timeout_keep_alive_task is None:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self._keep_alive
            )

    def _keep_alive(self) -> None:
        """Close the connection if it has been idle for the keep-alive timeout; if it went
        idle later, wait for the rest of it; if it is busy, its next response re-arms."""
        self.timeout_keep_alive_task = None
        if self._idle_since is None:
            return
        left = self._idle_since + self.timeout_keep_alive - self.loop.time()
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self._keep_alive)
        else:
            self.timeout_keep_alive_handler()

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the bytes of a head counted, and nothing parsed once refused."""
        if self._refused:
            return
        if self._reading_head:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._refused:  # on_headers_complete found the head too large
                self._refuse_head()
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # Still reading a head that has started (after a whole request, the count is 0 again
        # and uvicorn's keep-alive timer watches the idle connection).
        if self._reading_head and self._head_bytes:
            if self._head_bytes > self.max_header_bytes:
                self._refuse_head()
            elif self._head_timer is None:  # a head split across reads: it gets a deadline
                self._arm_head_timer()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        if self._head_timer is not None:
            self._disarm_head_timer()
        if self._head_bytes > self.max_header_bytes and self._exact_head_bytes() > (
            self.max_header_bytes
        ):
            self._refused = True
            raise _HeadTooLarge
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        if self.cycle is not None:  # most often before the app has even started
            self.cycle.scope[BODY_COMPLETE] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """uvicorn's, with the cycle's whole-reply writer in the scope."""
        cycle.scope[WRITE_REPLY] = cycle_writer(cycle)  # type: ignore[literal-required]
        super()._start_asgi_task(cycle, app)

    def _exact_head_bytes(self) -> int:
        """The size of the head just parsed: request line and headers."""
        size = len(self.parser.get_method()) + 1 + len(self.url) + _REQUEST_LINE_REST + _END
        for name, value in self.headers:
            size += len(name) + len(value) + _PER_HEADER
        return size

    def _refuse_head(self) -> None:
        """Stop reading this connection's requests and let the edge answer 431."""
        self._refused = True
        self._disarm_head_timer()
        self.flow.pause_reading()
        scope = self.scope
        if scope is None or self._head_bytes == 0:  # pragma: no cover - nothing to answer
            self.transport.close()
            return
        scope["method"] = _method(self.parser)
        path, raw_path, query = _target(self.url)
        scope["path"] = self.root_path + path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        scope["query_string"] = query
        scope[HEAD_TOO_LARGE] = True  # type: ignore[literal-required]
        existing = self.cycle
        self.cycle = RequestResponseCycle(
            scope=scope,
            transport=self.transport,
            flow=self.flow,
            logger=self.logger,
            access_logger=self.access_logger,
            access_log=self.access_log,
            default_headers=self.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=False,
            on_response=self.on_response_complete,
        )
        self.cycle.more_body = False
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, self.app)
        else:
            self.pipeline.appendleft((self.cycle, self.app))

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self.loop.call_later(self.timeout_keep_alive, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        """Close a connection still waiting for a request head, with nothing in progress."""
        self._head_timer = None
        idle = self.cycle is None or self.cycle.response_complete
        if self._reading_head and idle and not self.transport.is_closing():
            self.transport.close()


def _method(parser: httptools.HttpRequestParser) -> str:
    try:
        return bytes(parser.get_method()).decode("ascii")
    except (httptools.HttpParserError, UnicodeDecodeError):  # pragma: no cover
        return "GET"


def _target(url: bytes) -> tuple[str, bytes, bytes]:
    """Path, raw path and query of a request target (perhaps cut short); "/" if unusable."""
    try:
        parsed = httptools.parse_url(url)
        raw_path = bytes(parsed.path or b"/")
        path = raw_path.decode("ascii")
    except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
        return "/", b"/", b""
    if "%" in path:
        path = urllib.parse.unquote(path)
    return path, raw_path, bytes(parsed.query or b"")


def gateway_protocol(max_header_bytes: int) -> type[GatewayHttpProtocol]:
    """The protocol class for uvicorn's `http` option, with the head limit set."""
    return type(
        "GatewayHttpProtocol", (GatewayHttpProtocol,), {"max_header_bytes": max_header_bytes}
    )
