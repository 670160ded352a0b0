"""Fleet mode's behaviours on the engines fleets run: a 3-master Redis Cluster, a primary found
through Sentinel (and followed through a failover), and TLS with a private CA. Real
redis-server processes, three gateway replicas each, counted at the emulator."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from harness.redis import RedisServer, make_tls_files
from harness.redis_topologies import RedisCluster, RedisSentinel
from tests.conftest import PHONE_NUMBERS, SAMPLE_SESSION
from tests.support.servers import Emulator, Gateway, _q, start_gateway, wait_ready

Key = tuple[str, str]

PREFIX = "topo:"
STATUS = "cache-status"
SHARED_HIT = "proxy-gateway-shared; hit"
FETCHED = "proxy-gateway-shared; fwd=miss; fwd-status=200; stored, proxy-gateway; fwd=miss; stored"
RESUMES_WITHIN = 30.0
RATE_LIMIT = 20
SHARED_WINDOW = 16
"""What the replicas that reach the layer share of RATE_LIMIT (the default 20 % reserve)."""


@dataclass
class Topology:
    """A started topology, its gateways, and how to read what it stores."""

    name: str
    url: str
    strings: Callable[[str], dict[bytes, bytes]]
    kill: Callable[[], None]
    gateways: list[Gateway]
    sentinel: RedisSentinel | None = None
    cluster: RedisCluster | None = None


def _start(name: str, folder: Path) -> tuple[str, Callable[[], None], object, dict[str, str]]:
    """The topology `name` started: its URL, its cleanup, the handle, extra settings."""
    if name == "cluster":
        cluster = RedisCluster(3, log_dir=folder).start()
        return cluster.url, cluster.cleanup, cluster, {}
    if name == "sentinel":
        sentinel = RedisSentinel(log_dir=folder).start()
        return sentinel.url, sentinel.cleanup, sentinel, {}
    tls = make_tls_files(folder / "tls")
    server = RedisServer(tls=tls, log=folder / "redis.log").start()
    return server.url, server.cleanup, server, {"GATEWAY_REDIS_CA_FILE": str(tls.ca)}


def _strings(handle: object) -> Callable[[str], dict[bytes, bytes]]:
    if isinstance(handle, RedisCluster):
        return handle.strings
    if isinstance(handle, RedisSentinel):
        return handle.primary.strings
    assert isinstance(handle, RedisServer)
    return handle.strings


def _kill(handle: object) -> Callable[[], None]:
    assert isinstance(handle, RedisCluster | RedisSentinel | RedisServer)
    return handle.kill


@pytest.fixture(scope="module", params=["cluster", "sentinel", "tls"])
def topology(
    request: pytest.FixtureRequest, emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """Three replicas sharing one topology, with an encryption key."""
    with _fleet(emulator, tmp_path_factory.mktemp(request.param), request.param) as started:
        yield started


@contextmanager
def _fleet(emulator: Emulator, folder: Path, name: str) -> Iterator[Topology]:
    """Three replicas sharing the topology `name`, with an encryption key."""
    url, cleanup, handle, extra = _start(name, folder)
    keys = folder / "keys"
    keys.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    env = {
        "GATEWAY_REDIS_URL": url,
        "GATEWAY_REDIS_KEY_PREFIX": PREFIX,
        "GATEWAY_CACHE_ENCRYPTION_KEY_FILE": str(keys),
        # Not a test of time limits: TLS handshakes and cluster discovery on a busy machine.
        "GATEWAY_REDIS_TIMEOUT_SECONDS": "0.5",
        # Revalidations right after a fill are the point of a test here, not a refusal.
        "GATEWAY_REVALIDATE_MIN_INTERVAL_SECONDS": "0",
        # The fleet's quota: 16 calls a 1.1 s window for the replicas that reach the layer.
        "GATEWAY_UPSTREAM_RATE_LIMIT": str(RATE_LIMIT),
        "GATEWAY_FLEET_MAX_REPLICAS": "3",
        **extra,
    }
    gateways: list[Gateway] = []
    try:
        for number in range(3):
            gateways.append(
                start_gateway(emulator.url, folder / f"gateway-{number}.log", env, wait=False)
            )
        for gateway in gateways:
            wait_ready(gateway)
        yield Topology(
            name,
            url,
            _strings(handle),
            _kill(handle),
            gateways,
            sentinel=handle if isinstance(handle, RedisSentinel) else None,
            cluster=handle if isinstance(handle, RedisCluster) else None,
        )
    finally:
        for gateway in gateways:
            gateway.stop()
        cleanup()


def _key(emulator: Emulator) -> Key:
    key = (f"vc-{uuid.uuid4().hex[:10]}", f"ps-{uuid.uuid4().hex}")
    emulator.seed(*key, SAMPLE_SESSION)
    return key


def _path(key: Key) -> str:
    return f"/v1/voice-connectors/{_q(key[0])}/proxy-sessions/{_q(key[1])}"


async def _stampede(gateways: list[Gateway], key: Key, each: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        requests = [client.get(g.url + _path(key)) for g in gateways for _ in range(each)]
        return list(await asyncio.gather(*requests))


def _shares(reader: Gateway, writer: Gateway, emulator: Emulator) -> bool:
    """Whether `reader` answers from what `writer` just fetched and stored for the fleet."""
    key = _key(emulator)
    fetched = writer.get_session(*key)
    read = reader.get_session(*key)
    return fetched.headers[STATUS] == FETCHED and read.headers[STATUS].startswith(SHARED_HIT)


def test_a_stampede_across_replicas_makes_one_upstream_call(
    topology: Topology, emulator: Emulator
) -> None:
    key = _key(emulator)
    emulator.fault(*key, delay=0.5)

    replies = asyncio.run(_stampede(topology.gateways, key, each=20))

    assert [reply.status_code for reply in replies] == [200] * len(replies)
    assert len({reply.content for reply in replies}) == 1
    assert emulator.calls(*key) == 1


def test_every_key_is_shared_whatever_node_holds_it(topology: Topology, emulator: Emulator) -> None:
    writer, reader = topology.gateways[0], topology.gateways[1]
    keys = [_key(emulator) for _ in range(30)]

    fetched = [writer.get_session(*key) for key in keys]
    read = [reader.get_session(*key) for key in keys]

    assert [reply.headers[STATUS] for reply in fetched] == [FETCHED] * len(keys)
    assert all(reply.headers[STATUS].startswith(SHARED_HIT) for reply in read)
    assert [reply.content for reply in read] == [reply.content for reply in fetched]
    assert sum(emulator.calls(*key) for key in keys) == len(keys)
    if topology.cluster is not None:  # the slots are spread: every master holds entries
        holding = [node for node in topology.cluster.nodes if node.call("KEYS", f"{PREFIX}s:*")]
        assert len(holding) == len(topology.cluster.nodes)


def test_a_revalidation_reaches_every_replica(topology: Topology, emulator: Emulator) -> None:
    key = _key(emulator)
    for gateway in topology.gateways:
        gateway.get_session(*key).raise_for_status()
    emulator.seed(*key, {**SAMPLE_SESSION, "Name": "renamed"})

    revalidated = topology.gateways[0].get_session(*key, headers={"Cache-Control": "no-cache"})
    assert revalidated.json()["ProxySession"]["Name"] == "renamed"

    for gateway in topology.gateways[1:]:
        began = time.monotonic()
        while gateway.get_session(*key).json()["ProxySession"]["Name"] != "renamed":
            assert time.monotonic() - began < 1.0, f"{gateway.url} kept the old session"
            time.sleep(0.02)
    assert emulator.calls(*key) == 2


def test_values_at_rest_are_sealed(topology: Topology, emulator: Emulator) -> None:
    key = _key(emulator)
    topology.gateways[0].get_session(*key).raise_for_status()

    stored = topology.strings(f"{PREFIX}s:*")

    assert stored
    for number in PHONE_NUMBERS:
        assert not any(number.encode() in name + value for name, value in stored.items())
    assert topology.gateways[2].get_session(*key).headers[STATUS].startswith(SHARED_HIT)


def test_a_sentinel_failover_is_followed(
    emulator: Emulator, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with _fleet(emulator, tmp_path_factory.mktemp("failover"), "sentinel") as topology:
        assert topology.sentinel is not None
        first, second = topology.gateways[0], topology.gateways[1]
        assert _shares(second, first, emulator)

        topology.sentinel.fail_over()

        began = time.monotonic()
        while True:
            key = _key(emulator)
            replies = [gateway.get_session(*key) for gateway in topology.gateways]
            assert [reply.status_code for reply in replies] == [200] * 3  # never a 5xx
            if _shares(second, first, emulator):
                break
            assert time.monotonic() - began < RESUMES_WITHIN, "sharing did not resume"
            time.sleep(0.5)


def test_the_fleets_quota_holds_at_aws(topology: Topology, emulator: Emulator) -> None:
    time.sleep(1.2)  # the earlier tests' calls leave the window
    started = time.time()
    vc = f"vc-{uuid.uuid4().hex[:10]}"
    urls = [
        f"{topology.gateways[n % 3].url}/v1/voice-connectors/{vc}/proxy-sessions/ps-{n}"
        for n in range(60)
    ]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            return list(await asyncio.gather(*(client.get(url) for url in urls)))

    replies = asyncio.run(burst())

    statuses = [reply.status_code for reply in replies]
    assert set(statuses) <= {404, 429}, statuses  # unknown sessions, or no slot in time
    arrivals = sorted(t for t in emulator.call_times() if t >= started)
    assert statuses.count(404) == len(arrivals)
    busiest = max(
        sum(1 for t in arrivals[i:] if t < start + 1.0) for i, start in enumerate(arrivals)
    )
    assert busiest <= RATE_LIMIT
    assert len(arrivals) >= 2 * SHARED_WINDOW  # the window let calls through, then held them


def test_the_layer_killed_causes_no_5xx(topology: Topology, emulator: Emulator) -> None:
    cached, fresh = _key(emulator), _key(emulator)
    for gateway in topology.gateways:
        gateway.get_session(*cached).raise_for_status()

    topology.kill()

    for gateway in topology.gateways:
        for key in (cached, fresh, cached):
            reply = gateway.get_session(*key)
            assert reply.status_code == 200, reply.text
    assert emulator.calls(*fresh) <= len(topology.gateways)
