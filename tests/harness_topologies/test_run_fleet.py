"""`make run-fleet`'s choice of Redis topology (FLEET_TOPOLOGY) and what the replicas get."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from scripts.fleet_redis import TOPOLOGIES, choose_topology, start_shared_redis
from scripts.run_fleet import banner, fleet_settings


@pytest.mark.parametrize("environ", [{}, {"FLEET_TOPOLOGY": ""}, {"FLEET_TOPOLOGY": "standalone"}])
def test_the_topology_is_standalone_unless_chosen(environ: dict[str, str]) -> None:
    assert choose_topology(environ) == "standalone"


@pytest.mark.parametrize("name", TOPOLOGIES)
def test_each_topology_can_be_chosen(name: str) -> None:
    assert choose_topology({"FLEET_TOPOLOGY": name}) == name


def test_an_unknown_topology_exits_naming_the_valid_ones() -> None:
    with pytest.raises(SystemExit) as exited:
        choose_topology({"FLEET_TOPOLOGY": "Cluster"})

    message = str(exited.value.code)
    assert (
        message == "FLEET_TOPOLOGY='Cluster' is unknown; valid: standalone, cluster, sentinel, tls"
    )
    assert "\n" not in message


def test_the_replicas_get_the_topologys_redis_settings_not_the_callers() -> None:
    environ = {
        "GATEWAY_PORT": "9000",
        "GATEWAY_REDIS_URL": "redis://elsewhere:6379/0",
        "GATEWAY_REDIS_CA_FILE": "/etc/elsewhere/ca.pem",
        "GATEWAY_REDIS_KEY_PREFIX": "mine:",
        "HOME": "/root",
    }
    ours = {"GATEWAY_REDIS_URL": "rediss://127.0.0.1:1234/0", "GATEWAY_REDIS_CA_FILE": "/tmp/ca"}

    assert fleet_settings(environ, ours) == {
        "GATEWAY_GRAPHIQL": "true",
        "GATEWAY_GRAPHQL_INTROSPECTION": "true",
        "GATEWAY_REDIS_KEY_PREFIX": "mine:",
        **ours,
    }
    assert "GATEWAY_REDIS_CA_FILE" not in fleet_settings(environ, {"GATEWAY_REDIS_URL": "r"})


def test_the_tls_topology_hands_its_ca_to_the_replicas_and_removes_it_after() -> None:
    with contextlib.ExitStack() as stack:
        shared = start_shared_redis("tls", stack)
        ca = Path(shared.settings["GATEWAY_REDIS_CA_FILE"])
        server = shared.watched["redis-server"]
        assert shared.settings["GATEWAY_REDIS_URL"] == shared.url == server.url
        assert shared.url.startswith("rediss://127.0.0.1:")
        assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert server.call("PING") == b"PONG"
        text = banner(["http://a", "http://b", "http://c"], "http://e", shared.description)
    assert f"shares one redis-server over TLS ({shared.url}, CA {ca})\n" in text
    assert not ca.exists()
    assert server.process is None


def test_the_standalone_banner_names_one_redis_server() -> None:
    with contextlib.ExitStack() as stack:
        shared = start_shared_redis("standalone", stack)
        assert shared.settings == {"GATEWAY_REDIS_URL": shared.url}
        text = banner(["http://a", "http://b", "http://c"], "http://e", shared.description)
    assert f"A fleet of 3 gateways shares one redis-server ({shared.url})\n" in text


def test_the_sentinel_topology_outlives_its_primary_and_says_how_to_kill_it() -> None:
    with contextlib.ExitStack() as stack:
        shared = start_shared_redis("sentinel", stack)
        [sentinel] = shared.watched.values()
        assert shared.url == f"redis-sentinel://127.0.0.1:{sentinel.port}/psgw"
        assert sentinel.call("SENTINEL", "get-master-addr-by-name", "psgw") is not None
        text = banner(
            ["http://a", "http://b", "http://c"], "http://e", shared.description, shared.hint
        )
    assert "shares a Redis primary and its replica behind a sentinel (redis-sentinel://" in text
    assert "\n  kill -9 " in text
