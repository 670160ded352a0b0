"""`make run`: the emulator with sample sessions and the gateway on 127.0.0.1:8080."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from types import FrameType

from harness import sample
from harness.servers import start_emulator, start_gateway

GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))

QUERY = (
    "query Session($vc: ID!, $ps: ID!) { proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
    " { name status capabilities createdTimestamp participants { phoneNumber proxyPhoneNumber } } }"
)

BANNER = """
The gateway is up on {url} (emulator on {emulator}). Try the sample session, {name}:

  curl -i {url}/v1/voice-connectors/{vc}/proxy-sessions/{ps}

  curl -s {url}/graphql -H 'Content-Type: application/json' -d '{graphql}'

GraphiQL: {url}/graphql   Metrics: {url}/metrics   OpenAPI: {url}/docs
Press Ctrl-C to stop both.
"""


def banner(url: str, emulator_url: str) -> str:
    """How to call the gateway at `url` for the sample session."""
    vc, ps = sample.VOICE_CONNECTOR_ID, sample.PROXY_SESSION_ID
    graphql = json.dumps({"query": QUERY, "variables": {"vc": vc, "ps": ps}})
    name = sample.session()["Name"]
    return BANNER.format(url=url, emulator=emulator_url, name=name, vc=vc, ps=ps, graphql=graphql)


def serve() -> None:
    """Start both processes, print how to call them, and stop both when the gateway ends."""
    settings = {"GATEWAY_GRAPHIQL": "true", "GATEWAY_GRAPHQL_INTROSPECTION": "true"}
    settings.update({k: v for k, v in os.environ.items() if k.startswith("GATEWAY_")})
    emulator = start_emulator()
    try:
        try:
            gateway = start_gateway(emulator.url, None, settings, port=GATEWAY_PORT)
        except RuntimeError as exc:
            sys.exit(f"the gateway did not start: {exc}")
        try:
            print(banner(gateway.url, emulator.url), flush=True)
            gateway.process.wait()
        finally:
            gateway.stop()
    finally:
        emulator.stop()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so every `finally` stops what it started


def until_stopped(serve: Callable[[], None]) -> None:
    """Run `serve` until Ctrl-C or SIGTERM, its `finally` blocks stopping what it started."""
    signal.signal(signal.SIGTERM, _interrupt)
    with contextlib.suppress(KeyboardInterrupt):
        serve()


def main() -> None:
    """Serve until Ctrl-C or SIGTERM."""
    until_stopped(serve)


if __name__ == "__main__":
    main()
