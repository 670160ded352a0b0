"""The shared layer is never needed to answer: a real redis-server missing at start, killed,
restarted, slow, full, read-only or holding garbage, and a replica killed holding a lease.

Seen from outside only: status codes, `Cache-Status`, calls counted at the emulator, the
gateways' metrics and their JSON log lines.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.shared.layer import entry_name
from harness.redis import RedisServer, ReplyError
from tests.conftest import PHONE_NUMBERS, SAMPLE_SESSION, GatewayFactory
from tests.support.servers import Emulator, Gateway, _q, free_port, start_gateway, wait_ready

Key = tuple[str, str]

PREFIX = "failures:"
REDIS_TIMEOUT = 0.1
"""GATEWAY_REDIS_TIMEOUT_SECONDS unless a test says otherwise."""
DEADLINE = 1.0
"""GATEWAY_UPSTREAM_TIMEOUT_SECONDS unless a test says otherwise."""
SLACK = 0.5
"""Scheduling noise allowed on top of a bound (two cores run every process here)."""
RESUMES_WITHIN = 30.0
"""The contract: sharing again within 30 seconds of the server's return."""

STATUS = "cache-status"
SHARED_HIT = "proxy-gateway-shared; hit"
LOCAL_HIT = "proxy-gateway; hit"
FETCHED = "proxy-gateway-shared; fwd=miss; fwd-status=200; stored, proxy-gateway; fwd=miss; stored"
"""Fetched from AWS for the fleet and shared."""
ALONE = "proxy-gateway-shared; fwd=miss; fwd-status=200, proxy-gateway; fwd=miss; stored"
"""Fetched from AWS as a lone replica would: the shared layer did not take it."""

OPERATIONS = "gateway_shared_cache_operations_total"
UP = "gateway_shared_cache_up"
UNREACHABLE = "shared cache layer unreachable"
REACHABLE = "shared cache layer reachable again"
UNENCRYPTED = "the shared cache layer stores sessions unencrypted"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to kill, pause, fill or break at will."""
    server = RedisServer(log=tmp_path / "redis.log").start()
    yield server
    server.cleanup()


def settings(redis_url: str, **extra: object) -> dict[str, object]:
    """A replica's settings: fleet mode on `redis_url`, short timeouts."""
    return {
        "redis_url": redis_url,
        "redis_key_prefix": PREFIX,
        "redis_timeout_seconds": REDIS_TIMEOUT,
        "upstream_timeout_seconds": DEADLINE,
        **extra,
    }


@contextmanager
def started(
    emulator: Emulator, folder: Path, *replicas: Mapping[str, object]
) -> Iterator[list[Gateway]]:
    """One gateway per settings, started side by side, stopped (or reaped) on the way out."""
    running: list[Gateway] = []
    try:
        for number, replica in enumerate(replicas):
            env = {f"GATEWAY_{name.upper()}": str(value) for name, value in replica.items()}
            log = folder / f"gateway-{number}.log"
            running.append(start_gateway(emulator.url, log, env, wait=False))
        for gateway in running:
            wait_ready(gateway)
        yield running
    finally:
        for gateway in running:
            gateway.stop()


def new_key(emulator: Emulator, *, seeded: bool = True) -> Key:
    """A key no other test uses, with the sample session at the emulator if `seeded`."""
    key = (f"vc-{uuid.uuid4().hex[:12]}", f"ps-{uuid.uuid4().hex}")
    if seeded:
        emulator.seed(*key, SAMPLE_SESSION)
    return key


def name(kind: str, key: Key, prefix: str = PREFIX) -> str:
    """The Redis key the gateway uses for `key`: `s` its entry, `l` its lease."""
    return entry_name(prefix, kind, key).decode()


def path(key: Key) -> str:
    return f"/v1/voice-connectors/{_q(key[0])}/proxy-sessions/{_q(key[1])}"


def timed(gateway: Gateway, key: Key) -> tuple[httpx.Response, float]:
    """GET `key` through `gateway`, and how many seconds it took."""
    began = time.monotonic()
    reply = gateway.get_session(*key)
    return reply, time.monotonic() - began


def shared(reader: Gateway, writer: Gateway, emulator: Emulator) -> bool:
    """Whether `reader` reads from the shared layer a new key `writer` just fetched."""
    key = new_key(emulator)
    assert writer.get_session(*key).status_code == 200
    reply = reader.get_session(*key)
    assert reply.status_code == 200
    return reply.headers[STATUS].startswith(SHARED_HIT)


def warnings(gateway: Gateway, message: str) -> list[dict[str, Any]]:
    """The gateway's WARNING records starting with `message`, once its log is settled."""
    records = [orjson.loads(line) for line in gateway.settled_log_lines() if line.strip()]
    return [
        record
        for record in records
        if record["level"] == "WARNING" and record["message"].startswith(message)
    ]


def asleep(server: RedisServer) -> None:
    """Return once `server` answers nobody (a DEBUG SLEEP sent on another connection)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            server.call("PING", timeout=0.2)
        except TimeoutError:
            return
        time.sleep(0.01)
    raise AssertionError("the server never fell asleep")


def failures(gateway: Gateway) -> float:
    """Shared-layer operations that failed (an error, or out of time) so far."""
    return gateway.metric(OPERATIONS, outcome="error") + gateway.metric(
        OPERATIONS, outcome="timeout"
    )


Reply = tuple[float, int, float]
"""When a request was sent (monotonic), its status, and how long it took."""


async def traffic(fleet: Sequence[Gateway], keys: Sequence[Key], seconds: float) -> list[Reply]:
    """Four clients asking random keys of random replicas for `seconds`."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    replies: list[Reply] = []

    async def client(seed: int, http: httpx.AsyncClient) -> None:
        pick = random.Random(seed)
        while loop.time() < end:
            gateway, key = pick.choice(fleet), pick.choice(keys)
            began = time.monotonic()
            reply = await http.get(gateway.url + path(key))
            replies.append((began, reply.status_code, time.monotonic() - began))

    async with httpx.AsyncClient(timeout=30) as http:
        await asyncio.gather(*(client(seed, http) for seed in range(4)))
    return replies


def test_a_server_missing_at_start_is_not_needed_and_is_used_once_it_comes(
    emulator: Emulator, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    replica = settings(f"redis://127.0.0.1:{port}/0")
    with started(emulator, tmp_path, replica, replica) as (first, second):
        assert first.client.get("/readyz").status_code == 200
        key = new_key(emulator)

        fetched, took = timed(first, key)
        again = first.get_session(*key)

        assert (fetched.status_code, fetched.headers[STATUS]) == (200, ALONE)
        assert took <= DEADLINE + REDIS_TIMEOUT + SLACK
        assert again.status_code == 200
        assert again.headers[STATUS].startswith(LOCAL_HIT)
        assert again.content == fetched.content
        assert emulator.calls(*key) == 1
        assert first.metric(UP) == 0
        assert len(warnings(first, UNREACHABLE)) == 1

        server = RedisServer(port=port, log=tmp_path / "redis.log").start()
        try:
            began = time.monotonic()
            while not shared(second, first, emulator):
                assert time.monotonic() - began < RESUMES_WITHIN, "sharing did not resume"
                time.sleep(0.2)
            assert first.client.get("/readyz").status_code == 200
            for gateway in (first, second):
                assert gateway.metric(UP) == 1
                assert len(warnings(gateway, UNREACHABLE)) == 1
                assert len(warnings(gateway, REACHABLE)) == 1
        finally:
            server.cleanup()


def test_a_server_killed_mid_traffic_fails_no_request_and_warns_once(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    # A short freshness so that replicas keep going to the shared layer.
    replica = settings(redis.url, redis_timeout_seconds=0.5, cache_ttl_seconds=0.3)
    keys = [new_key(emulator) for _ in range(16)]
    with started(emulator, tmp_path, replica, replica) as fleet:

        async def kill_mid_traffic() -> tuple[float, list[Reply]]:
            running = asyncio.create_task(traffic(fleet, keys, seconds=3.0))
            await asyncio.sleep(1.0)
            killed = time.monotonic()
            redis.kill()
            return killed, await running

        killed, replies = asyncio.run(kill_mid_traffic())

        assert sum(1 for began, _, _ in replies if began < killed) >= 5
        assert sum(1 for began, _, _ in replies if began > killed) >= 5
        assert {status for _, status, _ in replies} == {200}
        assert max(took for _, _, took in replies) <= DEADLINE + 0.5 + SLACK
        for gateway in fleet:
            assert gateway.client.get("/readyz").status_code == 200
            assert gateway.metric(UP) == 0
            # The breaker: a dead server is not asked on every request.
            assert gateway.metric(OPERATIONS, outcome="skipped") > 0
            unreachable = warnings(gateway, UNREACHABLE)
            assert len(unreachable) == 1, unreachable
            assert not warnings(gateway, REACHABLE)


def test_a_restarted_server_is_shared_again_without_restarting_replicas(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    replica = settings(redis.url, redis_timeout_seconds=0.5, cache_ttl_seconds=1)
    keys = [new_key(emulator) for _ in range(16)]
    with started(emulator, tmp_path, replica, replica) as fleet:
        first, second = fleet
        assert shared(second, first, emulator)
        # Concurrent misses: each replica's pool holds several connections when it dies.
        assert {status for _, status, _ in asyncio.run(traffic(fleet, keys, 0.5))} == {200}
        redis.kill()
        for gateway in fleet:
            reply = gateway.get_session(*new_key(emulator))
            assert (reply.status_code, reply.headers[STATUS]) == (200, ALONE)

        redis.start()  # same port, empty
        began = time.monotonic()
        while not shared(second, first, emulator):
            assert time.monotonic() - began < RESUMES_WITHIN, "sharing did not resume"
            time.sleep(0.2)

        # Back for good: the connections pooled before the crash do not make it flap.
        assert {status for _, status, _ in asyncio.run(traffic(fleet, keys, 1.0))} == {200}
        assert shared(first, second, emulator)
        for gateway in fleet:
            assert gateway.metric(UP) == 1
            assert len(warnings(gateway, UNREACHABLE)) == 1
            assert len(warnings(gateway, REACHABLE)) == 1


def test_a_slow_server_costs_at_most_its_timeout_and_then_is_skipped(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    with started(emulator, tmp_path, settings(redis.url)) as (gateway,):
        assert gateway.get_session(*new_key(emulator)).headers[STATUS] == FETCHED
        keys = [new_key(emulator) for _ in range(8)]
        failed, skipped = failures(gateway), gateway.metric(OPERATIONS, outcome="skipped")
        sleeping = threading.Thread(
            target=redis.call, args=("DEBUG", "SLEEP", "3"), kwargs={"timeout": 10}
        )
        sleeping.start()
        try:
            asleep(redis)
            replies = [timed(gateway, key) for key in keys]
            assert sleeping.is_alive(), "the server woke up before the requests were done"
        finally:
            sleeping.join()

        assert [reply.status_code for reply, _ in replies] == [200] * len(keys)
        assert [reply.headers[STATUS] for reply, _ in replies] == [ALONE] * len(keys)
        assert max(took for _, took in replies) <= DEADLINE + REDIS_TIMEOUT + SLACK
        assert all(emulator.calls(*key) == 1 for key in keys)
        # A few operations waited out their timeout; then the breaker skipped the rest.
        assert 1 <= failures(gateway) - failed <= 4
        assert gateway.metric(OPERATIONS, outcome="skipped") - skipped >= len(keys)
        assert gateway.metric(UP) == 0
        assert len(warnings(gateway, UNREACHABLE)) == 1
        assert gateway.client.get("/readyz").status_code == 200


def test_a_server_falling_asleep_during_the_call_adds_one_timeout_at_most(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    # A longer limit than elsewhere, so that three operations each taking it (the write,
    # the notice and the release, as the request once waited for) would stand out.
    limit, delay = 0.3, 0.6
    with started(emulator, tmp_path, settings(redis.url, redis_timeout_seconds=limit)) as (
        gateway,
    ):
        assert gateway.get_session(*new_key(emulator)).headers[STATUS] == FETCHED
        key = new_key(emulator)
        emulator.fault(*key, delay=delay, times=1)
        sleeping = threading.Thread(
            target=_sleep_after, args=(redis, delay / 2), kwargs={"seconds": 3}
        )
        sleeping.start()
        try:
            reply, took = timed(gateway, key)
        finally:
            sleeping.join()

    assert reply.status_code == 200
    assert reply.headers[STATUS] == ALONE  # read and lease before the sleep; no write
    assert took <= delay + limit + 0.25


def _sleep_after(server: RedisServer, pause: float, *, seconds: int) -> None:
    time.sleep(pause)
    server.call("DEBUG", "SLEEP", str(seconds), timeout=seconds + 5)


REFUSALS: dict[str, tuple[tuple[str, ...], ...]] = {
    "out of memory": (
        ("CONFIG", "SET", "maxmemory-policy", "noeviction"),
        ("CONFIG", "SET", "maxmemory", "1"),
    ),
    # A replica of a master that is not there: it refuses every write.
    "read-only": (("REPLICAOF", "127.0.0.1", str(free_port())),),
}


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_server_refusing_writes_changes_no_answer(
    refusal: str, emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    with started(emulator, tmp_path, settings(redis.url)) as (gateway,):
        assert gateway.get_session(*new_key(emulator)).headers[STATUS] == FETCHED
        for command in REFUSALS[refusal]:
            redis.call(*command)
        with pytest.raises(ReplyError, match=r"^(OOM|READONLY) "):
            redis.call("SET", f"{PREFIX}probe", "x")
        found = [new_key(emulator) for _ in range(5)]
        missing = new_key(emulator, seeded=False)

        for key in found:
            first, took = timed(gateway, key)
            again = gateway.get_session(*key)
            assert (first.status_code, first.headers[STATUS]) == (200, ALONE)
            assert took <= DEADLINE + REDIS_TIMEOUT + SLACK
            assert again.status_code == 200
            assert again.headers[STATUS].startswith(LOCAL_HIT)
            assert emulator.calls(*key) == 1
        for _ in range(2):  # from AWS, then this process's negative entry
            reply = gateway.get_session(*missing)
            assert (reply.status_code, reply.json()["code"]) == (404, "NOT_FOUND")
        assert emulator.calls(*missing) == 1
        assert gateway.client.get("/readyz").status_code == 200


GARBAGE: dict[str, tuple[str | bytes, ...]] = {
    "random bytes": ("SET", "{name}", os.urandom(64)),
    "empty": ("SET", "{name}", b""),
    "plain, not JSON": ("SET", "{name}", b"\x00{not json"),
    "plain JSON, not an entry": ("SET", "{name}", b'\x00{"f": "soon", "k": [], "b": 1}'),
    "plain entry, not a session": ("SET", "{name}", b'\x00{"f": 4e9, "k": 4e9, "b": "{}"}'),
    "sealed, with no key to open it": ("SET", "{name}", b"\x01" + os.urandom(64)),
    "a hash, not a string": ("HSET", "{name}", "b", "x"),
}


@pytest.fixture
def lone(gateway_factory: GatewayFactory, redis_server: RedisServer) -> Gateway:
    """A replica on the session's redis-server, this module's key prefix, no encryption."""
    return gateway_factory(redis_url=redis_server.url, redis_key_prefix=PREFIX)


@pytest.mark.parametrize("garbage", list(GARBAGE))
def test_garbage_under_a_key_reads_as_a_miss(
    garbage: str, emulator: Emulator, redis_server: RedisServer, lone: Gateway
) -> None:
    key = new_key(emulator)
    entry = name("s", key)
    redis_server.call(*(entry if part == "{name}" else part for part in GARBAGE[garbage]))

    reply = lone.get_session(*key)

    assert (reply.status_code, reply.headers[STATUS]) == (200, FETCHED)
    assert reply.json()["ProxySession"]["ProxySessionId"] == key[1]
    assert emulator.calls(*key) == 1
    # What the gateway fetched replaced the garbage.
    assert key[1].encode() in redis_server.call("GET", entry)


@pytest.mark.parametrize("found", [True, False], ids=["a session", "a not found"])
def test_another_keys_value_reads_as_a_miss(
    found: bool, emulator: Emulator, redis_server: RedisServer, lone: Gateway
) -> None:
    other, key = new_key(emulator, seeded=found), new_key(emulator)
    assert lone.get_session(*other).status_code == (200 if found else 404)
    redis_server.call("SET", name("s", key), redis_server.call("GET", name("s", other)))

    reply = lone.get_session(*key)

    assert (reply.status_code, reply.headers[STATUS]) == (200, FETCHED)
    assert reply.json()["ProxySession"]["ProxySessionId"] == key[1]
    assert emulator.calls(*key) == 1


def test_a_replica_killed_holding_a_lease_delays_the_others_by_its_deadline_at_most(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    deadline = 2.0
    replica = settings(redis.url, upstream_timeout_seconds=deadline)
    key = new_key(emulator)
    with started(emulator, tmp_path, replica, replica) as (holder, other):
        emulator.fault(*key, delay=3)
        replies: list[httpx.Response] = []

        def ask(gateway: Gateway) -> None:
            with httpx.Client(timeout=10) as http:
                try:
                    replies.append(http.get(gateway.url + path(key)))
                except httpx.TransportError:
                    assert gateway is holder

        holding = threading.Thread(target=ask, args=(holder,))
        began = time.monotonic()
        holding.start()
        while emulator.calls(*key) == 0:  # the holder took the lease, then called AWS
            assert time.monotonic() - began < 5, "the holder never called AWS"
            time.sleep(0.01)
        # The other replica waits for the holder's fill; the holder dies before it comes.
        waiting = threading.Thread(target=ask, args=(other,))
        waiting.start()
        time.sleep(0.1)
        assert 0 < redis.call("PTTL", name("l", key)) <= (deadline + 0.5) * 1000
        holder.process.kill()
        holder.process.wait()
        emulator.clear_fault(*key)
        holding.join()
        waiting.join()
        waited = time.monotonic() - began

        # It took the lease over: AWS called once more, for the fleet.
        assert [(reply.status_code, reply.headers[STATUS]) for reply in replies] == [(200, FETCHED)]
        assert emulator.calls(*key) == 2
        # The lease outlives the deadline by half a second; a waiter looks every 0.25 s.
        assert waited <= deadline + 0.5 + 0.25 + SLACK


def write_keys(file: Path, *keys: bytes) -> Path:
    """A key file: base64 keys, one a line, the one that encrypts first."""
    file.write_text("".join(base64.b64encode(key).decode() + "\n" for key in keys))
    return file


def test_values_at_rest_are_sealed_and_open_only_with_their_key(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    old, new, foreign = os.urandom(32), os.urandom(32), os.urandom(32)
    # Not a test of time limits: a generous one, for four replicas starting at once.
    sealed = settings(redis.url, redis_key_prefix="sealed:", redis_timeout_seconds=1.0)
    with started(
        emulator,
        tmp_path,
        {**sealed, "cache_encryption_key_file": write_keys(tmp_path / "old.keys", old)},
        {**sealed, "cache_encryption_key_file": write_keys(tmp_path / "rot.keys", new, old)},
        {**sealed, "cache_encryption_key_file": write_keys(tmp_path / "foreign.keys", foreign)},
        settings(redis.url, redis_key_prefix="plain:", redis_timeout_seconds=1.0),
    ) as (sealer, rotated, stranger, plain):
        key = new_key(emulator)
        first = sealer.get_session(*key)
        assert (first.status_code, first.headers[STATUS]) == (200, FETCHED)
        assert plain.get_session(*key).headers[STATUS] == FETCHED

        # The entries: a lease may still be there, let go of after the answer.
        stored = redis.strings("*:s:*")
        at_rest = {k: v for k, v in stored.items() if k.startswith(b"sealed:")}
        in_clear = {k: v for k, v in stored.items() if k.startswith(b"plain:")}
        assert list(at_rest) == [name("s", key, "sealed:").encode()]
        assert list(in_clear) == [name("s", key, "plain:").encode()]
        for number in PHONE_NUMBERS:
            assert not any(number.encode() in k + v for k, v in at_rest.items()), number
            assert any(number.encode() in v for v in in_clear.values()), number  # a real scan

        # The same key, now second to a new one (rotation): it still opens.
        hit = rotated.get_session(*key)
        assert hit.status_code == 200
        assert hit.headers[STATUS].startswith(SHARED_HIT)
        assert hit.content == first.content
        assert emulator.calls(*key) == 2  # the sealer, and the plain replica (another prefix)

        # Another key opens nothing: a miss, answered from AWS.
        miss = stranger.get_session(*key)
        assert (miss.status_code, miss.headers[STATUS]) == (200, FETCHED)
        assert miss.content == first.content
        assert emulator.calls(*key) == 3

        assert len(warnings(plain, UNENCRYPTED)) == 1
        for gateway in (sealer, rotated, stranger):
            assert not warnings(gateway, UNENCRYPTED)
        # Four replicas started at once against a server that was up all along.
        for gateway in (sealer, rotated, stranger, plain):
            assert not warnings(gateway, UNREACHABLE)
