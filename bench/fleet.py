"""Fleet mode's cases: replicas sharing one redis-server or a Redis Cluster, their upstream
calls counted at the emulator; the in-process hit with and without the shared layer; a hit in
the shared layer, on either topology; and stale-while-revalidate against a miss."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import aiohttp
import httpx
from redis import Redis

from bench import wrk
from bench.cases import pair
from bench.context import (
    HIT_PS,
    MISS_PREFIX,
    SESSION_PATH,
    STANDALONE,
    VC,
    Bench,
    SharedLayer,
    Topology,
)
from bench.report import listed
from bench.results import FleetCallsResult, KeyReads, PairResult, SwrResult
from harness.redis_topologies import RedisCluster
from harness.servers import Server

SHARED = "proxy-gateway-shared"
LOCAL_HIT = "proxy-gateway; hit"
PREFILL_CONCURRENCY = 32
# A shared entry that outlives every run of the case: no upstream call while measuring.
LONG_TTL_SECONDS = 3600
# How many shared-layer hits are counted, before measuring, for their Redis commands.
PROBES = 200
REFRESH_WAIT_SECONDS = 15.0
EXPIRY_MARGIN_SECONDS = 0.2
IN_TURN_CONCURRENCY = 8
FILL_ATTEMPTS = 3
_TTL = re.compile(r"; ttl=-?\d+")
_SHARED_OPERATIONS = re.compile(
    r'^gateway_shared_cache_operations_total\{[^}]*outcome="(\w+)"[^}]*\}\s+(\S+)$', re.MULTILINE
)
_STALE = re.compile(r"proxy-gateway; hit; ttl=-\d+")
_FRESH = re.compile(r"proxy-gateway; hit; ttl=\d+")


class Answer(NamedTuple):
    """One GET's status, Cache-Status and Cache-Control, and how long it took."""

    status: int
    cache_status: str
    cache_control: str
    ms: float


def outcome_kind(cache_status: str) -> str:
    """How the shared layer answered (`shared: hit`, `shared: fwd=miss; collapsed`, ...),
    or `local: ...` when it was not asked; ttls left out."""
    first = cache_status.split(",", 1)[0].strip()
    layer, _, rest = first.partition("; ")
    where = "shared" if layer == SHARED else "local"
    return f"{where}: {_TTL.sub('', rest) or '-'}"


def run_fleet_calls(bench: Bench, topology: Topology = STANDALONE) -> FleetCallsResult:
    """Upstream calls of replicas sharing a layer of `topology`: a stampede on one new key
    spread over them, then new keys each read once on every replica, in turn and all at once."""
    config = bench.config
    salt = secrets.token_hex(4)
    redis = bench.redis(topology)
    try:
        with (
            _replicas(
                bench,
                f"gateway-fleet{topology.suffix}",
                config.fleet_replicas,
                redis,
                {"GATEWAY_REDIS_TIMEOUT_SECONDS": f"{config.fleet_redis_timeout:g}"},
            ) as replicas,
            _admin(bench) as admin,
        ):
            for n, replica in enumerate(replicas):  # lazy start-up work out of the way
                warm = replica.url + MISS_PREFIX + f"warm-{n}-{salt}"
                httpx.get(warm, headers=bench.auth).raise_for_status()
            key = f"fleet-stampede-{salt}"
            spec = {"delay": config.stampede_delay, "times": 1}
            admin.put(f"/faults/{VC}/{key}", json=spec).raise_for_status()
            urls = [
                replicas[n % len(replicas)].url + MISS_PREFIX + key
                for n in range(config.stampede_requests)
            ]
            started = time.perf_counter()
            stampede = asyncio.run(_get_all(urls, len(urls), bench.auth))
            elapsed = time.perf_counter() - started
            stampede_calls = _calls(admin, key)
            in_turn = _read_keys(bench, admin, replicas, f"turn-{salt}", at_once=False)
            at_once = _read_keys(bench, admin, replicas, f"once-{salt}", at_once=True)
            failures = sum((_shared_failures(replica) for replica in replicas), Counter[str]())
    finally:
        redis.cleanup()
    return FleetCallsResult(
        replicas=config.fleet_replicas,
        stampede_requests=config.stampede_requests,
        stampede_delay_s=config.stampede_delay,
        stampede_calls=stampede_calls,
        stampede_statuses=dict(Counter(a.status for a in stampede)),
        stampede_elapsed_s=elapsed,
        stampede_outcomes=_outcomes(stampede),
        keys=config.fleet_keys,
        in_turn=in_turn,
        at_once=at_once,
        shared_failures=dict(failures),
        redis_timeout_s=config.fleet_redis_timeout,
        topology=topology.described,
    )


def _read_keys(
    bench: Bench, admin: httpx.Client, replicas: list[Server], salt: str, *, at_once: bool
) -> KeyReads:
    """New keys each read once on every replica: all at once in a random order, or one
    replica after the other (each reading every key, a few at a time)."""
    keys = [f"fleet-{n}-{salt}" for n in range(bench.config.fleet_keys)]
    answers: list[Answer] = []
    if at_once:
        urls = [replica.url + MISS_PREFIX + key for key in keys for replica in replicas]
        random.shuffle(urls)
        answers = asyncio.run(_get_all(urls, len(urls), bench.auth))
    else:
        for replica in replicas:
            urls = _urls(replica, keys)
            answers += asyncio.run(_get_all(urls, IN_TURN_CONCURRENCY, bench.auth))
    return KeyReads(
        calls={key: _calls(admin, key) for key in keys},
        statuses=dict(Counter(a.status for a in answers)),
        outcomes=_outcomes(answers),
    )


def _outcomes(answers: Sequence[Answer]) -> dict[str, int]:
    return dict(sorted(Counter(outcome_kind(a.cache_status) for a in answers).items()))


def _shared_failures(gateway: Server) -> Counter[str]:
    """The shared-layer operations of a replica that did not succeed, by outcome."""
    found: Counter[str] = Counter()
    for outcome, count in _SHARED_OPERATIONS.findall(httpx.get(f"{gateway.url}/metrics").text):
        if outcome != "ok":
            found[outcome] += int(float(count))
    return found


def run_fleet_hit(bench: Bench) -> PairResult:
    """The in-process hit of a replica in fleet mode against a gateway without it."""
    redis = bench.redis()
    try:
        with (
            _replicas(bench, "gateway-fleet-hit", 1, redis, load_core=False) as (fleet,),
            _gateways(bench, "gateway-solo-hit") as (solo,),
            _counter(redis) as commands,
        ):
            path = SESSION_PATH.format(vc=VC, ps=HIT_PS)
            for server in (fleet, solo):
                _expect_hit(bench, server.url + path, LOCAL_HIT)
            before = commands()
            result = pair(
                bench,
                "fleet_hit",
                "solo_hit",
                (fleet, fleet.url + path, None),
                (solo, solo.url + path, None),
            )
            used = commands() - before
    finally:
        redis.cleanup()
    served = sum(run.result.requests for run in result.runs if run.server == result.case)
    result.notes.append(
        f"{used} Redis commands while the fleet replica served {served:,} measured hits (and its"
        " warm-ups), where a hit that asked Redis would make one or more each; both gateways"
        " on the server core"
    )
    return result


def run_fleet_l2_hit(bench: Bench, topology: Topology = STANDALONE) -> PairResult:
    """A hit in a shared layer of `topology` (a miss in-process) against the in-process hit,
    on one replica keeping a single entry of its own, cycling over keys another replica
    filled."""
    config = bench.config
    salt = secrets.token_hex(4)
    settings = {"GATEWAY_CACHE_TTL_SECONDS": str(LONG_TTL_SECONDS)}
    keys = [f"l2-{n}-{salt}" for n in range(config.l2_keys)]
    paths = [MISS_PREFIX + key for key in keys]
    name = f"gateway-l2{topology.suffix}"
    redis = bench.redis(topology)
    try:
        with _replicas(bench, f"{name}-filler", 1, redis, settings, load_core=True) as (filler,):
            retried = _fill_shared(bench, filler, paths)
            fill_failures = _shared_failures(filler)
        one_entry = {**settings, "GATEWAY_CACHE_MAX_ENTRIES": "1"}
        with (
            _replicas(bench, name, 1, redis, one_entry, load_core=False) as (measured,),
            _admin(bench) as admin,
            _counter(redis) as commands,
        ):
            hit_url = measured.url + SESSION_PATH.format(vc=VC, ps=HIT_PS)
            _expect_hit(bench, hit_url, LOCAL_HIT)
            before = commands()
            probes = asyncio.run(_get_all(_paths(measured, paths[:PROBES]), 1, bench.auth))
            per_probe = (commands() - before) / PROBES
            script = bench.path("l2-cycle", ".lua")
            script.write_text(wrk.cycle_script(paths), encoding="utf-8")
            calls = _calls(admin)
            result = pair(
                bench,
                f"fleet_l2_hit{topology.suffix}",
                "l1_hit",
                (measured, measured.url, script),
                (measured, hit_url, None),
            )
            upstream = _calls(admin) - calls
    finally:
        redis.cleanup()
    result.notes += [
        f"the case cycles over {len(keys)} keys another replica stored in {topology.described};"
        " the replica keeps 1 entry of its own (GATEWAY_CACHE_MAX_ENTRIES=1), so each request"
        " misses in-process, reads Redis, and evicts the entry the request before kept; filling"
        f" them took {retried} second tries (the filler's shared-layer operations that failed:"
        f" {listed(fill_failures) or 'none'})",
        f"{per_probe:.2f} Redis commands a request over {PROBES} probes one at a time"
        f" ({listed(_outcomes(probes))}); {upstream} upstream calls while measuring"
        " (a shared-layer operation that fails sends its request upstream); both sides are the"
        " same process",
    ]
    return result


class SwrRound(NamedTuple):
    """One round of the stale-while-revalidate case: its answers, and the upstream refreshes
    each stale key got ({refreshes: keys})."""

    stale: list[Answer]
    misses: list[Answer]
    hits: list[Answer]
    refreshes: Counter[int]


def run_swr(bench: Bench) -> SwrResult:
    """Requests to expired entries (answered stale at once while one refresh runs) against
    misses, with every upstream answer delayed the same; fresh hits for comparison."""
    config = bench.config
    settings = {
        "GATEWAY_CACHE_TTL_SECONDS": f"{config.swr_ttl:g}",
        "GATEWAY_STALE_WHILE_REVALIDATE_SECONDS": f"{config.swr_window:g}",
    }
    rounds: list[SwrRound] = []
    redis = bench.redis()
    try:
        with (
            _replicas(bench, "gateway-swr", 1, redis, settings, load_core=False) as (gateway,),
            _admin(bench) as admin,
        ):
            warm = gateway.url + MISS_PREFIX + f"warm-{secrets.token_hex(4)}"
            httpx.get(warm, headers=bench.auth).raise_for_status()
            try:
                rounds = [_swr_round(bench, gateway, admin) for _ in range(config.rounds)]
            finally:
                admin.delete("/faults/*/*")
    finally:
        redis.cleanup()
    stale = [answer for round_ in rounds for answer in round_.stale]
    misses = [answer for round_ in rounds for answer in round_.misses]
    hits = [answer for round_ in rounds for answer in round_.hits]
    right = [a for a in stale if a.status == 200 and _STALE.fullmatch(a.cache_status)]
    example = f"{stale[0].cache_status} / {stale[0].cache_control}" if stale else ""
    return SwrResult(
        delay_s=config.swr_delay,
        ttl_s=config.swr_ttl,
        window_s=config.swr_window,
        concurrency=config.swr_concurrency,
        stale_ms=[a.ms for a in stale],
        miss_ms=[a.ms for a in misses],
        hit_ms=[a.ms for a in hits if _FRESH.fullmatch(a.cache_status)],
        stale_answers=sum(_max_age_0(a) for a in right),
        refreshes=dict(sum((round_.refreshes for round_ in rounds), Counter[int]())),
        miss_statuses=dict(Counter(a.status for a in misses)),
        example=example,
    )


def _swr_round(bench: Bench, gateway: Server, admin: httpx.Client) -> SwrRound:
    """Fill keys, delay upstream, read new keys (misses) and a fresh key again and again
    (hits) while the filled ones expire, then read those (stale)."""
    config = bench.config
    salt = secrets.token_hex(4)
    stale_keys = [f"swr-{n}-{salt}" for n in range(config.swr_keys)]
    miss_keys = [f"swr-miss-{n}-{salt}" for n in range(config.swr_keys)]
    fills = asyncio.run(_get_all(_urls(gateway, stale_keys), PREFILL_CONCURRENCY, bench.auth))
    if {a.status for a in fills} != {200}:
        raise RuntimeError(f"filling the cache failed: {Counter(a.status for a in fills)}")
    expired = time.monotonic() + config.swr_ttl + EXPIRY_MARGIN_SECONDS
    admin.put("/faults/*/*", json={"delay": config.swr_delay}).raise_for_status()
    # Misses and hits first: the stale answers' background refreshes must not slow them.
    concurrency = config.swr_concurrency
    misses = asyncio.run(_get_all(_urls(gateway, miss_keys), concurrency, bench.auth))
    hit_url = _urls(gateway, [f"swr-hit-{salt}"])
    asyncio.run(_get_all(hit_url, 1, bench.auth))  # its miss
    hits = asyncio.run(_get_all(hit_url * config.swr_keys, concurrency, bench.auth))
    time.sleep(max(0.0, expired - time.monotonic()))
    stale = asyncio.run(_get_all(_urls(gateway, stale_keys), concurrency, bench.auth))
    deadline = time.monotonic() + REFRESH_WAIT_SECONDS
    while True:  # every refresh answered (or the wait given up)
        calls = {key: _calls(admin, key) for key in stale_keys}
        if min(calls.values()) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    time.sleep(config.swr_delay)  # a second refresh of a key, if any, would show by now
    calls = {key: _calls(admin, key) for key in stale_keys}
    admin.delete("/faults/*/*").raise_for_status()
    return SwrRound(stale, misses, hits, Counter(count - 1 for count in calls.values()))


def _urls(gateway: Server, keys: Sequence[str]) -> list[str]:
    return _paths(gateway, [MISS_PREFIX + key for key in keys])


def _paths(gateway: Server, paths: Sequence[str]) -> list[str]:
    return [gateway.url + path for path in paths]


def _fill_shared(bench: Bench, filler: Server, paths: Sequence[str]) -> int:
    """Have `filler` store every path's session in the shared layer: those it could not store
    (Redis did not answer in time) are asked again, as revalidations; how many were."""
    pending, headers, retried = list(paths), dict(bench.auth), 0
    for attempt in range(FILL_ATTEMPTS):
        retried += len(pending) if attempt else 0
        answers = asyncio.run(_get_all(_paths(filler, pending), PREFILL_CONCURRENCY, headers))
        pending = [
            path
            for path, answer in zip(pending, answers, strict=True)
            if answer.status != 200 or not _stored(answer)
        ]
        if not pending:
            return retried
        headers["Cache-Control"] = "no-cache"
    raise RuntimeError(f"{len(pending)} sessions could not be stored in the shared layer")


def _stored(answer: Answer) -> bool:
    first = answer.cache_status.split(",", 1)[0]
    return first.startswith(SHARED) and first.endswith("; stored")


def _max_age_0(answer: Answer) -> bool:
    return answer.cache_control.replace(" ", "") == "private,max-age=0"


def _expect_hit(bench: Bench, url: str, status: str) -> None:
    """GET `url` twice (the first may be a miss) and check how the second was served."""
    with httpx.Client(headers=bench.auth) as client:
        client.get(url).raise_for_status()
        reply = client.get(url)
    reply.raise_for_status()
    if not reply.headers.get("cache-status", "").startswith(status):
        raise RuntimeError(f"expected {status!r} from {url}: {reply.headers}")


def _calls(admin: httpx.Client, key: str | None = None) -> int:
    """GetProxySession calls the emulator received for `key` (all keys when None)."""
    path = "/calls/*/*" if key is None else f"/calls/{VC}/{key}"
    reply = admin.get(path)
    reply.raise_for_status()
    count: int = reply.json()["count"]
    return count


@contextlib.contextmanager
def _admin(bench: Bench) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{bench.emulator_url}/_emulator", timeout=10) as admin:
        yield admin


@contextlib.contextmanager
def _replicas(
    bench: Bench,
    name: str,
    count: int,
    redis: SharedLayer,
    settings: dict[str, str] | None = None,
    *,
    load_core: bool | None = None,
) -> Iterator[list[Server]]:
    """`count` gateways in fleet mode sharing the layer `redis`: on the server core
    (`load_core` False), the load core (True), or alternating between the two (None); all
    stopped on leaving."""
    shared = {"GATEWAY_REDIS_URL": redis.url, **(settings or {})}
    with _gateways(bench, name, count, shared, load_core) as replicas:
        yield replicas


@contextlib.contextmanager
def _gateways(
    bench: Bench,
    name: str,
    count: int = 1,
    settings: dict[str, str] | None = None,
    load_core: bool | None = False,
) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for n in range(count):
            on_load = n % 2 == 1 if load_core is None else load_core
            label = name if count == 1 else f"{name}-{n}"
            started.append(bench.gateway(label, settings, load_core=on_load))
        yield started
    finally:
        bench.stop(*reversed(started))


@contextlib.contextmanager
def _counter(redis: SharedLayer) -> Iterator[Callable[[], int]]:
    """A function giving the commands the layer's servers processed so far, from others
    than itself."""
    nodes = redis.nodes if isinstance(redis, RedisCluster) else [redis]
    with contextlib.ExitStack() as stack:
        readers = [_processed(stack.enter_context(Redis.from_url(node.url))) for node in nodes]
        yield lambda: sum(read() for read in readers)


def _processed(client: Redis) -> Callable[[], int]:
    """A function giving the commands `client`'s server processed so far, from others than
    `client`."""
    own = 0

    def processed() -> int:
        nonlocal own
        stats = client.info("stats")
        own += 1  # INFO counts once it has answered: the next reading holds this one
        return int(stats["total_commands_processed"]) - (own - 1)

    processed()  # connected (the handshake's commands out of the count)
    return processed


async def _get_all(urls: Sequence[str], concurrency: int, headers: dict[str, str]) -> list[Answer]:
    """GET every URL, `concurrency` at a time; each answer timed, in the order of `urls`."""
    pending = iter(enumerate(urls))
    answers: dict[int, Answer] = {}

    async def worker(session: aiohttp.ClientSession) -> None:
        for index, url in pending:
            started = time.perf_counter()
            async with session.get(url) as reply:
                await reply.read()
                ms = (time.perf_counter() - started) * 1000
                answers[index] = Answer(
                    reply.status,
                    reply.headers.get("Cache-Status", ""),
                    reply.headers.get("Cache-Control", ""),
                    ms,
                )

    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, headers=headers, timeout=timeout) as s:
        await asyncio.gather(*(worker(s) for _ in range(min(concurrency, len(urls)))))
    return [answers[index] for index in range(len(urls))]
