"""The shared layer's read path: entries every replica reads, and one fetch per key for the
whole fleet.

`fetch` reads the shared entry; when none is fresh, the replica that takes the key's lease
(`SET NX PX`, bounded by the upstream deadline) calls the origin and writes what it got
(found or NotFound) for the others, who wait for its notice (or poll, should the notice be
lost) and read it. A waiter takes over when the lease goes without a fill (its holder
died). Whenever the shared layer does not answer, the replica goes on as if it were alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from app.domain.errors import GatewayError, NotFound, UpstreamFault, error_for_code
from app.domain.outcome import CacheOutcome, Forward
from app.domain.types import SessionKey
from app.shared.codec import Codec, SharedEntry
from app.shared.guard import Guard, SharedDown, TimeShare
from app.shared.notices import Notice, Notices

log = logging.getLogger(__name__)

Origin = Callable[[], Awaitable[SharedEntry]]
"""The upstream call, as an entry to share (a NotFound is an entry); faults raise."""

UNREADABLE_WARNING_SECONDS = 60.0
"""At most one WARNING this often about entries that could not be read back."""
POLL_SECONDS = 0.1
"""A waiter reads the entry this often should a notice not come (a lost message)."""

# Delete the lease only if this replica still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Fetched:
    """What a fetch got, and how the shared layer answered for it."""

    entry: SharedEntry
    outcome: CacheOutcome


class SharedLayer:
    """Entries under `{prefix}s:…`, leases under `{prefix}l:…`, notices on `{prefix}events`."""

    def __init__(
        self,
        redis: Redis,
        codec: Codec,
        guard: Guard,
        notices: Notices,
        *,
        prefix: str,
        replica: str,
        lease_seconds: float,
        wall: Callable[[], float],
    ) -> None:
        self._redis = redis
        self._codec = codec
        self._guard = guard
        self._notices = notices
        self._prefix = prefix
        self._replica = replica
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._wall = wall
        self._release = redis.register_script(_RELEASE)
        self._unreadable = 0
        self._next_warning = 0.0
        self._background: set[asyncio.Task[None]] = set()

    @property
    def channel(self) -> str:
        """The pub/sub channel of the notices."""
        return self._prefix + "events"

    def _name(self, kind: str, key: SessionKey) -> bytes:
        vc, ps = key
        return f"{self._prefix}{kind}:{len(vc)}:{vc}:{ps}".encode()

    async def read(self, key: SessionKey, share: TimeShare | None = None) -> SharedEntry | None:
        """The shared entry for `key`, fresh or stale; None when there is none, it cannot be
        read back, or the shared layer does not answer."""
        name = self._name("s", key)
        try:
            stored = await self._guard.run("get", lambda: self._redis.get(name), share)
        except SharedDown:
            return None
        if not isinstance(stored, bytes):
            return None
        entry = self._codec.decode(stored, name, key)
        if entry is None:
            self._unreadable += 1
            now = time.monotonic()
            if now >= self._next_warning:  # a key rotation could make every read one
                self._next_warning = now + UNREADABLE_WARNING_SECONDS
                log.warning(
                    "unreadable shared cache entries read as misses",
                    extra={"entries": self._unreadable},
                )
                self._unreadable = 0
        return entry

    async def fetch(self, key: SessionKey, origin: Origin, *, revalidate: bool) -> Fetched:
        """A fresh entry for `key`: the shared one, or one upstream call for the fleet.

        The lookup's own operations share one `GATEWAY_REDIS_TIMEOUT_SECONDS` in all, so the
        shared layer adds at most that to the upstream deadline; waiting for another
        replica's call is bounded by its lease. Should the call fail, an entry still within
        its stale window answers (its outcome carries the fault).
        """
        share = TimeShare(self._guard.timeout)
        forward: Forward = "request"
        seen: SharedEntry | None = None
        if not revalidate:
            seen = await self.read(key, share)
            if seen is not None and seen.fresh(self._wall()):
                return Fetched(seen, _shared_hit(seen, self._wall()))
            forward = "miss" if seen is None else "stale"
        try:
            return await self._fetch(key, origin, revalidate, forward, share)
        except UpstreamFault as fault:
            if seen is None or isinstance(seen.value, NotFound):
                raise
            if self._wall() >= seen.keep_until:
                raise
            return Fetched(seen, CacheOutcome("shared", forward=forward, fault=fault))

    async def _fetch(
        self, key: SessionKey, origin: Origin, revalidate: bool, forward: Forward, share: TimeShare
    ) -> Fetched:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._lease_ms / 1000
        while True:
            waiter = self._notices.waiter(key)
            try:
                token = await self._take_lease(key, share)
                if token is not None:
                    # Another replica may have filled the key and let go of the lease between
                    # this replica's read and its lease: read again before calling upstream.
                    filled = None if revalidate else await self._filled_meanwhile(key, token, share)
                    if filled is not None:
                        return filled
                    return await self._lead(key, origin, token, forward, revalidate, share)
                if loop.time() >= give_up:
                    # Still held, by a holder that took it after this waiter came.
                    return await self._alone(origin, forward)
                notice = await self._await_fill(waiter, give_up)
            except SharedDown:
                return await self._alone(origin, forward)
            finally:
                self._notices.forget(key, waiter)
            if notice is not None and notice.kind == "fail":
                raise error_for_code(notice.code, notice.detail, notice.upstream_code)
            # The wait was another replica's call: reading its answer gets time of its own.
            share = TimeShare(self._guard.timeout)
            entry = await self.read(key, share)
            fresh = entry is not None and entry.fresh(self._wall())
            if entry is not None and fresh and (not revalidate or notice is not None):
                return Fetched(entry, _collapsed(forward))
            # No fill came: the lease again. One held when this waiter came has lapsed by
            # `give_up` (its holder died, or it failed quietly): taken over, not bypassed.

    async def _filled_meanwhile(
        self, key: SessionKey, token: str, share: TimeShare
    ) -> Fetched | None:
        """The fresh entry another replica wrote just now, with the lease let go; else None."""
        entry = await self.read(key, share)
        if entry is None or not entry.fresh(self._wall()):
            return None
        self._in_background(self._release_lease(key, token))
        return Fetched(entry, _shared_hit(entry, self._wall()))

    async def stale(self, key: SessionKey) -> SharedEntry | None:
        """A found entry for `key` still within its stale window, for stale-if-error; None
        at once while the shared layer is failing (a request has waited enough)."""
        if not self._guard.up:
            return None
        entry = await self.read(key)
        if entry is None or isinstance(entry.value, GatewayError):
            return None
        return entry if self._wall() < entry.keep_until else None

    async def _take_lease(self, key: SessionKey, share: TimeShare) -> str | None:
        token = secrets.token_hex(8)
        name = self._name("l", key)
        taken = await self._guard.run(
            "lease", lambda: self._redis.set(name, token, nx=True, px=self._lease_ms), share
        )
        return token if taken else None

    async def _await_fill(self, waiter: asyncio.Future[Notice], give_up: float) -> Notice | None:
        """The notice about the key, or None after a poll interval without one."""
        left = give_up - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(asyncio.shield(waiter), max(0.0, min(POLL_SECONDS, left)))
        except TimeoutError:
            return None

    async def _lead(
        self,
        key: SessionKey,
        origin: Origin,
        token: str,
        forward: Forward,
        revalidate: bool,
        share: TimeShare,
    ) -> Fetched:
        """Holding the lease: call the origin, share what it said, tell the others (the
        notice and the lease's release go on in the background: the answer is ready)."""
        try:
            entry = await origin()
        except GatewayError as error:
            failed = Notice(
                "fail", key, self._replica, error.code, error.detail, error.upstream_code
            )
            self._in_background(self._tell_and_release(failed, key, token))
            raise
        except BaseException:
            self._in_background(self._release_lease(key, token))
            raise
        stored = await self.write(key, entry, share)
        done = Notice("inv" if revalidate else "fill", key, self._replica)
        self._in_background(self._tell_and_release(done, key, token))
        return Fetched(entry, _fetched(forward, stored))

    async def _alone(self, origin: Origin, forward: Forward) -> Fetched:
        """The shared layer is not answering: call the origin as a lone replica would."""
        entry = await origin()
        return Fetched(entry, _fetched(forward, stored=False))

    async def write(
        self, key: SessionKey, entry: SharedEntry, share: TimeShare | None = None
    ) -> bool:
        """Store `entry` until it may no longer answer; whether the shared layer took it."""
        name = self._name("s", key)
        expires_ms = int(entry.keep_until * 1000)
        data = self._codec.encode(entry, name)
        try:
            await self._guard.run(
                "set", lambda: self._redis.set(name, data, pxat=expires_ms), share
            )
        except SharedDown:
            return False
        return True

    async def _tell_and_release(self, notice: Notice, key: SessionKey, token: str) -> None:
        await self._publish(notice)
        await self._release_lease(key, token)

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` without the request waiting for it (kept until it ends)."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Let the background work end (a notice or a release in flight)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=self._guard.timeout * 2)

    async def _publish(self, notice: Notice) -> None:
        self._notices.deliver(notice)  # this replica's own waiters
        # Should it not go out, the others poll, or take the lease over once it lapses.
        with contextlib.suppress(SharedDown):
            await self._guard.run(
                "publish", lambda: self._redis.publish(self.channel, notice.encode())
            )

    async def _release_lease(self, key: SessionKey, token: str) -> None:
        name = self._name("l", key)
        with contextlib.suppress(SharedDown):  # else it lapses by itself
            await self._guard.run("release", lambda: self._release(keys=[name], args=[token]))


def _shared_hit(entry: SharedEntry, now: float) -> CacheOutcome:
    return CacheOutcome("shared", hit=True, ttl=int(entry.fresh_until - now + 0.5))


def _collapsed(forward: Forward) -> CacheOutcome:
    return CacheOutcome("shared", forward=forward, collapsed=True)


def _fetched(forward: Forward, stored: bool) -> CacheOutcome:
    return CacheOutcome("shared", forward=forward, fetched=True, stored=stored)
