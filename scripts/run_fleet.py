"""`make run-fleet`: the emulator, a redis-server and three gateways sharing it (fleet mode),
on 127.0.0.1:8080, 8081 and 8082 (from `GATEWAY_PORT`)."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping

from harness import sample
from harness.redis import RedisServer
from harness.servers import Server, start_emulator, start_gateway, wait_gateway_ready
from scripts.run_local import QUERY, until_stopped

REPLICAS = 3
BASE_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
WATCH_SECONDS = 0.2
# The replicas' own: each listens on a port of its own and shares the redis-server started here.
NOT_PASSED_ON = frozenset({"GATEWAY_PORT", "GATEWAY_REDIS_URL"})

BANNER = """
A fleet of {replicas} gateways shares one redis-server ({redis}) in front of the emulator
({emulator}):

{urls}

See the replicas share the sample session, {name}: the first asks AWS (the emulator)
and stores the answer in Redis, the second answers from Redis (`proxy-gateway-shared; hit`):

  curl -si {url0}{path} | grep -i cache-status
  curl -si {url1}{path} | grep -i cache-status

Revalidate on one replica (one upstream call; the others drop their copy and read the new one):

  curl -si -H 'Cache-Control: no-cache' {url2}{path} | grep -i cache-status

Upstream calls so far, per key: curl -s {emulator}/_emulator/calls

  curl -s {url0}/graphql -H 'Content-Type: application/json' -d '{graphql}'

GraphiQL: {url0}/graphql   Metrics: {url0}/metrics   OpenAPI: {url0}/docs
Press Ctrl-C to stop them all.
"""


def banner(urls: list[str], emulator_url: str, redis_url: str) -> str:
    """How to watch the replicas at `urls` share the sample session."""
    vc, ps = sample.VOICE_CONNECTOR_ID, sample.PROXY_SESSION_ID
    graphql = json.dumps({"query": QUERY, "variables": {"vc": vc, "ps": ps}})
    listed = "\n".join(f"  replica {n}: {url}" for n, url in enumerate(urls))
    return BANNER.format(
        replicas=len(urls),
        redis=redis_url,
        emulator=emulator_url,
        urls=listed,
        name=sample.session()["Name"],
        path=f"/v1/voice-connectors/{vc}/proxy-sessions/{ps}",
        url0=urls[0],
        url1=urls[1 % len(urls)],
        url2=urls[2 % len(urls)],
        graphql=graphql,
    )


def fleet_settings(environ: Mapping[str, str], redis_url: str) -> dict[str, str]:
    """What every replica gets: `make run`'s settings, the caller's GATEWAY_* variables
    (but the port), and the shared redis-server."""
    settings = {"GATEWAY_GRAPHIQL": "true", "GATEWAY_GRAPHQL_INTROSPECTION": "true"}
    settings.update(
        {k: v for k, v in environ.items() if k.startswith("GATEWAY_") and k not in NOT_PASSED_ON}
    )
    settings["GATEWAY_REDIS_URL"] = redis_url
    return settings


def serve() -> None:
    """Start everything, print how to call it, and stop everything when one of them ends."""
    redis = RedisServer()
    try:
        try:
            redis.start()
        except RuntimeError as exc:
            sys.exit(f"redis-server did not start: {exc}")
        settings = fleet_settings(os.environ, redis.url)
        emulator = start_emulator()
        gateways: list[Server] = []
        try:
            try:
                for n in range(REPLICAS):
                    name, port = f"replica {n}", BASE_PORT + n
                    gateway = start_gateway(
                        emulator.url, None, settings, name=name, port=port, wait=False
                    )
                    gateways.append(gateway)
                for gateway in gateways:
                    wait_gateway_ready(gateway)
            except RuntimeError as exc:
                sys.exit(f"the gateways did not start: {exc}")
            print(banner([g.url for g in gateways], emulator.url, redis.url), flush=True)
            _watch([emulator, *gateways], redis)
        finally:
            for gateway in reversed(gateways):
                gateway.stop()
            emulator.stop()
    finally:
        redis.cleanup()


def _watch(servers: list[Server], redis: RedisServer) -> None:
    """Return when any of them has ended, saying which."""
    while True:
        for server in servers:
            if server.process.poll() is not None:
                print(f"{server.name} ended (exit {server.process.returncode}): stopping the rest")
                return
        if redis.process is None or redis.process.poll() is not None:
            print("redis-server ended: stopping the rest")
            return
        time.sleep(WATCH_SECONDS)


def main() -> None:
    """Serve until Ctrl-C or SIGTERM."""
    until_stopped(serve)


if __name__ == "__main__":
    main()
