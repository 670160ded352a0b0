"""What `GATEWAY_REDIS_URL` names: one server, a Cluster's seed nodes, or the Sentinels of a
primary, with or without TLS. Read once, at start; an error never echoes the URL (it may
hold a password)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote

Topology = Literal["standalone", "cluster", "sentinel"]

SCHEMES: dict[str, tuple[Topology, bool]] = {
    "redis": ("standalone", False),
    "rediss": ("standalone", True),
    "unix": ("standalone", False),
    "redis-cluster": ("cluster", False),
    "rediss-cluster": ("cluster", True),
    "redis-sentinel": ("sentinel", False),
    "rediss-sentinel": ("sentinel", True),
}
"""Each scheme served: its topology, and whether it speaks TLS."""

DEFAULT_PORTS: dict[Topology, int] = {"standalone": 6379, "cluster": 6379, "sentinel": 26379}

SCHEME_LIST = ", ".join(f"{scheme}://" for scheme in SCHEMES)


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where the shared layer is: for `standalone` the URL itself (redis-py reads it); for
    `cluster` the seed nodes; for `sentinel` the Sentinels and the primary's service name."""

    topology: Topology
    tls: bool
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0

    @property
    def description(self) -> str:
        """Which topology, in words (for logs: no host, no password)."""
        secured = " over TLS" if self.tls else ""
        if self.topology == "cluster":
            return f"Redis Cluster ({len(self.nodes)} seed nodes){secured}"
        if self.topology == "sentinel":
            return f"Sentinel-managed primary ({len(self.nodes)} sentinels){secured}"
        return f"one Redis server{secured}"


def parse_redis_url(url: str) -> RedisTarget:
    """The target `url` names, or ValueError saying what is wrong (never what the URL holds)."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.lower() not in SCHEMES:
        raise ValueError(f"must be a {SCHEME_LIST} URL")
    topology, tls = SCHEMES[scheme.lower()]
    if topology == "standalone":
        return RedisTarget("standalone", tls, url)
    location, _, query = rest.partition("?")
    if query:
        raise ValueError(f"a {scheme}:// URL takes no query parameters")
    netloc, _, path = location.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _credentials(userinfo) if at else (None, None)
    nodes = tuple(_node(part, DEFAULT_PORTS[topology]) for part in hosts.split(","))
    service = None
    db = 0
    if topology == "sentinel":
        service, _, number = unquote(path).partition("/")
        if not service:
            raise ValueError(f"a {scheme}:// URL names the primary's service: …/<service>")
        db = _db(number) if number else 0
    elif path.strip("/"):
        raise ValueError(f"a {scheme}:// URL has no path (a Cluster has database 0 only)")
    return RedisTarget(topology, tls, url, nodes, service, username, password, db)


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # `password@host`, as redis-py reads `redis://password@host`
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def _node(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, after = text[1:].partition("]")
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = text.partition(":")
    if not host:
        raise ValueError("every node needs a host: host:port[,host:port…]")
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise ValueError("a node's port is not a number") from None
    if not 0 < port < 65536:
        raise ValueError("a node's port is out of range")
    return host, port


def _db(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ValueError("the database after the service name is not a number") from None
    if number < 0:
        raise ValueError("the database number is negative")
    return number
