"""What replicas tell each other, on one pub/sub channel: a key was filled, its fill failed,
or it was revalidated (drop your own copy). Waiters for a key learn of its fill here
without polling; the listener reconnects by itself when the shared layer comes back.

A notice is input, not memory: anyone who can publish on the channel can send one. It
carries no text a caller sees (a failure only a code of the error table), and with an
encryption key it is authenticated with that key, stamped and used once: a forged, altered
or replayed notice is dropped and counted. What a notice can make a replica do is
`Notices.deliver`'s to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from app.domain.errors import REPORTABLE
from app.domain.types import SessionKey
from app.shared.background import Background
from app.shared.guard import Guard
from app.shared.keyring import SIGNATURE_BYTES, Keyring

log = logging.getLogger(__name__)

Kind = Literal["fill", "fail", "inv"]
Rejection = Literal["malformed", "unauthenticated", "replayed"]
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Pauses between attempts to listen again (the last repeats): back within seconds."""
REPLAY_WINDOW_SECONDS = 30.0
"""An authenticated notice stamped further than this from this replica's clock is dropped;
within it, each notice is accepted once (replicas' clocks agree far better: NTP)."""
REMEMBERED_NONCES = 100_000
"""Bound on the notices remembered against replay (older ones have left the window)."""
LISTEN_POLL_SECONDS = 1.0

_PLAIN = b"\x00"
_SIGNED = b"\x01"


@dataclass(frozen=True, slots=True)
class Notice:
    """One message: what happened to which key, from which replica; for a failure, its code
    when it is one replicas may report (`domain.errors.REPORTABLE`), else None."""

    kind: Kind
    key: SessionKey
    replica: str
    code: str | None = None


class NoticeObserver(Protocol):
    """Counts the notices dropped (the metrics registry implements it)."""

    def shared_notice_rejected(self, reason: Rejection) -> None:
        """Count one notice dropped, by why."""


class NoticeCodec:
    """Notices to bytes and back; with a keyring, authenticated, stamped and used once."""

    def __init__(
        self, keyring: Keyring | None, channel: str, wall: Callable[[], float] = time.time
    ) -> None:
        self._keyring = keyring
        self._channel = channel.encode()
        self._wall = wall
        self._seen: OrderedDict[bytes, float] = OrderedDict()

    def encode(self, notice: Notice) -> bytes:
        """The message's bytes."""
        payload = orjson.dumps(
            {
                "t": notice.kind,
                "k": list(notice.key),
                "r": notice.replica,
                "c": notice.code,
                "s": round(self._wall(), 3),
                "n": secrets.token_hex(8),
            }
        )
        if self._keyring is None:
            return _PLAIN + payload
        return _SIGNED + self._keyring.sign(self._signed(payload)) + payload

    def decode(self, data: bytes) -> Notice | Rejection:
        """The notice in `data`, or why it is dropped."""
        if self._keyring is None:
            if data[:1] != _PLAIN:
                return "malformed"
            return _parse(data[1:])
        signature, payload = data[1 : 1 + SIGNATURE_BYTES], data[1 + SIGNATURE_BYTES :]
        if data[:1] != _SIGNED or not self._keyring.verify(signature, self._signed(payload)):
            return "unauthenticated"
        members = _members(payload)
        if members is None:
            return "malformed"
        if not self._first_time(members.get("n"), members.get("s")):
            return "replayed"
        return _notice(members)

    def _signed(self, payload: bytes) -> bytes:
        # The channel is signed too: a notice of one deployment is none of another's.
        return self._channel + b"\n" + payload

    def _first_time(self, nonce: object, stamp: object) -> bool:
        """Whether a notice with `nonce` stamped at `stamp` is fresh and new (then remembered)."""
        if not isinstance(nonce, str) or not isinstance(stamp, int | float):
            return False
        now = self._wall()
        if abs(now - stamp) > REPLAY_WINDOW_SECONDS:
            return False
        seen = self._seen
        while seen and (len(seen) >= REMEMBERED_NONCES or next(iter(seen.values())) < now):
            seen.popitem(last=False)
        name = nonce.encode()
        if name in seen:
            return False
        seen[name] = now + 2 * REPLAY_WINDOW_SECONDS
        return True


def _members(payload: bytes) -> dict[str, Any] | None:
    try:
        members = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    return members if isinstance(members, dict) else None


def _parse(payload: bytes) -> Notice | Rejection:
    members = _members(payload)
    return "malformed" if members is None else _notice(members)


def _notice(members: dict[str, Any]) -> Notice | Rejection:
    kind, key, replica = members.get("t"), members.get("k"), members.get("r")
    if kind not in ("fill", "fail", "inv") or not isinstance(replica, str):
        return "malformed"
    if not isinstance(key, list) or len(key) != 2 or not all(isinstance(p, str) for p in key):
        return "malformed"
    code = members.get("c")
    # A code no replica may report (unknown, a 500, one replica's own state) says only
    # "that call failed": the waiter reads again or calls itself.
    reported = code if isinstance(code, str) and code in REPORTABLE else None
    return Notice(kind, (key[0], key[1]), replica, reported if kind == "fail" else None)


class Notices:
    """Listens on the channel; wakes the waiters of a key, and calls `on_invalidate` for a
    key another replica revalidated."""

    def __init__(
        self,
        redis: Any,
        channel: str,
        replica: str,
        guard: Guard,
        codec: NoticeCodec,
        observer: NoticeObserver,
        on_invalidate: Callable[[SessionKey], None],
        *,
        sharded: bool = False,
    ) -> None:
        """`redis` is the listening client; `sharded`: listen with SSUBSCRIBE (a Cluster)."""
        self._redis = redis
        self.channel = channel
        self._replica = replica
        self._guard = guard
        self.codec = codec
        self._observer = observer
        self._on_invalidate = on_invalidate
        self._sharded = sharded
        self._waiters: dict[SessionKey, list[asyncio.Future[Notice]]] = {}
        self._background = Background(self._listen, "shared-layer-notices")
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._background.start()

    async def close(self) -> None:
        """Stop listening."""
        await self._background.close()

    def waiter(self, key: SessionKey) -> asyncio.Future[Notice]:
        """A future the next notice about `key` resolves (drop it with `forget`)."""
        future: asyncio.Future[Notice] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(key, []).append(future)
        return future

    def forget(self, key: SessionKey, future: asyncio.Future[Notice]) -> None:
        """Stop waiting with `future`."""
        waiting = self._waiters.get(key)
        if waiting is not None and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self._waiters[key]

    def deliver(self, notice: Notice) -> None:
        """Act on one notice (also how this replica hears its own).

        The most a notice makes a replica do: drop its own copy of a key (`inv`: the next
        request reads the shared entry, which is checked on its own), wake the key's
        waiters to read the entry again (`fill`), or answer them with a reported code
        (`fail`); a failure without one only makes them read again or call themselves.
        """
        if notice.kind == "inv" and notice.replica != self._replica:
            self._on_invalidate(notice.key)
        for future in self._waiters.pop(notice.key, ()):
            if not future.done():
                future.set_result(notice)

    def receive(self, data: object) -> None:
        """Act on one message from the channel, or drop it (counted)."""
        decoded = self.codec.decode(data) if isinstance(data, bytes) else "malformed"
        if isinstance(decoded, Notice):
            if decoded.replica != self._replica:  # this replica's own were delivered at once
                self.deliver(decoded)
            return
        self._observer.shared_notice_rejected(decoded)
        log.debug("shared-layer notice dropped", extra={"reason": decoded})

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = None
            try:
                if self._sharded:  # a Cluster's pub/sub needs its slots known first
                    await asyncio.wait_for(self._redis.initialize(), self._guard.timeout * 10)
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                subscribing = pubsub.ssubscribe if self._sharded else pubsub.subscribe
                await asyncio.wait_for(subscribing(self.channel), self._guard.timeout * 10)
                self._guard.succeeded("subscribe")
                self.listening.set()
                attempt = 0
                await self._messages(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                self._guard.failed("subscribe", "error", exc)
            finally:
                if pubsub is not None:
                    await _close_quietly(pubsub)
            await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
            attempt += 1

    async def _messages(self, pubsub: Any) -> None:
        if not self._sharded:
            async for message in pubsub.listen():
                self.receive(message.get("data"))
            return
        while True:
            message = await pubsub.get_sharded_message(
                ignore_subscribe_messages=True, timeout=LISTEN_POLL_SECONDS
            )
            if message is not None:
                self.receive(message.get("data"))


async def _close_quietly(pubsub: Any) -> None:
    with contextlib.suppress(Exception):  # a dead connection may not close cleanly
        await asyncio.wait_for(pubsub.aclose(), 1.0)
