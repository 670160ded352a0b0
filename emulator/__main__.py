"""Command line entry point: ``python -m emulator [--host H] [--port P] [--data PATH]``.

``--default-session PATH`` (for the benchmark) answers GetProxySession for every unknown key
with the ProxySession in PATH, its ids replaced by the requested ones, instead of NotFound.
GetProxySession requests must carry a SigV4 signature made with ``--access-key-id`` and
``--secret-access-key`` (both ``testing`` by default); the admin API takes none.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from emulator.server import create_app
from emulator.signature import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY

DEFAULT_DATA = Path(__file__).parent / "data" / "sessions.json"
# In-flight (possibly delayed) requests get this long to finish on shutdown.
SHUTDOWN_GRACE_SECONDS = 0.25


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=4566, help="port to bind, 0 for any free one")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="sample sessions file")
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--default-session",
        type=Path,
        default=None,
        metavar="PATH",
        help="answer unknown keys with the ProxySession in PATH (ids set to the requested ones)",
    )
    parser.add_argument(
        "--access-key-id",
        default=TEST_ACCESS_KEY_ID,
        help=f"the only access key id accepted (default {TEST_ACCESS_KEY_ID})",
    )
    parser.add_argument(
        "--secret-access-key",
        default=TEST_SECRET_ACCESS_KEY,
        help=f"its secret, which signatures are checked with (default {TEST_SECRET_ACCESS_KEY})",
    )
    return parser.parse_args(argv)


def bind(host: str, port: int) -> socket.socket:
    """Create a socket bound to host and port, ready for the server to listen on."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT."""
    app = create_app(
        args.data,
        default_session=args.default_session,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
    )
    access_log = logging.getLogger("aiohttp.access") if args.access_log else None
    runner = web.AppRunner(app, access_log=access_log, shutdown_timeout=SHUTDOWN_GRACE_SECONDS)
    await runner.setup()
    sock = bind(args.host, args.port)
    try:
        await web.SockSite(runner, sock).start()
        host, port = sock.getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"emulator listening on http://{shown}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        sock.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the emulator."""
    args = parse_args(argv)
    if args.access_log:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
