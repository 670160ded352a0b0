"""What every case shares: the settings of a run, the emulator, the token, scratch files."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from bench.processes import Processes
from harness import sample
from harness.redis import RedisServer
from harness.redis_topologies import RedisCluster
from harness.servers import Server, start_emulator, start_gateway

VC = sample.VOICE_CONNECTOR_ID
HIT_PS = sample.PROXY_SESSION_ID
SESSION_PATH = "/v1/voice-connectors/{vc}/proxy-sessions/{ps}"
MISS_PREFIX = SESSION_PATH.format(vc=VC, ps="")
# The emulator serves the sample under the hit key and answers unknown keys with it too.
SESSION = sample.session()
FULL_QUERY = (
    "query Full($vc: ID!, $ps: ID!) { proxySession(voiceConnectorId: $vc, proxySessionId: $ps)"
    " { voiceConnectorId proxySessionId name status expiryMinutes capabilities"
    " createdTimestamp updatedTimestamp endedTimestamp"
    " participants { phoneNumber proxyPhoneNumber }"
    " numberSelectionBehavior geoMatchLevel geoMatchParams { country areaCode } } }"
)
DEFAULT_CACHE_BOUND = 10_000  # the gateway's GATEWAY_CACHE_MAX_ENTRIES default
SharedLayer = RedisServer | RedisCluster


class Topology(NamedTuple):
    """The shape of fleet mode's shared layer: one redis-server, or a Redis Cluster of
    `masters` nodes (no replicas)."""

    name: str
    masters: int = 0

    @property
    def described(self) -> str:
        """The layer, for the report."""
        return f"a {self.masters}-master cluster" if self.masters else "one redis-server"

    @property
    def suffix(self) -> str:
        """What a case's name gets on this topology (nothing on one redis-server)."""
        return f"_{self.name}" if self.masters else ""


STANDALONE = Topology("standalone")
CLUSTER = Topology("cluster", masters=3)
# The topologies the fleet cases that compare them run on, in the report's order.
TOPOLOGIES = (STANDALONE, CLUSTER)


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """How long and how hard each case runs."""

    duration: float = 8.0
    warmup: float = 2.0
    rounds: int = 2
    connections: int = 64
    threads: int = 1
    stampede_requests: int = 200
    stampede_delay: float = 0.5
    flood_keys: int = 20_000
    flood_concurrency: int = 32
    warm_keys: int = 1_000
    # The memory case's GATEWAY_CACHE_MAX_ENTRIES; only set when not the default.
    cache_bound: int = DEFAULT_CACHE_BOUND
    memory_tolerance: float = 0.15
    # Fleet mode: replicas sharing one redis-server.
    fleet_replicas: int = 4
    # GATEWAY_REDIS_TIMEOUT_SECONDS for fleet_calls: the 0.1 s default is for a replica with
    # a core of its own; here four replicas, Redis, the emulator and the load share two
    # cores, and an operation waiting behind 40 requests in a replica's event loop overruns
    # it (the replica then goes to AWS alone, by design). bench/README.md gives both figures.
    fleet_redis_timeout: float = 0.5
    fleet_keys: int = 40
    # Keys pre-filled in Redis that the shared-layer hit cycles over (no two in flight at once).
    l2_keys: int = 1_000
    # Stale-while-revalidate: keys read stale (per round), and the misses they are set against.
    swr_keys: int = 200
    swr_delay: float = 0.2
    swr_ttl: float = 1.0
    swr_window: float = 30.0
    swr_concurrency: int = 8


@dataclass(slots=True)
class Bench:
    """What every case shares: the processes, one emulator, a scratch folder, the token."""

    procs: Processes
    config: BenchConfig
    workdir: Path
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    emulator: Server | None = None
    _serial: int = 0

    @property
    def auth(self) -> dict[str, str]:
        """The header production callers send."""
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def emulator_url(self) -> str:
        """Where the emulator listens (started on first use, on the load core)."""
        if self.emulator is None:
            template = self.workdir / "default-session.json"
            template.write_text(json.dumps(SESSION), encoding="utf-8")
            options = ["--default-session", str(template)]
            load = self.procs.pinning.load
            self.emulator = start_emulator(options=options, core=load, own_group=True)
            self.procs.adopt(self.emulator.process)
        return self.emulator.url

    def path(self, stem: str, suffix: str) -> Path:
        """A fresh file name in the scratch folder."""
        self._serial += 1
        return self.workdir / f"{self._serial:02d}-{stem}{suffix}"

    def gateway(
        self, name: str, settings: dict[str, str] | None = None, *, load_core: bool = False
    ) -> Server:
        """A fresh gateway on the server core (the load core if `load_core`), with production
        settings and the token."""
        log = self.path(name, ".log")
        env = {"GATEWAY_AUTH_TOKENS": self.token, **(settings or {})}
        pinning = self.procs.pinning
        core = pinning.load if load_core else pinning.server
        server = start_gateway(self.emulator_url, log, env, name=name, core=core, own_group=True)
        self.procs.adopt(server.process)
        return server

    def redis(self, topology: Topology = STANDALONE) -> SharedLayer:
        """A fresh shared layer of `topology` (on the load core, as the bench itself runs
        there); the case cleans it up."""
        if not topology.masters:
            return RedisServer(log=self.path("redis", ".log")).start()
        logs = self.path(f"redis-{topology.name}", "")
        logs.mkdir()
        return RedisCluster(topology.masters, log_dir=logs).start()

    def stop(self, *servers: Server) -> None:
        """Stop servers a case is done with."""
        for server in servers:
            self.procs.stop(server.process)
