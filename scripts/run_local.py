"""`make run`: the emulator with sample sessions and the gateway on 127.0.0.1:8080."""

from __future__ import annotations

import json
import os
import signal
import sys

from tests.support.servers import free_port, start_emulator, start_gateway

GATEWAY_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
SAMPLE = ("abcdef1ghij2klmno3pqr4", "321c1f5b-7dcb-4a5d-9e07-6b4c6a1b2f10")

QUERY = (
    "query Session($vc: ID!, $ps: ID!) { proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
    " { name status capabilities createdTimestamp participants { phoneNumber proxyPhoneNumber } } }"
)

BANNER = """
The gateway is up on {url} (emulator on {emulator}). Try:

  curl -i {url}/v1/voice-connectors/{vc}/proxy-sessions/{ps}

  curl -s {url}/graphql -H 'Content-Type: application/json' -d '{graphql}'

GraphiQL: {url}/graphql   Metrics: {url}/metrics   OpenAPI: {url}/docs
Press Ctrl-C to stop both.
"""


def main() -> None:
    """Start both processes, print how to call them, and stop both on Ctrl-C or SIGTERM."""
    emulator = start_emulator(free_port())
    settings = {"GATEWAY_GRAPHIQL": "true", "GATEWAY_GRAPHQL_INTROSPECTION": "true"}
    settings.update({k: v for k, v in os.environ.items() if k.startswith("GATEWAY_")})
    try:
        gateway = start_gateway(emulator.url, None, settings, port=GATEWAY_PORT)
    except RuntimeError as exc:
        emulator.stop()
        sys.exit(f"the gateway did not start: {exc}")
    graphql = json.dumps({"query": QUERY, "variables": {"vc": SAMPLE[0], "ps": SAMPLE[1]}})
    banner = BANNER.format(
        url=gateway.url, emulator=emulator.url, vc=SAMPLE[0], ps=SAMPLE[1], graphql=graphql
    )
    print(banner, flush=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        gateway.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        gateway.stop()
        emulator.stop()


if __name__ == "__main__":
    main()
