"""Redis Cluster and Sentinel on loopback for the shared layer's other topologies: every node a
`RedisServer` (no persistence, a directory of its own, TCP or TLS), started and waited for."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.network import LOOPBACK, free_port
from harness.redis import RedisServer, ReplyError, TlsFiles, redis_server_binary

READY_TIMEOUT = 20.0
POLL_SECONDS = 0.05
CLUSTER_NODE_TIMEOUT_MS = "2000"
SENTINEL_CONFIG = """\
sentinel resolve-hostnames no
sentinel monitor {service} {host} {port} 1
sentinel down-after-milliseconds {service} 500
sentinel failover-timeout {service} 3000
"""


class RedisCluster:
    """`masters` cluster nodes holding all 16384 slots between them, no replicas."""

    def __init__(
        self, masters: int = 3, *, tls: TlsFiles | None = None, log_dir: Path | None = None
    ) -> None:
        self.tls = tls
        self._dir = Path(tempfile.mkdtemp(prefix="psgw-redis-cluster-"))
        ports = _free_ports(2 * masters)
        self.nodes = [
            _cluster_node(self._dir / f"node-{n}", ports[n], ports[masters + n], tls, log_dir, n)
            for n in range(masters)
        ]
        scheme = "rediss-cluster" if tls else "redis-cluster"
        self.url = f"{scheme}://" + ",".join(f"{LOOPBACK}:{node.port}" for node in self.nodes)

    def start(self) -> RedisCluster:
        """Start the nodes, join them into one cluster and wait until every node says it is ok."""
        try:
            for node in self.nodes:
                node.start()
            self._create()
            _wait_until(self._ok, "the cluster did not reach cluster_state:ok", self.nodes)
        except BaseException:
            self.stop()
            raise
        return self

    def _create(self) -> None:
        """`redis-cli --cluster create` over the nodes, the slots shared evenly."""
        addresses = [f"{LOOPBACK}:{node.port}" for node in self.nodes]
        argv = [_redis_cli(), "--cluster", "create", *addresses]
        argv += ["--cluster-replicas", "0", "--cluster-yes", *_cli_tls(self.tls)]
        done = subprocess.run(  # noqa: S603 - argv built here, no shell
            argv, capture_output=True, check=False, timeout=READY_TIMEOUT
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")
            raise RuntimeError(f"redis-cli --cluster create failed:\n{output}")

    def _ok(self) -> bool:
        """Whether every node reports cluster_state:ok."""
        return all(
            _info_field(node, "cluster_state", "CLUSTER", "INFO") == "ok" for node in self.nodes
        )

    def keys(self, pattern: str = "*") -> list[bytes]:
        """Every key matching `pattern`, from every node."""
        found: list[bytes] = []
        for node in self.nodes:
            found.extend(node.call("KEYS", pattern))
        return found

    def strings(self, pattern: str = "*") -> dict[bytes, bytes]:
        """Every string key matching `pattern` on any node, with its value."""
        found: dict[bytes, bytes] = {}
        for node in self.nodes:
            found.update(node.strings(pattern))
        return found

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def kill(self) -> None:
        """SIGKILL every node, as a crash would."""
        for node in self.nodes:
            node.kill()

    def cleanup(self) -> None:
        """Stop every node and remove their directories."""
        for node in self.nodes:
            node.cleanup()
        shutil.rmtree(self._dir, ignore_errors=True)


class SentinelServer(RedisServer):
    """A redis-server in sentinel mode watching one primary, from a config file of its own."""

    def __init__(
        self,
        *,
        service: str,
        primary_port: int,
        port: int,
        tls: TlsFiles | None,
        directory: Path,
        log: Path | None,
    ) -> None:
        # tls-replication makes the sentinel talk TLS to the data nodes too.
        extra = ("--tls-replication", "yes") if tls else ()
        super().__init__(port=port, log=log, tls=tls, extra_args=extra, directory=directory)
        self.service = service
        self.primary_port = primary_port

    def _argv(self) -> list[str]:
        """Its config file (rewritten at every start: the sentinel writes its state there)."""
        config = self._dir / "sentinel.conf"
        text = SENTINEL_CONFIG.format(service=self.service, host=LOOPBACK, port=self.primary_port)
        config.write_text(text, encoding="utf-8")
        return [redis_server_binary(), str(config), "--sentinel", *self._options()]

    def master_port(self) -> int | None:
        """The port it names as the service's primary now, if it answers."""
        try:
            address = self.call("SENTINEL", "get-master-addr-by-name", self.service)
        except (OSError, ReplyError):
            return None
        return None if address is None else int(address[1])

    def knows_replica(self, port: int) -> bool:
        """Whether it lists a connected replica on `port`."""
        try:
            replicas = self.call("SENTINEL", "replicas", self.service)
        except (OSError, ReplyError):
            return False
        for replica in replicas:
            fields = dict(zip(replica[::2], replica[1::2], strict=True))
            if fields.get(b"port") == str(port).encode():
                return b"disconnected" not in fields.get(b"flags", b"")
        return False


class RedisSentinel:
    """A primary, one replica of it and one sentinel watching them as `service`.

    After `fail_over`, `replica` is the primary and `primary` stays down.
    """

    def __init__(
        self, *, service: str = "psgw", tls: TlsFiles | None = None, log_dir: Path | None = None
    ) -> None:
        self.service = service
        self.tls = tls
        self._dir = Path(tempfile.mkdtemp(prefix="psgw-redis-sentinel-"))
        primary_port, replica_port, sentinel_port = _free_ports(3)
        self.primary = RedisServer(
            port=primary_port,
            tls=tls,
            # A diskless full sync waits 5 s by default for more replicas to join it.
            extra_args=["--repl-diskless-sync-delay", "0"],
            directory=self._dir / "primary",
            log=_log(log_dir, "primary"),
        )
        replica_args = ["--replicaof", LOOPBACK, str(primary_port)]
        replica_args += ["--tls-replication", "yes"] if tls else []
        self.replica = RedisServer(
            port=replica_port,
            tls=tls,
            extra_args=replica_args,
            directory=self._dir / "replica",
            log=_log(log_dir, "replica"),
        )
        self.sentinel = SentinelServer(
            service=service,
            primary_port=primary_port,
            port=sentinel_port,
            tls=tls,
            directory=self._dir / "sentinel",
            log=_log(log_dir, "sentinel"),
        )
        scheme = "rediss-sentinel" if tls else "redis-sentinel"
        self.url = f"{scheme}://{LOOPBACK}:{sentinel_port}/{service}"

    @property
    def servers(self) -> list[RedisServer]:
        """The primary, the replica and the sentinel."""
        return [self.primary, self.replica, self.sentinel]

    def start(self) -> RedisSentinel:
        """Start all three; wait until the replica follows and the sentinel knows them both."""
        try:
            self.primary.start()
            self.replica.start()
            _wait_until(self._replica_linked, "the replica did not link up", self.servers)
            self.sentinel.start()
            _wait_until(self._watched, "the sentinel did not find both nodes", self.servers)
        except BaseException:
            self.stop()
            raise
        return self

    def _replica_linked(self) -> bool:
        """Whether the replica's link to the primary is up."""
        return _info_field(self.replica, "master_link_status", "INFO", "replication") == "up"

    def _watched(self) -> bool:
        """Whether the sentinel names the primary and lists the replica."""
        return self.sentinel.master_port() == self.primary.port and self.sentinel.knows_replica(
            self.replica.port
        )

    def fail_over(self) -> None:
        """SIGKILL the primary and wait until the sentinel has promoted the replica."""
        self.primary.kill()
        _wait_until(self._promoted, "the sentinel did not promote the replica", self.servers)

    def _promoted(self) -> bool:
        """Whether the sentinel names the replica as primary, and the replica agrees."""
        if self.sentinel.master_port() != self.replica.port:
            return False
        try:
            role = self.replica.call("ROLE")
        except (OSError, ReplyError):
            return False
        return bool(role) and role[0] == b"master"

    def stop(self) -> None:
        """Stop the sentinel first (so it starts no failover), then the replica and the primary."""
        for server in reversed(self.servers):
            server.stop()

    def kill(self) -> None:
        """SIGKILL all three, as a crash would."""
        for server in reversed(self.servers):
            server.kill()

    def cleanup(self) -> None:
        """Stop all three and remove their directories."""
        for server in reversed(self.servers):
            server.cleanup()
        shutil.rmtree(self._dir, ignore_errors=True)


def _cluster_node(
    directory: Path, port: int, bus_port: int, tls: TlsFiles | None, log_dir: Path | None, n: int
) -> RedisServer:
    """One cluster node; its bus gets a port of its own (port + 10000 may be past 65535)."""
    args = [
        "--cluster-enabled", "yes",
        "--cluster-config-file", str(directory / "nodes.conf"),
        "--cluster-node-timeout", CLUSTER_NODE_TIMEOUT_MS,
        "--cluster-port", str(bus_port),
    ]  # fmt: skip
    args += ["--tls-cluster", "yes"] if tls else []
    return RedisServer(
        port=port, tls=tls, extra_args=args, directory=directory, log=_log(log_dir, f"node-{n}")
    )


def _log(log_dir: Path | None, name: str) -> Path | None:
    """Where a node logs: `log_dir` when given, else its own directory."""
    return None if log_dir is None else log_dir / f"redis-{name}.log"


def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _redis_cli() -> str:
    """The path of redis-cli (it comes with redis-server)."""
    found = shutil.which("redis-cli")
    if found is None:
        raise RuntimeError("redis-cli is not installed: apt-get install redis-server brings it")
    return found


def _cli_tls(tls: TlsFiles | None) -> list[str]:
    """redis-cli's options to talk TLS, trusting the CA."""
    return [] if tls is None else ["--tls", "--cacert", str(tls.ca)]


def _info_field(server: RedisServer, field: str, *command: str) -> str | None:
    """One `field:value` line's value from an INFO-like reply, or None if it does not answer."""
    try:
        reply: Any = server.call(*command)
    except (OSError, ReplyError):
        return None
    for line in bytes(reply).decode(errors="replace").splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return value.strip()
    return None


def _wait_until(ready: Callable[[], bool], failure: str, servers: list[RedisServer]) -> None:
    """Poll `ready` for READY_TIMEOUT, or raise RuntimeError with `failure` and the logs' tails."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(POLL_SECONDS)
    tails = "\n".join(f"--- port {server.port}:\n{server.log_tail()}" for server in servers)
    raise RuntimeError(f"{failure} in {READY_TIMEOUT:.0f} s:\n{tails}")
