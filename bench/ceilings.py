"""The ceilings the gateway is measured against, each served alone by uvicorn.

`python -m bench.ceilings bare --body FILE --headers FILE --port P`: a raw ASGI callable
answering every request with the REST hit's exact body and headers (what any app must at
least cost). `python -m bench.ceilings aioboto3 --port P`: the naive miss route a team
would write, one long-lived aioboto3 client calling GetProxySession per request.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aioboto3
import uvicorn
from botocore.config import Config

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

LOOPBACK = "127.0.0.1"
READY_PATH = "/_ready"
# Matches the gateway's GATEWAY_UPSTREAM_MAX_POOL_CONNECTIONS default, so the ceiling is
# not held back by botocore's default pool of 10 under 64 connections.
POOL_CONNECTIONS = 64
# Added by uvicorn itself, on both sides.
SERVER_ADDED = frozenset({b"date", b"server"})


def load_headers(path: Path) -> Headers:
    """Read the headers saved from a gateway response, minus those uvicorn adds itself."""
    pairs = json.loads(path.read_text(encoding="utf-8"))
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in pairs
        if name.lower().encode("latin-1") not in SERVER_ADDED
    ]


class BareASGI:
    """Every request gets the same status, headers and bytes; nothing else happens."""

    def __init__(self, body: bytes, headers: Headers) -> None:
        self._start: Message = {"type": "http.response.start", "status": 200, "headers": headers}
        self._body: Message = {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request."""
        if scope["type"] != "http":
            return
        await send(self._start)
        await send(self._body)


class NaiveAioboto3Route:
    """GET /v1/voice-connectors/{vc}/proxy-sessions/{ps} through one long-lived client."""

    def __init__(self) -> None:
        self._stack = AsyncExitStack()
        self._client: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the lifespan and the route."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        parts = scope["raw_path"].decode("latin-1").split("/")
        if scope["path"] == READY_PATH:
            await _respond(send, 200, b"ok")
        elif len(parts) == 6 and parts[1:3] == ["v1", "voice-connectors"]:
            response = await self._client.get_proxy_session(
                VoiceConnectorId=unquote(parts[3]), ProxySessionId=unquote(parts[5])
            )
            await _respond(send, 200, json.dumps(response["ProxySession"], default=str).encode())
        else:
            await _respond(send, 404, b"{}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        await receive()
        session = aioboto3.Session()
        config = Config(max_pool_connections=POOL_CONNECTIONS)
        self._client = await self._stack.enter_async_context(
            session.client("chime-sdk-voice", config=config)
        )
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await self._stack.aclose()
        await send({"type": "lifespan.shutdown.complete"})


async def _respond(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench.ceilings", description=__doc__)
    kinds = parser.add_subparsers(dest="kind", required=True)
    bare = kinds.add_parser("bare", help="raw ASGI serving saved bytes")
    bare.add_argument("--body", type=Path, required=True, help="response body file")
    bare.add_argument("--headers", type=Path, required=True, help="JSON list of [name, value]")
    bare.add_argument("--port", type=int, required=True)
    naive = kinds.add_parser("aioboto3", help="naive GetProxySession route")
    naive.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one ceiling like the gateway is served: uvloop, httptools, one worker, no logs."""
    args = parse_args(argv)
    app: BareASGI | NaiveAioboto3Route
    if args.kind == "bare":
        app = BareASGI(args.body.read_bytes(), load_headers(args.headers))
    else:
        app = NaiveAioboto3Route()
    uvicorn.run(
        app,
        host=LOOPBACK,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on" if args.kind == "aioboto3" else "off",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
