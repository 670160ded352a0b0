"""The shared layer `make run-fleet` starts, in the topology FLEET_TOPOLOGY names: one
redis-server (standalone, the default), a Redis Cluster, a primary and replica behind a
sentinel, or one redis-server over TLS with a CA made for it."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness.redis import RedisServer, TlsFiles, make_tls_files
from harness.redis_topologies import RedisCluster, RedisSentinel

TOPOLOGIES = ("standalone", "cluster", "sentinel", "tls")
DEFAULT_TOPOLOGY = "standalone"
CLUSTER_MASTERS = 3
T = TypeVar("T", RedisServer, RedisCluster, RedisSentinel)

SENTINEL_HINT = """

Fail the primary over: the sentinel promotes the replica within seconds, the fleet goes on.

  kill -9 {pid}"""


def choose_topology(environ: Mapping[str, str]) -> str:
    """FLEET_TOPOLOGY (standalone when unset or empty), or SystemExit naming the valid ones."""
    name = environ.get("FLEET_TOPOLOGY", "").strip() or DEFAULT_TOPOLOGY
    if name not in TOPOLOGIES:
        raise SystemExit(f"FLEET_TOPOLOGY={name!r} is unknown; valid: {', '.join(TOPOLOGIES)}")
    return name


@dataclass(frozen=True)
class SharedRedis:
    """A started topology: what every replica gets, how the banner names it, what to watch."""

    url: str
    description: str
    settings: dict[str, str]
    watched: Mapping[str, RedisServer]
    """The processes whose end stops the fleet, by name (the data nodes a sentinel watches
    may fail over without stopping it)."""
    hint: str = ""


def start_shared_redis(topology: str, stack: contextlib.ExitStack) -> SharedRedis:
    """Start `topology`; `stack` removes whatever it made, once the gateways have stopped."""
    if topology == "cluster":
        cluster = _started(RedisCluster(CLUSTER_MASTERS), stack)
        nodes = {f"cluster node {node.port}": node for node in cluster.nodes}
        described = f"a {CLUSTER_MASTERS}-master Redis Cluster ({cluster.url})"
        return SharedRedis(cluster.url, described, _url(cluster.url), nodes)
    if topology == "sentinel":
        sentinel = _started(RedisSentinel(), stack)
        described = f"a Redis primary and its replica behind a sentinel ({sentinel.url})"
        process = sentinel.primary.process
        hint = SENTINEL_HINT.format(pid=process.pid if process else "?")
        watched = {"the sentinel": sentinel.sentinel}
        return SharedRedis(sentinel.url, described, _url(sentinel.url), watched, hint)
    if topology == "tls":
        tls = _tls_files(stack)
        server = _started(RedisServer(tls=tls), stack)
        described = f"one redis-server over TLS ({server.url}, CA {tls.ca})"
        settings = {**_url(server.url), "GATEWAY_REDIS_CA_FILE": str(tls.ca)}
        return SharedRedis(server.url, described, settings, {"redis-server": server})
    server = _started(RedisServer(), stack)
    described = f"one redis-server ({server.url})"
    return SharedRedis(server.url, described, _url(server.url), {"redis-server": server})


def _started(topology: T, stack: contextlib.ExitStack) -> T:
    """`topology`, its cleanup on `stack` first, then started."""
    stack.callback(topology.cleanup)
    topology.start()
    return topology


def _tls_files(stack: contextlib.ExitStack) -> TlsFiles:
    """A CA and a certificate for 127.0.0.1 in a directory `stack` removes."""
    folder = Path(tempfile.mkdtemp(prefix="psgw-fleet-tls-"))
    stack.callback(shutil.rmtree, folder, ignore_errors=True)
    return make_tls_files(folder)


def _url(url: str) -> dict[str, str]:
    """The replicas' setting for the shared layer at `url`."""
    return {"GATEWAY_REDIS_URL": url}
