"""The fleet when the shared layer half works or is cut off: a server that answers but will
not change, a replica that cannot reach it, a retry with no time left, and a lease holder
that dies mid-call.

Seen from outside only: replies, calls and their arrival times at the emulator, the
gateways' metrics and their JSON log lines, Redis contents.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import pytest

from harness.redis import RedisServer, ReplyError
from tests.shared.test_failures import (
    ALONE,
    FETCHED,
    OPERATIONS,
    PREFIX,
    REDIS_TIMEOUT,
    SHARED_HIT,
    SLACK,
    STATUS,
    UNENCRYPTED,
    UNREACHABLE,
    Key,
    name,
    new_key,
    path,
    settings,
    shared,
    started,
    timed,
    warnings,
)
from tests.shared.test_trust import ask, until
from tests.support.servers import Emulator, Gateway, free_port

COLLAPSED = "proxy-gateway-shared; fwd=miss; collapsed, proxy-gateway; fwd=miss; stored"
"""Answered with another replica's fill, read from the shared layer."""
REFUSES = "shared cache layer refuses writes"
TAKES_AGAIN = "shared cache layer takes writes again"
LEASE_SECONDS = 1.0
"""A lease's life unless its live holder renews it."""
POLL_SECONDS = 0.1
"""A waiter reads the entry (and tries the lease) this often."""
BREAKER_OPEN_SECONDS = 5.0
"""How long the writes' breaker skips writes before one tries again."""


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, to fill or make a replica at will."""
    server = RedisServer(log=tmp_path / "redis.log").start()
    yield server
    server.cleanup()


class Answer(NamedTuple):
    """One reply of some traffic: which replica answered, for which key, and how."""

    replica: int
    key: Key
    status: int
    cache_status: str
    body: dict[str, Any]
    headers: httpx.Headers
    took: float


async def steady(
    fleet: Sequence[Gateway], keys: Sequence[Key], rate: float, seconds: float
) -> list[Answer]:
    """One request every 1/`rate` seconds for `seconds`, open loop (no request waits for
    another), each for the next of `keys`, round-robin over the replicas."""
    loop = asyncio.get_running_loop()
    limits = httpx.Limits(max_connections=500, max_keepalive_connections=100)

    async def one(http: httpx.AsyncClient, number: int, key: Key) -> Answer:
        replica = number % len(fleet)
        began = loop.time()
        reply = await http.get(fleet[replica].url + path(key))
        took = loop.time() - began
        body = reply.json() if reply.headers.get("content-type", "").endswith("json") else {}
        return Answer(
            replica,
            key,
            reply.status_code,
            reply.headers.get(STATUS, ""),
            body,
            reply.headers,
            took,
        )

    async with httpx.AsyncClient(timeout=30, limits=limits) as http:
        start = loop.time()
        sent: list[asyncio.Task[Answer]] = []
        for number, key in enumerate(keys):
            at = start + number / rate
            if at >= start + seconds:
                break
            await asyncio.sleep(max(0.0, at - loop.time()))
            sent.append(asyncio.create_task(one(http, number, key)))
        return list(await asyncio.gather(*sent))


# A server that answers but will not change.


def _fill_and_cap(server: RedisServer) -> None:
    # About 2 MB under another prefix, then a cap of 1 MB: used memory is past it.
    for number in range(20):
        server.call("SET", f"junk:{number}", b"x" * 100_000)
    server.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
    server.call("CONFIG", "SET", "maxmemory", "1mb")


def _uncap(server: RedisServer) -> None:
    server.call("CONFIG", "SET", "maxmemory", "0")


def _replicate_nothing(server: RedisServer) -> None:
    server.call("REPLICAOF", "127.0.0.1", str(free_port()))  # a master that is not there


def _be_a_primary(server: RedisServer) -> None:
    server.call("REPLICAOF", "NO", "ONE")


REFUSALS = {
    "out of memory": (_fill_and_cap, _uncap),
    "read-only": (_replicate_nothing, _be_a_primary),
}
REFUSING_SECONDS = 6.5
"""Traffic while the server refuses writes: longer than the writes' breaker stays open, so
that a write tries again (and is refused again) meanwhile."""
RATE = 20.0
"""Requests a second of that traffic, each for a key no replica asked before."""


def shared_lines(gateway: Gateway) -> list[tuple[float, str]]:
    """When (Unix time) and with which message the gateway logged a WARNING about the
    shared layer, but the one at start saying it is unencrypted, once its log is settled."""
    records = [orjson.loads(line) for line in gateway.settled_log_lines() if line.strip()]
    return [
        (datetime.fromisoformat(record["time"]).timestamp(), record["message"])
        for record in records
        if record["level"] == "WARNING"
        and record["logger"].startswith("app.shared")
        and not record["message"].startswith(UNENCRYPTED)
    ]


def refusing(begin: Callable[[RedisServer], None], server: RedisServer) -> float:
    """Make `server` refuse writes; when it began (Unix time)."""
    began = time.time()
    begin(server)
    with pytest.raises(ReplyError, match=r"^(OOM|READONLY) "):
        server.call("SET", f"{PREFIX}probe", "x")
    return began


def taking_writes(end: Callable[[RedisServer], None], server: RedisServer) -> float:
    """Make `server` take writes again; when it did (Unix time)."""
    end(server)
    assert server.call("SET", f"{PREFIX}probe", "x") == b"OK"
    return time.time()


def resumed(fleet: Sequence[Gateway], emulator: Emulator) -> None:
    """Return once every replica shares what it fetches again (its writes' breaker lets a
    write try again within its open time)."""
    began = time.monotonic()
    for gateway in fleet:
        while gateway.get_session(*new_key(emulator)).headers[STATUS] != FETCHED:
            assert time.monotonic() - began < BREAKER_OPEN_SECONDS + 3, "sharing did not resume"
            time.sleep(0.1)


def assert_one_line_each_way(gateway: Gateway, refused_from: float, refused_until: float) -> None:
    """The gateway said once that the server refuses writes, while it did, and once that it
    takes them again, after it did: nothing else about the shared layer."""
    lines = shared_lines(gateway)
    assert len(lines) <= 2, lines
    refuses = [at for at, message in lines if message.startswith(REFUSES)]
    takes = [at for at, message in lines if message.startswith(TAKES_AGAIN)]
    assert len(refuses) == 1, lines
    assert len(takes) == 1, lines
    # Log times are wall-clock milliseconds, cut: a millisecond of tolerance.
    assert refused_from - 0.001 <= refuses[0] <= refused_until, lines
    assert takes[0] >= refused_until - 0.001, lines


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_server_refusing_writes_serves_what_it_holds_fetches_alone_and_warns_once_each_way(
    refusal: str, emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    begin, end = REFUSALS[refusal]
    replica = settings(redis.url)
    with started(emulator, tmp_path, replica, replica) as fleet:
        first, second = fleet
        held = [new_key(emulator) for _ in range(3)]
        for key in held:
            assert first.get_session(*key).headers[STATUS] == FETCHED
        fresh = [new_key(emulator) for _ in range(int(REFUSING_SECONDS * RATE))]

        refused_from = refusing(begin, redis)
        # What the server holds is still read and served.
        for key in held:
            reply = second.get_session(*key)
            assert reply.status_code == 200
            assert reply.headers[STATUS].startswith(SHARED_HIT)
        answers = asyncio.run(steady(fleet, fresh, RATE, REFUSING_SECONDS))
        refused_until = taking_writes(end, redis)

        assert len(answers) == len(fresh)
        assert {(a.status, a.cache_status) for a in answers} == {(200, ALONE)}
        assert all(emulator.calls(*key) == 1 for key in fresh)  # each by one replica alone
        assert not [key for key in fresh if redis.call("EXISTS", name("s", key))]
        resumed(fleet, emulator)
        assert shared(second, first, emulator)
        for gateway in fleet:
            assert_one_line_each_way(gateway, refused_from, refused_until)
            assert gateway.metric(OPERATIONS, outcome="refused") >= 1
            assert not warnings(gateway, UNREACHABLE)
            assert gateway.client.get("/readyz").status_code == 200


@pytest.mark.parametrize("refusal", sorted(REFUSALS))
def test_a_fill_in_flight_when_writes_are_refused_answers_and_sharing_is_not_said_to_resume(
    refusal: str, emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    begin, end = REFUSALS[refusal]
    with started(emulator, tmp_path, settings(redis.url)) as fleet:
        (gateway,) = fleet
        slow = new_key(emulator)
        emulator.fault(*slow, delay=0.5, times=1)
        with ThreadPoolExecutor(1) as pool:
            filling = pool.submit(ask, gateway, slow)
            until(lambda: emulator.calls(*slow) == 1)  # it holds the lease and calls AWS
            refused_from = refusing(begin, redis)
            filled, _ = filling.result(timeout=10)
        # The fill is answered, not shared: its write was refused (and counted so).
        assert (filled.status_code, filled.headers[STATUS]) == (200, ALONE)
        assert gateway.metric(OPERATIONS, operation="set", outcome="refused") >= 1
        for key in [new_key(emulator) for _ in range(5)]:  # still refused: alone
            reply = gateway.get_session(*key)
            assert (reply.status_code, reply.headers[STATUS]) == (200, ALONE)
            time.sleep(0.2)
        refused_until = taking_writes(end, redis)

        resumed([gateway], emulator)
        assert_one_line_each_way(gateway, refused_from, refused_until)


# A replica cut off from the shared layer, and the fleet's quota.

LIMIT = 6
"""GATEWAY_UPSTREAM_RATE_LIMIT: AWS's calls a second."""
REPLICAS = 3
"""GATEWAY_FLEET_MAX_REPLICAS."""
SHARED_LIMIT = 4
"""floor(6 * (1 - 0.2)): the calls per 1.1 s window of the replicas reaching the shared layer."""
ALONE_EVERY = 1.5
"""A cut-off replica's slice of the reserve: (6 - 4) / 3 calls a second, so one call every
1.5 s."""
WINDOW = 1.0
"""AWS counts arrivals in one-second windows."""
QUOTA_DEADLINE = 2.0
HAMMER_SECONDS = 4.0
HAMMER_RATE = 30.0


def busiest_window(times: Sequence[float], window: float = WINDOW) -> int:
    """The most arrivals in any `window` seconds (a sliding window over sorted times)."""
    ordered = sorted(times)
    return max(
        (
            sum(1 for later in ordered[i:] if later < start + window)
            for i, start in enumerate(ordered)
        ),
        default=0,
    )


def test_a_replica_cut_off_from_the_shared_layer_keeps_the_fleet_within_its_rate_limit(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    quota = {
        "upstream_rate_limit": LIMIT,
        "fleet_max_replicas": REPLICAS,
        "upstream_timeout_seconds": QUOTA_DEADLINE,
    }
    reaching = settings(redis.url, **quota)
    cut_off = settings(f"redis://127.0.0.1:{free_port()}/0", **quota)  # nothing listens
    with started(emulator, tmp_path, reaching, reaching, cut_off) as fleet:
        for gateway in fleet:  # a first call opens the connection to AWS: slower
            assert (
                gateway.get_session(f"vc-warm-{uuid.uuid4().hex[:8]}", "ps-warm").status_code == 404
            )
        time.sleep(ALONE_EVERY + 0.1)  # those calls leave every window
        began = time.time()
        vc = f"vc-{uuid.uuid4().hex[:8]}"
        keys = [(vc, f"ps-{n}") for n in range(int(HAMMER_SECONDS * HAMMER_RATE))]

        answers = asyncio.run(steady(fleet, keys, HAMMER_RATE, HAMMER_SECONDS))

        calls = [t for t in emulator.call_times() if t >= began]
        statuses = sorted(answer.status for answer in answers)
        assert set(statuses) == {404, 429}, statuses  # unknown sessions, or no slot in time
        assert statuses.count(404) == len(calls)
        assert busiest_window(calls) <= LIMIT, sorted(calls)
        # Not vacuous: the shared window was used through more than one window.
        assert len(calls) >= 2 * SHARED_LIMIT
        for answer in answers:
            if answer.status == 429:
                assert answer.body["code"] == "THROTTLED"
                assert "upstreamCode" not in answer.body
                assert int(answer.headers["retry-after"]) >= 1
            assert answer.took <= QUOTA_DEADLINE + REDIS_TIMEOUT + SLACK
        # The cut-off replica kept to its slice: one call every 1.5 s, for the traffic's
        # time and the wait a request's deadline allows after it.
        alone = sum(1 for a in answers if a.replica == 2 and a.status == 404)
        assert 1 <= alone <= int((HAMMER_SECONDS + QUOTA_DEADLINE) / ALONE_EVERY) + 1
        assert fleet[2].metric("gateway_shared_cache_up") == 0


def test_a_retry_left_less_than_a_calls_time_before_its_deadline_is_not_made(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    deadline, delay = 1.0, 0.75
    replica = settings(
        redis.url,
        upstream_rate_limit=100,  # slots aplenty: only the time left refuses one
        upstream_timeout_seconds=deadline,
        retry_budget_ratio=10,
        breaker_failure_threshold=1000,
    )
    with started(emulator, tmp_path, replica) as (gateway,):
        assert gateway.get_session(*new_key(emulator)).status_code == 200  # AWS connection open
        key = new_key(emulator)
        # The first attempt fails late: about 0.2 s of the deadline is left, enough for the
        # backoff (at most 0.05 s before the first retry) but not for a call (0.25 s).
        emulator.fault(*key, error="ServiceUnavailableException", delay=delay, times=1)
        retries = gateway.metric("gateway_upstream_retries_total", outcome="made")
        limited = gateway.metric("gateway_upstream_rate_limited_total")

        reply, took = timed(gateway, key)

        # Without a slot there is no call: a second one would have answered 200.
        assert emulator.calls(*key) == 1
        assert (reply.status_code, reply.json()["code"]) == (429, "THROTTLED")
        assert "retry-after" in reply.headers
        assert took <= deadline + REDIS_TIMEOUT + SLACK
        # The retry was due (the backoff fit), and the quota refused its slot.
        assert gateway.metric("gateway_upstream_retries_total", outcome="made") == retries + 1
        assert gateway.metric("gateway_upstream_rate_limited_total") == limited + 1


# A lease holder that dies mid-call.


def _ask_doomed(gateway: Gateway, key: Key) -> None:
    """The holder's request: it never answers, its process being killed."""
    with pytest.raises(httpx.TransportError), httpx.Client(timeout=30) as http:
        http.get(gateway.url + path(key))


def _waiting(gateway: Gateway, leases: float) -> bool:
    """Whether `gateway` tried a lease since it had tried `leases` (it waits on the key)."""
    return gateway.metric(OPERATIONS, operation="lease", outcome="ok") > leases


def test_a_holder_killed_mid_call_is_taken_over_once_within_each_waiters_deadline(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    deadline = 5.0  # the default, as in the report of three calls and 8 s waits
    replica = settings(redis.url, upstream_timeout_seconds=deadline)
    key = new_key(emulator)
    with started(emulator, tmp_path, replica, replica, replica) as (holder, *waiters):
        emulator.fault(*key, delay=3, times=1)  # the holder's call: longer than its lease
        with ThreadPoolExecutor(3) as pool:
            holding = pool.submit(_ask_doomed, holder, key)
            until(lambda: emulator.calls(*key) == 1)  # it holds the lease and calls AWS
            called = time.monotonic()
            leases = [
                gateway.metric(OPERATIONS, operation="lease", outcome="ok") for gateway in waiters
            ]
            sent = time.monotonic()
            asked = [pool.submit(ask, gateway, key) for gateway in waiters]
            until(lambda: all(_waiting(g, n) for g, n in zip(waiters, leases, strict=True)))
            time.sleep(max(0.0, called + 1.0 - time.monotonic()))
            renewed = redis.call("PTTL", name("l", key))
            killed = time.monotonic()
            holder.process.kill()
            holder.process.wait()
            holding.result(timeout=10)
            replies = [future.result(timeout=10) for future in asked]

    assert [reply.status_code for reply, _ in replies] == [200, 200]
    assert replies[0][0].content == replies[1][0].content
    # AWS called twice in all: by the holder, and by the one waiter that took over.
    assert emulator.calls(*key) == 2
    assert sorted(reply.headers[STATUS] for reply, _ in replies) == sorted([FETCHED, COLLAPSED])
    for _, took in replies:
        assert took <= deadline + REDIS_TIMEOUT + SLACK
        # The takeover began within the dead holder's lease of its death.
        assert sent + took <= killed + LEASE_SECONDS + POLL_SECONDS + SLACK
    # Why: a second into its call, the holder's lease had been renewed, for a second at most.
    assert 0 < renewed <= LEASE_SECONDS * 1000


def test_a_live_holder_keeps_its_lease_through_a_call_longer_than_the_lease(
    emulator: Emulator, redis: RedisServer, tmp_path: Path
) -> None:
    deadline, delay = 3.0, 2.0
    replica = settings(redis.url, upstream_timeout_seconds=deadline)
    key = new_key(emulator)
    with started(emulator, tmp_path, replica, replica) as (holder, waiter):
        emulator.fault(*key, delay=delay, times=1)
        with ThreadPoolExecutor(2) as pool:
            holding = pool.submit(ask, holder, key)
            until(lambda: emulator.calls(*key) == 1)
            called = time.monotonic()
            waiting = pool.submit(ask, waiter, key)
            time.sleep(max(0.0, called + 1.5 * LEASE_SECONDS - time.monotonic()))
            renewed = redis.call("PTTL", name("l", key))
            held, _ = holding.result(timeout=10)
            waited, _ = waiting.result(timeout=10)

    assert (held.status_code, held.headers[STATUS]) == (200, FETCHED)
    assert (waited.status_code, waited.headers[STATUS]) == (200, COLLAPSED)
    assert emulator.calls(*key) == 1
    # Past the lease's first life, it was still held, and still short.
    assert 0 < renewed <= LEASE_SECONDS * 1000
