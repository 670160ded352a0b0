"""What replicas tell each other, on one pub/sub channel: a key was filled, its fill failed,
or it was revalidated (drop your own copy). Waiters for a key learn of its fill here
without polling; the listener reconnects by itself when the shared layer comes back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from redis.asyncio import Redis

from app.domain.types import SessionKey
from app.shared.guard import Guard

log = logging.getLogger(__name__)

Kind = Literal["fill", "fail", "inv"]
RECONNECT_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
"""Pauses between attempts to listen again (the last repeats): back within seconds."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One message: what happened to which key, from which replica (and a failure's code)."""

    kind: Kind
    key: SessionKey
    replica: str
    code: str | None = None
    detail: str | None = None
    upstream_code: str | None = None

    def encode(self) -> bytes:
        """The message's bytes."""
        return orjson.dumps(
            {
                "t": self.kind,
                "k": list(self.key),
                "r": self.replica,
                "c": self.code,
                "d": self.detail,
                "u": self.upstream_code,
            }
        )

    @classmethod
    def decode(cls, data: bytes) -> Notice | None:
        """The notice in `data`, or None when it is not one."""
        try:
            members: dict[str, Any] = orjson.loads(data)
            kind, (vc, ps), replica = members["t"], members["k"], members["r"]
            if kind not in ("fill", "fail", "inv") or not all(
                isinstance(part, str) for part in (vc, ps, replica)
            ):
                return None
            extra = [members.get(name) for name in ("c", "d", "u")]
            if not all(value is None or isinstance(value, str) for value in extra):
                return None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None
        return cls(kind, (vc, ps), replica, *extra)


class Notices:
    """Listens on the channel; wakes the waiters of a key, and calls `on_invalidate` for a
    key another replica revalidated."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        replica: str,
        guard: Guard,
        on_invalidate: Callable[[SessionKey], None],
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._replica = replica
        self._guard = guard
        self._on_invalidate = on_invalidate
        self._waiters: dict[SessionKey, list[asyncio.Future[Notice]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def start(self) -> None:
        """Start listening in the background."""
        self._task = asyncio.create_task(self._listen(), name="shared-layer-notices")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

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
        """Act on one notice (also how this replica hears its own)."""
        if notice.kind == "inv" and notice.replica != self._replica:
            self._on_invalidate(notice.key)
        for future in self._waiters.pop(notice.key, ()):
            if not future.done():
                future.set_result(notice)

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.subscribe(self._channel), self._guard.timeout * 10)
                self._guard.succeeded("subscribe")
                self.listening.set()
                attempt = 0
                async for message in pubsub.listen():
                    data = message.get("data")
                    notice = Notice.decode(data) if isinstance(data, bytes) else None
                    if notice is not None:
                        self.deliver(notice)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.listening.clear()
                self._guard.failed("subscribe", "error", exc)
            finally:
                await _close_quietly(pubsub)
            await asyncio.sleep(RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)])
            attempt += 1


async def _close_quietly(pubsub: Any) -> None:
    with contextlib.suppress(Exception):  # a dead connection may not close cleanly
        await asyncio.wait_for(pubsub.aclose(), 1.0)
