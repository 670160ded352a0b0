"""What replicas read from the shared layer is input, not memory: a notice anyone could
publish, or an entry anyone could write, makes a replica answer only what it would say itself.

Notices: a failure carries a code, never text; a code no replica may report only sends the
waiter back to the lease; with an encryption key, a notice that is not signed with it, or
that is signed but replayed or stamped long ago, is dropped and counted. Entries: freshness
and stale windows are clamped to the replica's own, and bodies are rendered again from the
members the gateway knows, or read as a miss.

Seen from outside only: replies, calls counted at the emulator, metrics, Redis contents.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import Any, NamedTuple

import httpx
import orjson
import pytest

from harness.redis import RedisServer
from tests.shared.test_failures import (
    FETCHED,
    LOCAL_HIT,
    OPERATIONS,
    PREFIX,
    SHARED_HIT,
    STATUS,
    Key,
    name,
    new_key,
    path,
    settings,
    started,
    write_keys,
)
from tests.support.servers import Emulator, Gateway

SEALED_PREFIX = "trusted:"
"""The key prefix of the replica with an encryption key (its own channel, too)."""
DEADLINE = 2.0
"""GATEWAY_UPSTREAM_TIMEOUT_SECONDS here: longer than a dead holder's lease."""
LEASE_MS = 800
"""How long a lease set by hand (its holder "dead") lives."""
TTL = 30
"""GATEWAY_CACHE_TTL_SECONDS (the default)."""
NEGATIVE_TTL = 5
"""GATEWAY_NEGATIVE_CACHE_TTL_SECONDS (the default)."""
REJECTED = "gateway_shared_notices_rejected_total"
MAC_LABEL = b"proxy-session-gateway notices v1"
"""What each encryption key is turned into a notice MAC key with (HMAC-SHA256)."""
ATTACKER_TEXT = "forged by whoever can publish"
PUBLISHED = "a notice published by hand reached no replica"
REPORTABLE = {
    "BAD_USER_INPUT": (400, "Bad request"),
    "FORBIDDEN": (403, "Forbidden"),
    "UPSTREAM_UNAUTHORIZED": (502, "Upstream refused the gateway's identity"),
    "UPSTREAM_ERROR": (502, "Upstream error"),
    "THROTTLED": (429, "Too many requests"),
    "UPSTREAM_FAILURE": (502, "Upstream failure"),
    "SERVICE_UNAVAILABLE": (503, "Service unavailable"),
    "UPSTREAM_TIMEOUT": (504, "Upstream timeout"),
    "UPSTREAM_UNAVAILABLE": (502, "Upstream unavailable"),
}
"""The codes a replica may report to the others (what AWS, or the way to it, answered), with
the status and title each is answered with."""


class Replicas(NamedTuple):
    """The module's replicas: three without an encryption key, one with a key."""

    first: Gateway
    second: Gateway
    brief: Gateway
    """Keeps an entry past its freshness for one second only (GATEWAY_STALE_IF_ERROR_SECONDS)."""
    sealed: Gateway
    key: bytes
    """The sealed replica's encryption key."""


@pytest.fixture(scope="module")
def trust_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The module's redis-server (each test uses keys of its own)."""
    server = RedisServer(log=tmp_path_factory.mktemp("trust-redis") / "redis.log").start()
    yield server
    server.cleanup()


@pytest.fixture(scope="module")
def replicas(
    emulator: Emulator, trust_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    """The module's replicas, listening for notices, on the module's redis-server."""
    folder = tmp_path_factory.mktemp("trust")
    key = os.urandom(32)
    # Not a test of time limits: a generous one for the shared layer, and no breaker or
    # retry budget carried from one test's faults to the next.
    base = settings(
        trust_redis.url,
        redis_timeout_seconds=0.5,
        upstream_timeout_seconds=DEADLINE,
        breaker_failure_threshold=1000,
        retry_budget_ratio=10,
    )
    sealed = {
        **base,
        "redis_key_prefix": SEALED_PREFIX,
        "cache_encryption_key_file": write_keys(folder / "notices.keys", key),
    }
    with started(
        emulator, folder, base, base, {**base, "stale_if_error_seconds": 1}, sealed
    ) as running:
        first, second, brief, sealer = running
        for gateway in running:  # each listens on its channel before a test publishes
            until(partial(_listening, gateway))
        yield Replicas(first, second, brief, sealer, key)


def _listening(gateway: Gateway) -> bool:
    return gateway.metric(OPERATIONS, operation="subscribe", outcome="ok") > 0


def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Return once `condition()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def ask(gateway: Gateway, key: Key) -> tuple[httpx.Response, float]:
    """GET `key` through `gateway` on a client of its own (for another thread), and how long
    it took."""
    with httpx.Client(timeout=30) as http:
        began = time.monotonic()
        reply = http.get(gateway.url + path(key))
        return reply, time.monotonic() - began


def waiting_on_a_dead_holder(
    pool: ThreadPoolExecutor,
    gateway: Gateway,
    redis: RedisServer,
    key: Key,
    prefix: str = PREFIX,
) -> Future[tuple[httpx.Response, float]]:
    """A request for `key` through `gateway`, once it waits on a lease held by nobody alive
    (set here for `LEASE_MS`): its waiter is listening for a notice about `key`."""
    redis.call("SET", name("l", key, prefix), "dead-holder", "PX", str(LEASE_MS))
    leases = gateway.metric(OPERATIONS, operation="lease", outcome="ok")
    asked = pool.submit(ask, gateway, key)
    # The waiter is registered before the lease is tried: the try answered means it waits.
    until(
        lambda: asked.done() or gateway.metric(OPERATIONS, operation="lease", outcome="ok") > leases
    )
    assert not asked.done(), asked.result()[0].text
    return asked


def plain(members: dict[str, Any]) -> bytes:
    """A notice as a replica without an encryption key sends one."""
    return b"\x00" + orjson.dumps(members)


def signed(key: bytes, channel: str, members: dict[str, Any]) -> bytes:
    """A notice signed with `key`, computed from the wire format, not by the gateway's code:
    the MAC key derived from `key`, its id, and a 128-bit tag over the channel and JSON."""
    payload = orjson.dumps(members)
    mac_key = hmac.digest(key, MAC_LABEL, "sha256")
    key_id = hashlib.sha256(key).digest()[:4]
    tag = hmac.digest(mac_key, channel.encode() + b"\n" + payload, "sha256")[:16]
    return b"\x01" + key_id + tag + payload


def members(kind: str, key: Key, code: str | None = None, **extra: Any) -> dict[str, Any]:
    """A notice's members, stamped now with a nonce of its own."""
    return {
        "t": kind,
        "k": list(key),
        "r": "not-a-replica",
        "c": code,
        "s": round(time.time(), 3),
        "n": uuid.uuid4().hex[:16],
        **extra,
    }


def publish(redis: RedisServer, prefix: str, data: bytes) -> None:
    assert redis.call("PUBLISH", f"{prefix}events", data) >= 1, PUBLISHED


def answer_after(
    gateway: Gateway,
    redis: RedisServer,
    key: Key,
    notice: bytes,
    prefix: str = PREFIX,
    *,
    dropped_as: str | None = None,
) -> tuple[httpx.Response, float]:
    """The answer to a request for `key` waiting on a dead holder's lease when `notice` is
    published (and, with `dropped_as`, counted as dropped for that reason), and its time."""
    dropped = 0.0 if dropped_as is None else rejected(gateway, dropped_as) + 1
    with ThreadPoolExecutor(1) as pool:
        asked = waiting_on_a_dead_holder(pool, gateway, redis, key, prefix)
        publish(redis, prefix, notice)
        if dropped_as is not None:
            until(partial(_counted, gateway, dropped_as, dropped))
        return asked.result(timeout=10)


def rejected(gateway: Gateway, reason: str) -> float:
    return gateway.metric(REJECTED, reason=reason)


def _counted(gateway: Gateway, reason: str, count: float) -> bool:
    return rejected(gateway, reason) == count


# Notices without an encryption key.


@pytest.mark.parametrize("code", sorted(REPORTABLE))
def test_a_fail_notice_with_a_reportable_code_answers_the_waiter_in_the_gateways_own_words(
    code: str, emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    status, title = REPORTABLE[code]
    # The text of the notice (an old format's "d") is no part of it: never shown.
    notice = plain(members("fail", key, code, d=ATTACKER_TEXT))
    reply, took = answer_after(replicas.first, trust_redis, key, notice)

    assert reply.status_code == status
    body = reply.json()
    assert body["code"] == code
    assert body["detail"] == (
        f"{title}: the AWS call made for this session by another replica failed."
    )
    assert "upstreamCode" not in body
    assert ATTACKER_TEXT not in reply.text
    # The notice answered it, not the lease lapsing: nobody called AWS.
    assert took < LEASE_MS / 1000
    assert emulator.calls(*key) == 0


FORGED_OLD_FORMAT = (
    '{{"t":"fail","k":["{vc}","{ps}"],"r":"x","c":"INTERNAL_SERVER_ERROR","d":"forged","u":null}}'
)
"""The notice of the bug report: the old wire format, a 500 and a text of the sender's."""
NOT_REPORTABLE: dict[str, Callable[[Key], bytes]] = {
    "the old format with a 500 and a text": lambda key: FORGED_OLD_FORMAT.format(
        vc=key[0], ps=key[1]
    ).encode(),
    "a 500": lambda key: plain(members("fail", key, "INTERNAL_SERVER_ERROR", d="forged")),
    "NOT_FOUND": lambda key: plain(members("fail", key, "NOT_FOUND", d="forged")),
    "CIRCUIT_OPEN": lambda key: plain(members("fail", key, "CIRCUIT_OPEN", d="forged")),
    "an unknown code": lambda key: plain(members("fail", key, "I_AM_A_TEAPOT", d="forged")),
    "no code": lambda key: plain(members("fail", key, None, d="forged")),
}


@pytest.mark.parametrize("notice", list(NOT_REPORTABLE))
def test_a_fail_notice_without_a_reportable_code_sends_the_waiter_back_to_the_lease_and_aws(
    notice: str, emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    gateway = replicas.first
    malformed = rejected(gateway, "malformed")
    reply, _ = answer_after(gateway, trust_redis, key, NOT_REPORTABLE[notice](key))

    # Once the dead holder's lease lapsed, the waiter took it and called AWS itself.
    assert (reply.status_code, reply.headers.get(STATUS)) == (200, FETCHED), reply.text
    assert reply.json()["ProxySession"]["ProxySessionId"] == key[1]
    assert "forged" not in reply.text
    assert emulator.calls(*key) == 1
    old_format = notice.startswith("the old format")
    until(lambda: rejected(gateway, "malformed") == malformed + old_format)


# Notices with an encryption key.


def _wrong_tag(key: bytes, channel: str, notice: dict[str, Any]) -> bytes:
    data = bytearray(signed(key, channel, notice))
    data[5] ^= 0x01  # the tag's first byte
    return bytes(data)


UNAUTHENTICATED: dict[str, Callable[[bytes, Key], bytes]] = {
    "plain": lambda _, key: plain(members("fail", key, "SERVICE_UNAVAILABLE")),
    "a wrong tag": lambda secret, key: _wrong_tag(
        secret, f"{SEALED_PREFIX}events", members("fail", key, "SERVICE_UNAVAILABLE")
    ),
    "signed with another key": lambda _, key: signed(
        os.urandom(32), f"{SEALED_PREFIX}events", members("fail", key, "SERVICE_UNAVAILABLE")
    ),
    "signed for another channel": lambda secret, key: signed(
        secret, f"{PREFIX}events", members("fail", key, "SERVICE_UNAVAILABLE")
    ),
    "signed, then altered": lambda secret, key: signed(
        secret, f"{SEALED_PREFIX}events", members("fail", key, "SERVICE_UNAVAILABLE")
    ).replace(b"SERVICE_UNAVAILABLE", b"UPSTREAM_FAILURE"),
}


@pytest.mark.parametrize("notice", list(UNAUTHENTICATED))
def test_with_a_key_a_fail_notice_not_signed_with_it_is_dropped_as_unauthenticated(
    notice: str, emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    gateway = replicas.sealed
    forged = UNAUTHENTICATED[notice](replicas.key, key)
    reply, _ = answer_after(
        gateway, trust_redis, key, forged, SEALED_PREFIX, dropped_as="unauthenticated"
    )

    # Not the 503 the notice asked for: the waiter took the lapsed lease and called AWS.
    assert (reply.status_code, reply.headers.get(STATUS)) == (200, FETCHED), reply.text
    assert emulator.calls(*key) == 1


def test_with_a_key_a_signed_fail_notice_answers_once_and_its_replay_is_dropped(
    emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    gateway = replicas.sealed
    notice = signed(
        replicas.key, f"{SEALED_PREFIX}events", members("fail", key, "SERVICE_UNAVAILABLE")
    )
    answered, took = answer_after(gateway, trust_redis, key, notice, SEALED_PREFIX)

    assert (answered.status_code, answered.json()["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert took < LEASE_MS / 1000
    assert emulator.calls(*key) == 0

    # The very same bytes again, to the next waiter on that key: no effect.
    reply, _ = answer_after(gateway, trust_redis, key, notice, SEALED_PREFIX, dropped_as="replayed")

    assert (reply.status_code, reply.headers.get(STATUS)) == (200, FETCHED), reply.text
    assert emulator.calls(*key) == 1


def test_with_a_key_a_signed_inv_notice_drops_the_local_copy_once_and_never_when_stale(
    emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    gateway = replicas.sealed
    channel = f"{SEALED_PREFIX}events"
    assert gateway.get_session(*key).headers[STATUS] == FETCHED
    assert gateway.get_session(*key).headers[STATUS].startswith(LOCAL_HIT)
    notice = signed(replicas.key, channel, members("inv", key))

    publish(trust_redis, SEALED_PREFIX, notice)
    # Its copy dropped, the replica reads the shared entry (and keeps it again).
    until(lambda: gateway.get_session(*key).headers[STATUS].startswith(SHARED_HIT), timeout=2)
    assert gateway.get_session(*key).headers[STATUS].startswith(LOCAL_HIT)

    replays = {
        "the same bytes": notice,
        "stamped a minute ago": signed(
            replicas.key, channel, members("inv", key, s=round(time.time() - 60, 3))
        ),
        "stamped a minute ahead": signed(
            replicas.key, channel, members("inv", key, s=round(time.time() + 60, 3))
        ),
    }
    for replay, data in replays.items():
        replayed = rejected(gateway, "replayed") + 1
        publish(trust_redis, SEALED_PREFIX, data)
        until(partial(_counted, gateway, "replayed", replayed))
        assert gateway.get_session(*key).headers[STATUS].startswith(LOCAL_HIT), replay
    assert emulator.calls(*key) == 1


# Entries.


def _entry(redis: RedisServer, key: Key) -> dict[str, Any]:
    """The plain entry stored for `key` (by a replica without an encryption key)."""
    stored = redis.call("GET", name("s", key))
    assert isinstance(stored, bytes)
    assert stored[:1] == b"\x00"
    entry: dict[str, Any] = orjson.loads(stored[1:])
    assert entry["i"] == name("s", key)
    return entry


def _rewrite(redis: RedisServer, key: Key, **changes: Any) -> None:
    """Change members of the entry stored for `key`, keeping its time to live in Redis."""
    entry = {**_entry(redis, key), **changes}
    assert redis.call("SET", name("s", key), b"\x00" + orjson.dumps(entry), "KEEPTTL") == b"OK"


def _ttl(status: str, cache: str) -> int:
    found = re.search(rf"(?:^|, ){re.escape(cache)}; hit; ttl=(-?\d+)", status)
    assert found is not None, status
    return int(found.group(1))


def test_a_found_entry_claiming_years_of_freshness_is_fresh_for_the_replicas_ttl_at_most(
    emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    assert replicas.first.get_session(*key).headers[STATUS] == FETCHED
    now = time.time()
    _rewrite(trust_redis, key, f=now + 1e7, k=now + 2e7)

    hit = replicas.second.get_session(*key)
    again = replicas.second.get_session(*key)

    assert hit.status_code == 200
    assert hit.headers[STATUS].startswith(SHARED_HIT)
    assert 0 < _ttl(hit.headers[STATUS], "proxy-gateway-shared") <= TTL
    max_age = re.fullmatch(r"private, max-age=(\d+)", hit.headers["cache-control"])
    assert max_age is not None, hit.headers["cache-control"]
    assert 0 < int(max_age.group(1)) <= TTL
    # This replica's own copy is no fresher.
    assert again.headers[STATUS].startswith(LOCAL_HIT)
    assert 0 < _ttl(again.headers[STATUS], "proxy-gateway") <= TTL
    assert emulator.calls(*key) == 1


def test_a_not_found_entry_claiming_years_of_freshness_is_fresh_for_the_negative_ttl_at_most(
    emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator, seeded=False)
    assert replicas.first.get_session(*key).status_code == 404
    now = time.time()
    _rewrite(trust_redis, key, f=now + 1e7, k=now + 2e7)

    reply = replicas.second.get_session(*key)

    assert (reply.status_code, reply.json()["code"]) == (404, "NOT_FOUND")
    assert 0 < _ttl(reply.headers[STATUS], "proxy-gateway-shared") <= NEGATIVE_TTL
    assert emulator.calls(*key) == 1


def test_an_entry_claiming_a_longer_stale_window_is_not_served_stale_past_the_replicas_own(
    emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    assert replicas.first.get_session(*key).headers[STATUS] == FETCHED
    now = time.time()
    # Stale for ten seconds, and claiming to answer stale for months.
    _rewrite(trust_redis, key, f=now - 10, k=now + 2e7)
    emulator.fault(*key, error="ServiceUnavailableException")

    # A replica that keeps an entry one second past its freshness does not serve it.
    refused = replicas.brief.get_session(*key)
    # One that keeps it five minutes does: the entry is there, and stale-if-error works.
    served = replicas.second.get_session(*key)

    assert (refused.status_code, refused.json()["code"]) == (503, "SERVICE_UNAVAILABLE")
    assert served.status_code == 200
    assert served.headers[STATUS].startswith("proxy-gateway-shared; fwd=stale; fwd-status=503")
    assert served.json()["ProxySession"]["ProxySessionId"] == key[1]


def _add_member(body: dict[str, Any]) -> None:
    body["ProxySession"]["Injected"] = "<script>alert(1)</script>"


def _add_participant_member(body: dict[str, Any]) -> None:
    body["ProxySession"]["Participants"][0]["Forwarded"] = "+19995550123"


def _add_sibling(body: dict[str, Any]) -> None:
    body["Note"] = "call +19995550123 instead"


def _other_ids(body: dict[str, Any]) -> None:
    body["ProxySession"]["ProxySessionId"] = f"ps-{uuid.uuid4().hex}"


def _other_connector(body: dict[str, Any]) -> None:
    body["ProxySession"]["VoiceConnectorId"] = f"vc-{uuid.uuid4().hex[:12]}"


RE_RENDERED: dict[str, Callable[[dict[str, Any]], None]] = {
    "a member added": _add_member,
    "a member added to a participant": _add_participant_member,
    "a member added beside the session": _add_sibling,
}
"""Tampered bodies the gateway renders again: what it serves is what it fetched."""
MISSES: dict[str, Callable[[dict[str, Any]], None]] = {
    "another session's id": _other_ids,
    "another voice connector's id": _other_connector,
}
"""Tampered bodies that are another key's: a miss."""


@pytest.mark.parametrize("tamper", [*RE_RENDERED, *MISSES, "text after the JSON"])
def test_a_tampered_body_is_served_only_as_the_gateway_renders_it_or_read_as_a_miss(
    tamper: str, emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    fetched = replicas.first.get_session(*key)
    assert fetched.headers[STATUS] == FETCHED
    body: dict[str, Any] = orjson.loads(_entry(trust_redis, key)["b"])
    if tamper == "text after the JSON":
        text = orjson.dumps(body).decode() + ' {"Injected": true}'
    else:
        {**RE_RENDERED, **MISSES}[tamper](body)
        text = orjson.dumps(body).decode()
    _rewrite(trust_redis, key, b=text)

    reply = replicas.second.get_session(*key)

    assert reply.status_code == 200
    assert reply.content == fetched.content
    assert reply.headers["etag"] == fetched.headers["etag"]
    for foreign in ("Injected", "Forwarded", "Note", "9995550123"):
        assert foreign not in reply.text
    if tamper in RE_RENDERED:
        assert reply.headers[STATUS].startswith(SHARED_HIT)
        assert emulator.calls(*key) == 1
    else:
        assert reply.headers[STATUS] == FETCHED
        assert emulator.calls(*key) == 2


ILL_TYPED: dict[str, tuple[str, Any]] = {
    "a name that is an object": ("Name", {"$where": "sleep(1000)"}),
    "a number of minutes that is text": ("ExpiryMinutes", "sixty"),
    "a list of capabilities that is one string": ("Capabilities", "Voice"),
}
"""Members of a type AWS never sends (and the gateway never renders)."""


@pytest.mark.parametrize("tamper", list(ILL_TYPED))
def test_a_shared_body_with_a_member_of_another_type_is_not_served_as_such(
    tamper: str, emulator: Emulator, trust_redis: RedisServer, replicas: Replicas
) -> None:
    key = new_key(emulator)
    fetched = replicas.first.get_session(*key)
    assert fetched.headers[STATUS] == FETCHED
    member, value = ILL_TYPED[tamper]
    body: dict[str, Any] = orjson.loads(_entry(trust_redis, key)["b"])
    body["ProxySession"][member] = value
    _rewrite(trust_redis, key, b=orjson.dumps(body).decode())

    reply = replicas.second.get_session(*key)

    # Rendered without it, or read as a miss and fetched again: never served as written.
    assert reply.status_code == 200
    served = reply.json()["ProxySession"]
    assert (
        served.get(member, fetched.json()["ProxySession"][member])
        == (fetched.json()["ProxySession"][member])
    ), served
