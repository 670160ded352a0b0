"""`make run`: the emulator with sample sessions and the gateway on 127.0.0.1:8080."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
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

  curl -i{auth} {url}/v1/voice-connectors/{vc}/proxy-sessions/{ps}

  curl -s{auth} {url}/graphql -H 'Content-Type: application/json' -d '{graphql}'
{auth_note}
GraphiQL: {url}/graphql   Metrics: {url}/metrics   OpenAPI: {url}/docs
Press Ctrl-C to stop both.
"""


def banner(url: str, emulator_url: str, environ: Mapping[str, str] = os.environ) -> str:
    """How to call the gateway at `url` for the sample session (with the token the
    environment gives it, when authentication is on)."""
    vc, ps = sample.VOICE_CONNECTOR_ID, sample.PROXY_SESSION_ID
    graphql = json.dumps({"query": QUERY, "variables": {"vc": vc, "ps": ps}})
    name = sample.session()["Name"]
    auth, note = authorization(environ)
    return BANNER.format(
        url=url,
        emulator=emulator_url,
        name=name,
        vc=vc,
        ps=ps,
        graphql=graphql,
        auth=auth,
        auth_note=note,
    )


def authorization(environ: Mapping[str, str]) -> tuple[str, str]:
    """The curl option that sends a token the gateway accepts, as a shell expression that
    reads it where the gateway does (the token itself is never printed), and a line saying
    where it comes from; both empty when authentication is off."""
    if environ.get("GATEWAY_AUTH_TOKENS", "").strip():
        expression = "${GATEWAY_AUTH_TOKENS%%,*}"
        where = "the first of GATEWAY_AUTH_TOKENS"
    elif path := environ.get("GATEWAY_AUTH_TOKENS_FILE", "").strip():
        expression = f"$(head -n 1 {shlex.quote(path)})"
        where = f"the first line of {path}"
    elif environ.get("GATEWAY_JWT_JWKS_URL", "").strip():
        expression = "$TOKEN"
        where = "TOKEN, set to a JWT your issuer signed"
    else:
        return "", ""
    return f' -H "Authorization: Bearer {expression}"', f"\n(The token is {where}.)\n"


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
