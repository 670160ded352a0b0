"""`python -m app`: the production entry point (also the image's command)."""

from __future__ import annotations

import signal
import socket
import sys
import time
from types import FrameType

import uvicorn
from pydantic import ValidationError

from app import runtime
from app.graphql.persisted import ManifestError
from app.http import protocol
from app.http.protocol import gateway_protocol
from app.http.state import Lifecycle
from app.main import create_app
from app.observability import logs, tracing
from app.observability.tracing import Tracing
from app.seams import SeamChanged, require
from app.settings import Settings

# Settings whose values are never echoed: tokens, and a Redis URL that may hold a password.
_SECRET_WORDS = ("TOKEN", "REDIS_URL", "PASSWORD")


def _settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        if not first["loc"]:  # a rule across settings; its message names them
            print(f"invalid settings: {first['msg']}", file=sys.stderr)
            raise SystemExit(2) from None
        field = str(first["loc"][0])
        name = field.upper() if field.isupper() else f"GATEWAY_{field.upper()}"
        secret = any(word in name for word in _SECRET_WORDS)
        shown = "" if secret else f"={first.get('input')!r}"
        print(f"invalid setting {name}{shown}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


class GatewayServer(uvicorn.Server):
    """uvicorn, but SIGTERM first turns readiness off and keeps serving for a drain period,
    so load balancers stop sending traffic before the listener closes."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, drain_seconds: float) -> None:
        super().__init__(config)
        self._lifecycle = lifecycle
        self._drain_seconds = drain_seconds
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """On the first SIGTERM start draining; on a second one (or with no drain) stop; on
        any other signal stop as uvicorn does.

        SIGTERM is the normal way to stop: the process exits 0 whatever the drain setting
        (uvicorn would raise the signal again once stopped, and die of it)."""
        self._lifecycle.stopping = True
        if sig != signal.SIGTERM:
            super().handle_exit(sig, frame)
        elif self._drain_until is None and self._drain_seconds > 0:
            self._drain_until = time.monotonic() + self._drain_seconds
        else:
            self.should_exit = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start as uvicorn does (the lifespan builds the long-lived objects), then settle
        the heap: what start-up built lives as long as the process."""
        await super().startup(sockets)
        runtime.settle_heap()

    async def on_tick(self, counter: int) -> bool:
        """Stop once the drain period is over."""
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


def main() -> None:
    """Read the settings, set up JSON logs, and serve the app with uvicorn."""
    settings = _settings_or_exit()
    logs.configure(settings.log_level)
    try:
        require([protocol.SEAM, *([protocol.COALESCING_SEAM] if settings.http_tuning else [])])
        app = create_app(settings, _tracing_or_exit(), guarded=True)
    except ManifestError as exc:  # the trusted documents (GATEWAY_GRAPHQL_PERSISTED_*)
        print(f"invalid persisted documents: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except SeamChanged as exc:  # a library release moved a name the gateway relies on
        print(f"cannot start: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        # X-Forwarded-* only from the listed proxies (none by default): a caller must not
        # choose the client address the logs record.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=settings.forwarded_allow_ips or None,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
        # An idle connection's life, and the time a request head has to arrive whole.
        timeout_keep_alive=settings.keep_alive_seconds,
        # httptools, with the head size limit and head timeout uvicorn lacks for it.
        http=gateway_protocol(settings.max_header_bytes, coalesce_writes=settings.http_tuning),
    )
    try:
        GatewayServer(config, app.state.lifecycle, settings.shutdown_drain_seconds).run()
    except KeyboardInterrupt:  # Ctrl-C: uvicorn stopped, then raised it again; no traceback
        raise SystemExit(130) from None


def _tracing_or_exit() -> Tracing | None:
    """Traces as the `OTEL_*` variables ask (None: off), or stop with one line saying why."""
    try:
        return tracing.from_environment()
    except tracing.TracingConfigError as exc:
        print(f"invalid tracing configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
