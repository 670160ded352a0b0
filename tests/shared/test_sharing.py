"""Replicas share one cache and one single flight: counted at the emulator."""

from __future__ import annotations

import asyncio
import time

import httpx
import redis

from harness.redis import RedisServer
from tests.conftest import SAMPLE_SESSION
from tests.shared.conftest import Fleet, FleetFactory
from tests.support.servers import Emulator, Gateway, _q

STATUS = "cache-status"


def _path(key: tuple[str, str]) -> str:
    return f"/v1/voice-connectors/{_q(key[0])}/proxy-sessions/{_q(key[1])}"


async def _stampede(fleet: Fleet, key: tuple[str, str], each: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        requests = [client.get(gateway.url + _path(key)) for gateway in fleet for _ in range(each)]
        return list(await asyncio.gather(*requests))


def test_a_stampede_across_replicas_makes_one_upstream_call(
    fleet: Fleet, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    emulator.fault(*seeded, delay=0.5)

    replies = asyncio.run(_stampede(fleet, seeded, each=40))

    assert [reply.status_code for reply in replies] == [200] * len(replies)
    assert len({reply.content for reply in replies}) == 1
    assert emulator.calls(*seeded) == 1


def test_a_replica_reads_what_another_fetched(
    fleet: Fleet, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    first = fleet[0].get_session(*seeded)
    second = fleet[1].get_session(*seeded)

    assert first.headers[STATUS] == (
        "proxy-gateway-shared; fwd=miss; fwd-status=200; stored, proxy-gateway; fwd=miss; stored"
    )
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers[STATUS].startswith("proxy-gateway-shared; hit; ttl=")
    assert second.headers[STATUS].endswith(", proxy-gateway; fwd=miss; stored")
    assert fleet[1].get_session(*seeded).headers[STATUS].startswith("proxy-gateway; hit;")
    assert emulator.calls(*seeded) == 1


def test_a_not_found_is_shared(fleet: Fleet, emulator: Emulator, key: tuple[str, str]) -> None:
    replies = [gateway.get_session(*key) for gateway in fleet]

    assert [reply.status_code for reply in replies] == [404] * len(fleet)
    answers = [(reply.json()["code"], reply.json().get("upstreamCode")) for reply in replies]
    assert answers == [("NOT_FOUND", "NotFoundException")] * len(fleet)
    assert emulator.calls(*key) == 1


def test_a_revalidation_reaches_every_replica(
    fleet: Fleet, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    for gateway in fleet:
        gateway.get_session(*seeded).raise_for_status()
    emulator.seed(*seeded, {"Name": "renamed", "Status": "Open"})

    revalidated = fleet[0].get_session(*seeded, headers={"Cache-Control": "no-cache"})
    assert revalidated.json()["ProxySession"]["Name"] == "renamed"

    for gateway in fleet[1:]:
        for _ in range(50):  # within a second
            name = gateway.get_session(*seeded).json()["ProxySession"]["Name"]
            if name == "renamed":
                break
            asyncio.run(asyncio.sleep(0.02))
        assert name == "renamed", gateway.url
    assert emulator.calls(*seeded) == 2


def test_graphql_answers_follow_a_revalidation_elsewhere(
    fleet: Fleet, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    query = (
        "query Q($vc: ID!, $ps: ID!) "
        "{ proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { name } }"
    )
    variables = {"vc": seeded[0], "ps": seeded[1]}

    def name(gateway: Gateway) -> str:
        reply = gateway.graphql(query, variables)
        reply.raise_for_status()
        value: str = reply.json()["data"]["proxySession"]["name"]
        return value

    assert name(fleet[1]) == name(fleet[1]) == "order-1234"  # the second from its cache
    emulator.seed(*seeded, {"Name": "renamed", "Status": "Open"})

    fleet[0].get_session(*seeded, headers={"Cache-Control": "no-cache"}).raise_for_status()

    for _ in range(50):
        if name(fleet[1]) == "renamed":
            break
        time.sleep(0.02)
    assert name(fleet[1]) == "renamed"
    assert emulator.calls(*seeded) == 2


def test_stale_while_revalidate_refreshes_once_for_the_fleet(
    fleet_factory: FleetFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    fleet = fleet_factory(3, name="swr", cache_ttl_seconds=0.3, stale_while_revalidate_seconds=30)
    for gateway in fleet:
        gateway.get_session(*seeded).raise_for_status()
    assert emulator.calls(*seeded) == 1
    time.sleep(0.35)  # gateway processes: their clocks cannot be moved from here
    emulator.fault(*seeded, delay=0.3, times=1)

    replies = asyncio.run(_stampede(fleet, seeded, each=10))

    assert {reply.headers[STATUS] for reply in replies} <= {
        "proxy-gateway; hit; ttl=-1",
        "proxy-gateway; hit; ttl=0",  # a replica that already refreshed
    }
    time.sleep(0.5)
    assert emulator.calls(*seeded) == 2
    metrics = fleet[0].client.get("/metrics").text
    assert 'gateway_cache_results_total{result="stale_while_revalidate"}' in metrics


def test_masking_all_stores_masked_numbers(
    fleet_factory: FleetFactory, redis_server: RedisServer, seeded: tuple[str, str]
) -> None:
    fleet = fleet_factory(2, name="masked", mask_phone_numbers="all")
    phone = SAMPLE_SESSION["Participants"][0]["PhoneNumber"]

    first = fleet[0].get_session(*seeded)
    second = fleet[1].get_session(*seeded)

    assert phone not in first.text
    assert second.headers[STATUS].startswith("proxy-gateway-shared; hit")
    assert second.content == first.content
    with redis.Redis.from_url(redis_server.url) as client:
        stored = [client.get(name) for name in client.scan_iter("masked-*")]
    assert stored
    assert all(phone[-4:].encode() in value for value in stored if value and b"Partic" in value)
    assert not any(phone.encode() in value for value in stored if value)
