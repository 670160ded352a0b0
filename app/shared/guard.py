"""Every shared-layer operation goes through one guard: a time limit, two breakers (every
operation; writes), metrics, and a WARNING when a condition (unreachable, refusing writes)
begins or ends, at most once a minute while it flaps. The shared layer is never needed to
answer: a failure here is a `SharedDown` the caller turns into "as if there were no shared
layer"."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.exceptions import (
    NoPermissionError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)

from app.shared.conditions import Condition, Tally

log = logging.getLogger(__name__)

T = TypeVar("T")

Operation = Literal[
    "get",
    "set",
    "lease",
    "renew",
    "release",
    "publish",
    "subscribe",
    "quota",
    "caller_rate",
    "heartbeat",
]
Outcome = Literal["ok", "error", "timeout", "skipped", "refused"]
"""`skipped`: not tried, a breaker being open; `refused`: a write the server answered with a
refusal (full with `noeviction`, a read-only replica)."""

WRITES: frozenset[Operation] = frozenset(
    {"set", "lease", "renew", "release", "quota", "caller_rate", "heartbeat"}
)
"""Operations that change the server: a server refusing writes trips their breaker only."""
STORES: frozenset[Operation] = frozenset({"set", "lease", "quota", "caller_rate", "heartbeat"})
"""Writes that store something: only their success says the server takes writes again (a
full server still expires and deletes keys; every server takes PUBLISH)."""

REFUSALS = (OutOfMemoryError, ReadOnlyError, NoPermissionError)
"""Errors of a server that answers but will not change: full, a replica, an ACL."""

FAILURES_TO_OPEN = 3
"""Consecutive failed operations that open the breaker."""
OPEN_SECONDS = 5.0
"""How long an open breaker skips operations before letting one try again."""


class SharedObserver(Protocol):
    """What the shared layer reports (the metrics registry implements it)."""

    def shared_operation(self, operation: Operation, outcome: Outcome) -> None:
        """Count one shared-layer operation."""

    def shared_up(self, up: bool) -> None:
        """Whether the last shared-layer operation succeeded."""


class TimeShare:
    """A lookup's time in the shared layer, over all its operations: seconds left."""

    __slots__ = ("left",)

    def __init__(self, seconds: float) -> None:
        self.left = seconds


class SharedDown(Exception):
    """The shared layer did not answer (error, time limit, or the breaker open)."""

    def __init__(self, operation: Operation, outcome: Outcome | Literal["spent"]) -> None:
        super().__init__(operation)
        self.outcome = outcome
        """`error`, `timeout`, `skipped` (the breaker), or `spent` (the lookup's time)."""


class Breaker:
    """Opens after `FAILURES_TO_OPEN` failures in a row, for `OPEN_SECONDS`; a success
    closes it."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0

    @property
    def open(self) -> bool:
        """Whether operations are being skipped."""
        return self._failures >= FAILURES_TO_OPEN and self._clock() < self._open_until

    def failed(self) -> None:
        """Count a failure; the last of `FAILURES_TO_OPEN` in a row opens it."""
        self._failures += 1
        if self._failures >= FAILURES_TO_OPEN:
            self._open_until = self._clock() + OPEN_SECONDS

    def succeeded(self) -> None:
        """Close it."""
        self._failures = 0


class Guard:
    """Runs operations within `timeout` seconds behind two breakers: one for every operation
    (the server does not answer) and one for writes (it answers but refuses them)."""

    def __init__(
        self,
        timeout: float,
        observer: SharedObserver,
        clock: Callable[[], float] = time.monotonic,
        tracer: trace.Tracer | None = None,
        prepare: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`prepare` runs before every operation, within its time limit (it returns at once
        once the client needs nothing more)."""
        self.timeout = timeout
        self._tracer = tracer
        self._prepare = prepare
        self._observer = observer
        self._all = Breaker(clock)
        self._writes = Breaker(clock)
        self._unreachable = Condition(
            "shared cache layer unreachable: answering from this process and AWS",
            "shared cache layer reachable again: sharing resumed",
            clock,
        )
        self._refusing = Condition(
            "shared cache layer refuses writes: reading what it holds, fetching alone",
            "shared cache layer takes writes again: sharing resumed",
            clock,
        )
        self._answered_errors = Tally("shared cache layer answered errors", clock)
        self._up = True
        observer.shared_up(True)

    @property
    def up(self) -> bool:
        """Whether the last operation succeeded."""
        return self._up

    def close(self) -> None:
        """Drop log lines waiting for their quiet time."""
        self._unreachable.close()
        self._refusing.close()

    async def run(
        self, operation: Operation, call: Callable[[], Awaitable[T]], share: TimeShare | None = None
    ) -> T:
        """`call()`'s result, or SharedDown when it fails, overruns or is skipped.

        With `share`, the operation gets what is left of a lookup's time in the shared layer
        (at most `timeout`), none once it is spent, and uses it up as it goes. With traces
        on, an operation made for a traced request (or its upstream call) is a CLIENT span.
        """
        if self._tracer is None or not trace.get_current_span().get_span_context().is_valid:
            return await self._guarded(operation, call, share)
        with self._tracer.start_as_current_span(
            f"redis {operation}",
            kind=SpanKind.CLIENT,
            attributes={"db.system.name": "redis", "db.operation.name": operation},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await self._guarded(operation, call, share)
            except SharedDown as down:
                span.set_attribute("error.type", down.outcome)
                span.set_status(Status(StatusCode.ERROR))
                raise

    async def _guarded(
        self, operation: Operation, call: Callable[[], Awaitable[T]], share: TimeShare | None
    ) -> T:
        if self._all.open or (operation in WRITES and self._writes.open):
            self._observer.shared_operation(operation, "skipped")
            raise SharedDown(operation, "skipped")
        limit = self.timeout if share is None else min(self.timeout, share.left)
        if limit <= 0:  # this lookup's time is spent: no fault of the shared layer
            raise SharedDown(operation, "spent")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            return await self._run(operation, call, limit)
        finally:
            if share is not None:
                share.left -= loop.time() - started

    async def _run(self, operation: Operation, call: Callable[[], Awaitable[T]], limit: float) -> T:
        try:
            async with asyncio.timeout(limit):
                if self._prepare is not None:
                    await self._prepare()
                result = await call()
        except TimeoutError as exc:
            self.failed(operation, "timeout")
            raise SharedDown(operation, "timeout") from exc
        except REFUSALS as exc:
            # The server answered, refusing to change: a fault of its writes, not its reads.
            self.failed(operation, "refused" if operation in WRITES else "error", exc)
            raise SharedDown(operation, "error") from exc
        except ResponseError as exc:
            # The server answered, about what one key holds (of another type, say): no
            # fault of the server's, and no reason to stop asking it.
            self._observer.shared_operation(operation, "error")
            self._answered_errors.add({"operation": operation, "error": type(exc).__name__})
            raise SharedDown(operation, "error") from exc
        except Exception as exc:  # redis-py's and the socket's, Cluster ones included
            self.failed(operation, "error", exc)
            raise SharedDown(operation, "error") from exc
        self.succeeded(operation)
        return result

    def succeeded(self, operation: Operation) -> None:
        """Record a success: the server answers (and takes writes, for a write)."""
        self._observer.shared_operation(operation, "ok")
        self._all.succeeded()
        if operation in STORES:
            self._writes.succeeded()
            self._refusing.set(False)
        self._set_up(True)
        self._unreachable.set(False)

    def failed(
        self, operation: Operation, outcome: Outcome, error: BaseException | None = None
    ) -> None:
        """Record a failure: a refused write trips the writes' breaker, anything else the
        breaker of every operation."""
        self._observer.shared_operation(operation, outcome)
        self._set_up(False)
        # The error's class only: a message may carry the server's address or password.
        extra = {"operation": operation, "error": type(error).__name__ if error else "timeout"}
        if outcome == "refused":
            self._writes.failed()
            self._refusing.set(True, extra)
        else:
            self._all.failed()
            self._unreachable.set(True, extra)

    def _set_up(self, up: bool) -> None:
        if up != self._up:
            self._up = up
            self._observer.shared_up(up)
