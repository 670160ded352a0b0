"""The HTTP/1.1 protocol: uvicorn's httptools protocol with the guards it lacks.

uvicorn offers no limit on the size of a request's head with httptools
(`h11_max_incomplete_event_size` applies to h11 alone), arms its keep-alive timeout only
after a response (a connection that sends nothing, or half a request line, is kept
forever), merges a chunked body's trailers into the request's headers, and reads pipelined
requests without bound. An ASGI guard cannot help with any of them: the app sees a request
only once its head was read whole. So this subclass, the only protocol-level seam of the
gateway:

- feeds the parser one segment at a time, cut by `app.http.framing.Framer` at the end of
  each head and each message, so that each request's head is counted exactly, as sent;
  past `GATEWAY_MAX_HEADER_BYTES` it stops reading (what is still sent is dropped unparsed)
  and hands the edge a scope marked `HEAD_TOO_LARGE`, which answers 431 through the one
  error pipeline (request id, metrics, access line) and closes the connection. Where the
  framer and the parser disagree on where a head ends, the request is malformed: 400;
- counts a chunked body's trailers in that budget (past it, the connection is closed: the
  request is being served) and never adds them to the request's headers;
- answers 400 to an HTTP/1.1 request without exactly one `Host` (RFC 9112 3.2);
- ignores empty lines between requests, and closes a connection sending more of them than
  a head may hold, without answering: they began no request;
- stops parsing once `MAX_PIPELINED` requests wait for their responses, and goes on as
  responses go out;
- closes a connection whose request head has not arrived whole within the keep-alive
  timeout (`GATEWAY_KEEP_ALIVE_SECONDS`, 5 s) of the connection opening or the head starting;
- writes what a response sends in one step of the event loop in one write (its head and
  body: `app.http.coalescing`, off with `GATEWAY_HTTP_TUNING=off`), the only part that is
  for speed, not for safety;
- drops the requests read ahead of a connection that has gone (they are never run), and
  tells the request being answered that its client has gone (uvicorn tells only the last
  one read, so with requests pipelined the one answered would write to a closed transport).

It also marks a request whose body has arrived whole (`BODY_COMPLETE`), so that the edge
need not time the reading of a body that is already there. The uvicorn names it relies
on are checked when the module is imported (`app.seams`): a uvicorn that changed them
stops the gateway at start, with one line naming what is missing.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import urllib.parse
from typing import TYPE_CHECKING, Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from app.http.coalescing import CoalescingTransport
from app.http.framing import Framer
from app.seams import Seam, lacking

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

HEAD_TOO_LARGE = "gateway.head_too_large"
"""The scope key marking a request whose head was over the limit (the edge answers 431)."""
BODY_COMPLETE = "gateway.body_complete"
"""The scope key marking a request whose body has arrived whole: reading it cannot wait."""

MAX_PIPELINED = 16
"""Requests read ahead of their responses on one connection; past it, reading waits."""


class _NotOneHost(Exception):
    """Raised from a parser callback: an HTTP/1.1 request without exactly one Host."""


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a head size limit and a head timeout."""

    max_header_bytes = 16384
    coalesce_writes = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._framer = Framer(self.max_header_bytes)
        self._refused = False
        self._stash = b""  # bytes read past the pipelining bound, parsed as responses go out
        self._headed = False  # the parser finished the head the framer last cut
        self._running: RequestResponseCycle | None = None  # the request being answered
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.coalesce_writes:
            self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        """uvicorn's, and the requests read ahead are dropped: nobody waits for them."""
        self._disarm_head_timer()
        self.pipeline.clear()
        self._stash = b""
        running = self._running
        if running is not None and running is not self.cycle and not running.response_complete:
            # uvicorn tells only the last request read; with requests pipelined, the one
            # being answered is another, and would write to the closed transport.
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def _uncoalesced(self) -> None:
        """Hand the connection's own transport back (what was gathered written first)."""
        if isinstance(self.transport, CoalescingTransport):
            self.transport.flush()
            self.transport = self.transport.transport

    def on_response_complete(self) -> None:
        """uvicorn's (the next pipelined request starts, or the keep-alive timer), then what
        was read past the pipelining bound is parsed. A queued request whose client has
        closed the connection meanwhile (reading paused, its end is not seen yet) is never
        started: the connection is closed instead, as uvicorn closes it on that end."""
        if self.pipeline and _peer_closed(self.transport):
            self.pipeline.clear()
            self._stash = b""
            self.transport.close()
        super().on_response_complete()
        if self._stash and not self.transport.is_closing():
            self._unset_keepalive_if_required()
            self._read_stash()

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the bytes fed to the parser one request segment at a time (see
        `app.http.framing`), and nothing parsed once refused or past the pipelining bound."""
        if self._refused:
            return
        self._unset_keepalive_if_required()
        if self._stash:
            self._stash += data
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        framer = self._framer
        pos = 0
        while pos < len(data):
            if len(self.pipeline) >= MAX_PIPELINED and framer.in_head:
                # The client does not read its responses: read no further until it does.
                self._stash = data[pos:]
                self.flow.pause_reading()
                return
            kind, end = framer.step(data, pos)
            if kind == "skip":
                pos = end
                continue
            if kind == "stray":  # nothing to answer: no request began, or it is being served
                self._refused = True
                self.transport.close()
                return
            self._headed = False
            if not self._parse(data[pos:end]):
                return
            if kind == "over":
                self._refuse_head()
                return
            if framer.tracking and self._headed != (kind == "head_end"):
                # The framer saw the head end where the parser did not, or the other way.
                self._malformed()
                return
            pos = end
        if framer.head_started and self._head_timer is None:  # a head split across reads
            self._arm_head_timer()

    def _read_stash(self) -> None:
        """Parse what was read past the pipelining bound, now that a response went out."""
        if self._stash and len(self.pipeline) < MAX_PIPELINED and not self._refused:
            data, self._stash = self._stash, b""
            self._feed(data)

    def _parse(self, data: bytes) -> bool:
        """Feed the parser; False when the connection ends there (an error, an upgrade)."""
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._malformed()
            return False
        except httptools.HttpParserUpgrade:
            self._framer.lose_track()
            if self._should_upgrade():
                self._uncoalesced()  # a WebSocket writes through the transport itself
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        return True

    def _malformed(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self._refused = True
        self.send_400_response(msg)

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._headed = True
        length, chunked, hosts = 0, False, 0
        for name, value in self.headers:
            if name == b"host":
                hosts += 1
            elif name == b"content-length" and value.strip().isdigit():
                length = int(value)
            elif name == b"transfer-encoding" and value.strip().lower().endswith(b"chunked"):
                chunked = True
        if hosts != 1 and self.parser.get_http_version() == "1.1":
            raise _NotOneHost  # RFC 9112 3.2: 400 (the parser reports it, `_parse` answers)
        self._framer.body(length=length, chunked=chunked)
        super().on_headers_complete()
        if chunked:
            # A trailer is never a request header: uvicorn adds what the parser reports to
            # `self.headers`, the scope's own list; from here on, to a copy. Only a chunked
            # body has trailers, so no other request pays for the copy.
            self.headers = list(self.headers)

    def on_message_complete(self) -> None:
        self._framer.message_done()
        if self.cycle is not None:  # most often before the app has even started
            self.cycle.scope[BODY_COMPLETE] = True  # type: ignore[literal-required]
        super().on_message_complete()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        """uvicorn's, noting which request is being answered (see `connection_lost`)."""
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def _refuse_head(self) -> None:
        """Stop reading this connection's requests and let the edge answer 431."""
        self._refused = True
        self._disarm_head_timer()
        self.flow.pause_reading()
        scope = self.scope
        if scope is None:  # pragma: no cover - nothing to answer
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
        if self._framer.in_head and idle and not self.transport.is_closing():
            self.transport.close()


def _peer_closed(transport: asyncio.BaseTransport) -> bool:
    """Whether the client has closed its end with nothing more sent: the next read would be
    the end of the stream (a peek, the data left in place)."""
    raw = transport.get_extra_info("socket")
    if raw is None:
        return False
    try:
        with socket.fromfd(raw.fileno(), raw.family, raw.type) as sock:
            return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False  # nothing to read: the client is there
    except OSError:
        return True  # reset, or gone


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


def gateway_protocol(
    max_header_bytes: int, *, coalesce_writes: bool = True
) -> type[GatewayHttpProtocol]:
    """The protocol class for uvicorn's `http` option, with the head limit set and writes
    coalesced or not (`GATEWAY_HTTP_TUNING`)."""
    return type(
        "GatewayHttpProtocol",
        (GatewayHttpProtocol,),
        {"max_header_bytes": max_header_bytes, "coalesce_writes": coalesce_writes},
    )


# What this module uses of uvicorn's httptools protocol and its request/response cycle.
_PROTOCOL_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "handle_websocket_upgrade",
    "_unset_keepalive_if_required",
    "_should_upgrade",
    "_unsupported_upgrade_warning",
    "_start_asgi_task",
)
_PROTOCOL_STATE = (
    "app",
    "cycle",
    "flow",
    "headers",
    "logger",
    "access_logger",
    "access_log",
    "loop",
    "parser",
    "pipeline",
    "root_path",
    "scope",
    "server_state",
    "timeout_keep_alive",
    "transport",
    "url",
)
_CYCLE_PARAMETERS = (
    "scope",
    "transport",
    "flow",
    "logger",
    "access_logger",
    "access_log",
    "default_headers",
    "message_event",
    "expect_100_continue",
    "keep_alive",
    "on_response",
)
_CYCLE_STATE = ("disconnected", "message_event", "more_body", "response_complete", "scope")


def _missing_from_uvicorn() -> list[str]:
    """What this module needs of uvicorn that the installed one lacks."""
    missing = lacking(HttpToolsProtocol, _PROTOCOL_METHODS)
    protocol_source = inspect.getsource(HttpToolsProtocol)
    missing += [
        f"HttpToolsProtocol.{name}"
        for name in _PROTOCOL_STATE
        if f"self.{name} =" not in protocol_source and f"self.{name}:" not in protocol_source
    ]
    parameters = inspect.signature(RequestResponseCycle).parameters
    missing += [
        f"RequestResponseCycle({name}=)" for name in _CYCLE_PARAMETERS if name not in parameters
    ]
    cycle_source = inspect.getsource(RequestResponseCycle)
    missing += [
        f"RequestResponseCycle.{name}"
        for name in _CYCLE_STATE
        if f"self.{name} =" not in cycle_source and f"self.{name}:" not in cycle_source
    ]
    return missing


SEAM = Seam(
    name="uvicorn's httptools protocol",
    library="uvicorn",
    without=(
        "serve the gateway with any ASGI server (`uvicorn app.main:app`) to run without the"
        " head guard, or pin uvicorn to the release the lock names"
    ),
    missing=_missing_from_uvicorn,
)
"""The head guard's reach into uvicorn (`GatewayHttpProtocol`)."""


def _missing_for_coalescing() -> list[str]:
    """Whether uvicorn still gives each request/response cycle the protocol's transport
    and writes a response through it (what `CoalescingTransport` gathers)."""
    missing = []
    if "transport=self.transport" not in inspect.getsource(HttpToolsProtocol.on_headers_complete):
        missing.append("HttpToolsProtocol.on_headers_complete(transport=self.transport)")
    if "self.transport.write(" not in inspect.getsource(RequestResponseCycle.send):
        missing.append("RequestResponseCycle.send writing through self.transport")
    return missing


COALESCING_SEAM = Seam(
    name="uvicorn's writes, coalesced",
    library="uvicorn",
    without="set GATEWAY_HTTP_TUNING=off, or pin uvicorn to the locked release",
    missing=_missing_for_coalescing,
)
"""The protocol hands uvicorn's request/response cycles a transport that gathers writes."""
