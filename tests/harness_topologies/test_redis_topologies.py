"""The harness's Redis topologies start and serve redis-py's own clients: TLS, Cluster, Sentinel."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from redis.cluster import ClusterNode
from redis.cluster import RedisCluster as ClusterClient
from redis.sentinel import Sentinel

from harness.redis import RedisServer, TlsFiles, make_tls_files
from harness.redis_topologies import RedisCluster, RedisSentinel

T = TypeVar("T")
RETRY_SECONDS = 10.0


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A private CA and a certificate for 127.0.0.1 signed by it."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=[False, True], ids=["tcp", "tls"])
def tls(request: pytest.FixtureRequest, tls_files: TlsFiles) -> TlsFiles | None:
    """No TLS, then TLS."""
    return tls_files if request.param else None


def _ssl(tls: TlsFiles | None) -> dict[str, Any]:
    """redis-py's options to talk TLS trusting the harness's CA."""
    return {} if tls is None else {"ssl": True, "ssl_ca_certs": str(tls.ca)}


def _retry(attempt: Callable[[], T]) -> T:
    """`attempt`'s result once it stops failing over the connection, within RETRY_SECONDS."""
    deadline = time.monotonic() + RETRY_SECONDS
    while True:
        try:
            return attempt()
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_a_tls_server_serves_a_client_that_trusts_its_ca(tls_files: TlsFiles) -> None:
    server = RedisServer(tls=tls_files).start()
    try:
        assert server.url == f"rediss://127.0.0.1:{server.port}/0"
        client = redis.Redis.from_url(server.url, ssl_ca_certs=str(tls_files.ca))
        with client:
            assert client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"
        assert server.strings() == {b"greeting": b"hello"}
        server.restart()
        assert server.call("DBSIZE") == 0
    finally:
        server.cleanup()


def test_a_tls_server_does_not_speak_plain_tcp(tls_files: TlsFiles) -> None:
    server = RedisServer(tls=tls_files).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            with pytest.raises(ConnectionResetError):  # no TLS handshake
                assert connection.recv(64) == b""
    finally:
        server.cleanup()


@pytest.fixture
def cluster(tls: TlsFiles | None, tmp_path: Path) -> Iterator[RedisCluster]:
    """Three masters, over TCP then TLS, logging in `tmp_path`."""
    started = RedisCluster(tls=tls, log_dir=tmp_path).start()
    yield started
    started.cleanup()


def test_a_cluster_spreads_a_cluster_clients_keys_over_its_masters(
    cluster: RedisCluster, tls: TlsFiles | None, tmp_path: Path
) -> None:
    scheme, _, addresses = cluster.url.partition("://")
    assert scheme == ("rediss-cluster" if tls else "redis-cluster")
    hosts_ports = [address.partition(":")[::2] for address in addresses.split(",")]
    assert hosts_ports == [("127.0.0.1", str(node.port)) for node in cluster.nodes]
    nodes = [ClusterNode(host, int(port)) for host, port in hosts_ports]  # type: ignore[no-untyped-call]
    client = ClusterClient(startup_nodes=nodes, **_ssl(tls))
    try:
        for n in range(30):
            client.set(f"key-{n}", f"value-{n}")
        assert client.get("key-7") == b"value-7"
    finally:
        client.close()

    assert cluster.strings("key-*") == {
        f"key-{n}".encode(): f"value-{n}".encode() for n in range(30)
    }
    assert sorted(cluster.keys("key-*")) == sorted(f"key-{n}".encode() for n in range(30))
    assert all(node.call("DBSIZE") > 0 for node in cluster.nodes)
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "redis-node-0.log", "redis-node-1.log", "redis-node-2.log"
    ]  # fmt: skip


@pytest.fixture
def sentinel(tls: TlsFiles | None, tmp_path: Path) -> Iterator[RedisSentinel]:
    """A primary, its replica and a sentinel, over TCP then TLS, logging in `tmp_path`."""
    started = RedisSentinel(tls=tls, log_dir=tmp_path).start()
    yield started
    started.cleanup()


def test_a_sentinel_clients_primary_survives_a_failover(
    sentinel: RedisSentinel, tls: TlsFiles | None, tmp_path: Path
) -> None:
    scheme, _, rest = sentinel.url.partition("://")
    assert scheme == ("rediss-sentinel" if tls else "redis-sentinel")
    address, _, service = rest.partition("/")
    host, _, port = address.partition(":")
    assert (int(port), service) == (sentinel.sentinel.port, "psgw")
    watcher = Sentinel(  # type: ignore[no-untyped-call]
        [(host, int(port))], sentinel_kwargs=_ssl(tls), socket_timeout=1, **_ssl(tls)
    )
    primary = watcher.master_for(service)  # type: ignore[no-untyped-call]
    try:
        primary.set("before", "failover")
        assert primary.execute_command("WAIT", 1, 2000) == 1  # on the replica before the crash

        sentinel.fail_over()

        assert sentinel.sentinel.master_port() == sentinel.replica.port
        assert _retry(lambda: primary.get("before")) == b"failover"
        assert _retry(lambda: primary.set("after", "failover"))
        assert sentinel.replica.strings() == {b"before": b"failover", b"after": b"failover"}
    finally:
        primary.close()
        for connection in watcher.sentinels:
            connection.close()
    logs = sorted(path.name for path in tmp_path.iterdir())
    assert logs == ["redis-primary.log", "redis-replica.log", "redis-sentinel.log"]


def test_a_redis_server_is_out_of_reach_of_the_terminal_s_ctrl_c() -> None:
    server = RedisServer().start()
    try:
        assert server.process is not None
        assert os.getpgid(server.process.pid) != os.getpgid(0)
    finally:
        server.stop()
