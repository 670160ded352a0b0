"""The shared layer's read path: entries every replica reads, and one fetch per key for the
whole fleet.

`fetch` reads the shared entry; when none is fresh, the replica that takes the key's lease
(`SET NX PX`) calls the origin and writes what it got (found or NotFound) for the others,
who wait for its notice (or poll, should the notice be lost) and read it. The holder keeps
its lease alive while its call runs (never past the call's deadline); a holder that dies
lets it lapse within `LEASE_SECONDS`, and the one waiter that takes it then calls in its
place while the others go on waiting. Every waiter answers by its own deadline. Whenever
the shared layer does not answer, the replica goes on as if it were alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from app.domain.answer import Answer, Shared
from app.domain.errors import (
    GatewayError,
    NotFound,
    UpstreamFault,
    UpstreamTimeout,
    reportable_code,
    reported_error,
)
from app.domain.model import SessionRecord
from app.domain.outcome import CacheOutcome, Forward
from app.domain.types import SessionKey
from app.shared.codec import Codec, SharedEntry
from app.shared.conditions import Tally
from app.shared.guard import Guard, SharedDown, TimeShare
from app.shared.notices import Notice, Notices

log = logging.getLogger(__name__)

Origin = Callable[[float], Awaitable[Answer]]
"""The upstream call, by a deadline (event-loop time), as an entry to share (a NotFound is
an entry); faults raise."""

POLL_SECONDS = 0.1
"""A waiter reads the entry this often should a notice not come (a lost message)."""
LEASE_SECONDS = 1.0
"""A lease lives this long unless its holder renews it: how soon a dead holder's key is
taken over (at most the upstream deadline)."""

# Delete the lease only if this replica still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
# Extend the lease by ARGV[2] ms only if this replica still holds it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


def entry_name(prefix: str, kind: str, key: SessionKey) -> bytes:
    """The Redis key of `key`'s entry (`s`) or lease (`l`): both in one Cluster slot, by a
    hash tag of the session key, then the ids, for a person reading the keys."""
    vc, ps = key
    tag = hashlib.blake2b(f"{vc}\0{ps}".encode(), digest_size=8).hexdigest()
    return f"{prefix}{kind}:{{{tag}}}:{len(vc)}:{vc}:{ps}".encode()


class SharedLayer:
    """Entries under `{prefix}s:…`, leases under `{prefix}l:…`, notices on `{prefix}events`."""

    def __init__(
        self,
        redis: Any,
        codec: Codec,
        guard: Guard,
        notices: Notices,
        *,
        prefix: str,
        replica: str,
        lease_seconds: float,
        wall: Callable[[], float],
        sharded: bool = False,
    ) -> None:
        """`redis` is a redis-py asyncio client (one server, Sentinel's primary, or a
        Cluster: then `sharded`, and notices go out with SPUBLISH)."""
        self._redis = redis
        self._codec = codec
        self._guard = guard
        self._notices = notices
        self._prefix = prefix
        self._replica = replica
        self._lease_ms = max(1, int(min(LEASE_SECONDS, lease_seconds) * 1000))
        self._wall = wall
        self._sharded = sharded
        self._release = redis.register_script(_RELEASE)
        self._renew = redis.register_script(_RENEW)
        self._unreadable = Tally("unreadable shared cache entries read as misses")
        self._background: set[asyncio.Task[None]] = set()

    @property
    def channel(self) -> str:
        """The pub/sub channel of the notices."""
        return self._notices.channel

    def _name(self, kind: str, key: SessionKey) -> bytes:
        return entry_name(self._prefix, kind, key)

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
            self._unreadable.add()  # a key rotation could make every read one
        return entry

    async def fetch(
        self, key: SessionKey, origin: Origin, *, revalidate: bool, deadline: float
    ) -> Shared:
        """A fresh entry for `key`: the shared one, or one upstream call for the fleet, by
        `deadline` (event-loop time; UpstreamTimeout when it passes while waiting).

        The lookup's own operations share one `GATEWAY_REDIS_TIMEOUT_SECONDS` in all, so the
        shared layer adds at most that to the deadline. Should the call fail, an entry still
        within its stale window answers (its outcome carries the fault).
        """
        entry, outcome = await self._fetch_entry(
            key, origin, revalidate=revalidate, deadline=deadline
        )
        now = self._wall()
        answer = Answer(entry.value, entry.fresh_until - now, entry.keep_until - entry.fresh_until)
        return Shared(answer, outcome)

    async def _fetch_entry(
        self, key: SessionKey, origin: Origin, *, revalidate: bool, deadline: float
    ) -> tuple[SharedEntry, CacheOutcome]:
        share = TimeShare(self._guard.timeout)
        forward: Forward = "request"
        seen: SharedEntry | None = None
        if not revalidate:
            seen = await self.read(key, share)
            if seen is not None and seen.fresh(self._wall()):
                return seen, _shared_hit(seen, self._wall())
            forward = "miss" if seen is None else "stale"
        try:
            return await self._fetch(key, origin, revalidate, forward, share, deadline)
        except UpstreamFault as fault:
            if seen is None or isinstance(seen.value, NotFound):
                raise
            if self._wall() >= seen.keep_until:
                raise
            return seen, CacheOutcome("shared", forward=forward, fault=fault)

    async def _fetch(
        self,
        key: SessionKey,
        origin: Origin,
        revalidate: bool,
        forward: Forward,
        share: TimeShare,
        deadline: float,
    ) -> tuple[SharedEntry, CacheOutcome]:
        loop = asyncio.get_running_loop()
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
                    return await self._lead(key, origin, token, forward, revalidate, deadline)
                if loop.time() >= deadline:
                    raise UpstreamTimeout("The upstream deadline passed waiting for the AWS call.")
                notice = await self._await_fill(waiter, deadline)
            except SharedDown:
                return await self._alone(origin, forward, deadline)
            finally:
                self._notices.forget(key, waiter)
            if notice is not None and notice.kind == "fail":
                reported = reported_error(notice.code)
                if reported is not None:
                    raise reported
                continue  # a failure it may not report: read again, or call
            # The wait was another replica's call: reading its answer gets time of its own.
            share = TimeShare(self._guard.timeout)
            entry = await self.read(key, share)
            fresh = entry is not None and entry.fresh(self._wall())
            if entry is not None and fresh and (not revalidate or notice is not None):
                return entry, _collapsed(forward)
            # No fill yet: the lease again. Its holder renews it while it calls; one that
            # died lets it lapse, and the waiter that takes it then calls in its place.

    async def _filled_meanwhile(
        self, key: SessionKey, token: str, share: TimeShare
    ) -> tuple[SharedEntry, CacheOutcome] | None:
        """The fresh entry another replica wrote just now, with the lease let go; else None."""
        entry = await self.read(key, share)
        if entry is None or not entry.fresh(self._wall()):
            return None
        self._in_background(self._release_lease(key, token))
        return entry, _shared_hit(entry, self._wall())

    async def stale(self, key: SessionKey) -> SessionRecord | None:
        """A found record for `key` still within its stale window, for stale-if-error; None
        at once while the shared layer is failing (a request has waited enough)."""
        if not self._guard.up:
            return None
        entry = await self.read(key)
        if entry is None or isinstance(entry.value, GatewayError):
            return None
        return entry.value if self._wall() < entry.keep_until else None

    async def _take_lease(self, key: SessionKey, share: TimeShare) -> str | None:
        token = secrets.token_hex(8)
        name = self._name("l", key)
        taken = await self._guard.run(
            "lease", lambda: self._redis.set(name, token, nx=True, px=self._lease_ms), share
        )
        return token if taken else None

    async def _await_fill(self, waiter: asyncio.Future[Notice], deadline: float) -> Notice | None:
        """The notice about the key, or None after a poll interval without one."""
        left = deadline - asyncio.get_running_loop().time()
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
        deadline: float,
    ) -> tuple[SharedEntry, CacheOutcome]:
        """Holding the lease: call the origin, share what it said, tell the others (the
        notice and the lease's release go on in the background: the answer is ready)."""
        renewing = asyncio.create_task(self._keep_lease(key, token, deadline))
        try:
            entry = self._stamped(await origin(deadline))
        except GatewayError as error:
            failed = Notice("fail", key, self._replica, reportable_code(error))
            self._in_background(self._tell_and_release(failed, key, token))
            raise
        except BaseException:
            self._in_background(self._release_lease(key, token))
            raise
        finally:
            renewing.cancel()
        # The answer's own time in the shared layer: the call may have used the lookup's.
        stored = await self.write(key, entry, TimeShare(self._guard.timeout))
        done = Notice("inv" if revalidate else "fill", key, self._replica)
        self._in_background(self._tell_and_release(done, key, token))
        return entry, _fetched(forward, stored)

    async def _keep_lease(self, key: SessionKey, token: str, deadline: float) -> None:
        """Renew the lease while the call runs, never past its deadline: waiters see a live
        holder, and a dead one's lease lapses within its life."""
        loop = asyncio.get_running_loop()
        name = self._name("l", key)
        every = self._lease_ms / 3000
        while True:
            await asyncio.sleep(every)
            life_ms = min(self._lease_ms, int((deadline - loop.time()) * 1000))
            if life_ms <= 0:
                return
            renew = functools.partial(self._renew, keys=[name], args=[token, life_ms])
            with contextlib.suppress(SharedDown):
                await self._guard.run("renew", renew)

    async def _alone(
        self, origin: Origin, forward: Forward, deadline: float
    ) -> tuple[SharedEntry, CacheOutcome]:
        """The shared layer is not answering: call the origin as a lone replica would."""
        entry = self._stamped(await origin(deadline))
        return entry, _fetched(forward, stored=False)

    def _stamped(self, answer: Answer) -> SharedEntry:
        """The origin's answer at wall-clock times, as every replica reads it."""
        fresh_until = self._wall() + answer.fresh_for
        return SharedEntry(answer.value, fresh_until, fresh_until + answer.keep_for)

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
        data = self._notices.codec.encode(notice)
        send = self._redis.spublish if self._sharded else self._redis.publish
        # Should it not go out, the others poll, or take the lease over once it lapses.
        with contextlib.suppress(SharedDown):
            await self._guard.run("publish", lambda: send(self.channel, data))

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
