"""`make run-fleet`: the emulator, a shared Redis and three gateways sharing it (fleet mode),
on 127.0.0.1:8080, 8081 and 8082 (from `GATEWAY_PORT`). FLEET_TOPOLOGY picks the Redis:
standalone (the default), cluster, sentinel or tls."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping

from harness import sample
from harness.servers import Server, start_emulator, start_gateway, wait_gateway_ready
from scripts.fleet_redis import SharedRedis, choose_topology, start_shared_redis
from scripts.run_local import QUERY, authorization, until_stopped

REPLICAS = 3
BASE_PORT = int(os.environ.get("GATEWAY_PORT", "8080"))
WATCH_SECONDS = 0.2
# The replicas' own: each listens on a port of its own and shares the Redis started here (whose
# CA, with TLS, is made here too).
NOT_PASSED_ON = frozenset({"GATEWAY_PORT", "GATEWAY_REDIS_URL", "GATEWAY_REDIS_CA_FILE"})

BANNER = """
A fleet of {replicas} gateways shares {redis}
in front of the emulator ({emulator}):

{urls}

See the replicas share the sample session, {name}: the first asks AWS (the emulator)
and stores the answer in Redis, the second answers from Redis (`proxy-gateway-shared; hit`):

  curl -si{auth} {url0}{path} | grep -i cache-status
  curl -si{auth} {url1}{path} | grep -i cache-status

Revalidate on one replica (one upstream call; the others drop their copy and read the new one):

  curl -si{auth} -H 'Cache-Control: no-cache' {url2}{path} | grep -i cache-status

Upstream calls so far, per key: curl -s {emulator}/_emulator/calls

  curl -s{auth} {url0}/graphql -H 'Content-Type: application/json' -d '{graphql}'
{auth_note}
GraphiQL: {url0}/graphql   Metrics: {url0}/metrics   OpenAPI: {url0}/docs{hint}
Press Ctrl-C to stop them all.
"""


def banner(
    urls: list[str],
    emulator_url: str,
    redis: str,
    hint: str = "",
    environ: Mapping[str, str] = os.environ,
) -> str:
    """How to watch the replicas at `urls` share the sample session in `redis` (described)."""
    vc, ps = sample.VOICE_CONNECTOR_ID, sample.PROXY_SESSION_ID
    graphql = json.dumps({"query": QUERY, "variables": {"vc": vc, "ps": ps}})
    listed = "\n".join(f"  replica {n}: {url}" for n, url in enumerate(urls))
    auth, auth_note = authorization(environ)
    return BANNER.format(
        replicas=len(urls),
        redis=redis,
        emulator=emulator_url,
        urls=listed,
        name=sample.session()["Name"],
        path=f"/v1/voice-connectors/{vc}/proxy-sessions/{ps}",
        url0=urls[0],
        url1=urls[1 % len(urls)],
        url2=urls[2 % len(urls)],
        graphql=graphql,
        hint=hint,
        auth=auth,
        auth_note=auth_note,
    )


def fleet_settings(environ: Mapping[str, str], redis: Mapping[str, str]) -> dict[str, str]:
    """What every replica gets: `make run`'s settings, the caller's GATEWAY_* variables
    (but NOT_PASSED_ON), and `redis`, the shared Redis's settings."""
    settings = {"GATEWAY_GRAPHIQL": "true", "GATEWAY_GRAPHQL_INTROSPECTION": "true"}
    settings.update(
        {k: v for k, v in environ.items() if k.startswith("GATEWAY_") and k not in NOT_PASSED_ON}
    )
    settings.update(redis)
    return settings


def serve() -> None:
    """Start everything, print how to call it, and stop everything when one of them ends:
    the gateways first, then the emulator, then Redis."""
    topology = choose_topology(os.environ)
    with contextlib.ExitStack() as stack:
        try:
            redis = start_shared_redis(topology, stack)
        except RuntimeError as exc:
            sys.exit(f"Redis ({topology}) did not start: {exc}")
        settings = fleet_settings(os.environ, redis.settings)
        emulator = start_emulator()
        stack.callback(emulator.stop)
        gateways: list[Server] = []
        stack.callback(_stop, gateways)
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
        urls = [g.url for g in gateways]
        print(banner(urls, emulator.url, redis.description, redis.hint), flush=True)
        _watch([emulator, *gateways], redis)


def _stop(gateways: list[Server]) -> None:
    """Stop the gateways, the last started first."""
    for gateway in reversed(gateways):
        gateway.stop()


def _watch(servers: list[Server], redis: SharedRedis) -> None:
    """Return when any of them, or a process Redis needs, has ended, saying which."""
    while True:
        for server in servers:
            if server.process.poll() is not None:
                print(f"{server.name} ended (exit {server.process.returncode}): stopping the rest")
                return
        for name, node in redis.watched.items():
            if node.process is None or node.process.poll() is not None:
                print(f"{name} ended: stopping the rest")
                return
        time.sleep(WATCH_SECONDS)


def main() -> None:
    """Serve until Ctrl-C or SIGTERM."""
    until_stopped(serve)


if __name__ == "__main__":
    main()
