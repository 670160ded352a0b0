"""Every shared-layer operation goes through one guard: a time limit, a breaker, metrics and
one WARNING per change of state. The shared layer is never needed to answer: a failure here
is a `SharedDown` the caller turns into "as if there were no shared layer"."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol, TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")

Operation = Literal[
    "get", "set", "lease", "release", "publish", "subscribe", "quota", "caller_rate", "heartbeat"
]
Outcome = Literal["ok", "error", "timeout", "skipped"]
"""`skipped`: not tried, the breaker being open."""

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


class Guard:
    """Runs operations within `timeout` seconds; after `FAILURES_TO_OPEN` failures in a row,
    skips them for `OPEN_SECONDS`, then lets them try again."""

    def __init__(
        self,
        timeout: float,
        observer: SharedObserver,
        clock: Callable[[], float] = time.monotonic,
        tracer: trace.Tracer | None = None,
    ) -> None:
        self.timeout = timeout
        self._tracer = tracer
        self._observer = observer
        self._clock = clock
        self._failures = 0
        self._open_until = 0.0
        self._up = True
        observer.shared_up(True)

    @property
    def up(self) -> bool:
        """Whether the last operation succeeded."""
        return self._up

    @property
    def open(self) -> bool:
        """Whether operations are being skipped."""
        return self._failures >= FAILURES_TO_OPEN and self._clock() < self._open_until

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
        if self.open:
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
                result = await call()
        except TimeoutError as exc:
            self.failed(operation, "timeout")
            raise SharedDown(operation, "timeout") from exc
        except (RedisError, OSError) as exc:
            self.failed(operation, "error", exc)
            raise SharedDown(operation, "error") from exc
        self.succeeded(operation)
        return result

    def succeeded(self, operation: Operation) -> None:
        """Record a success: the breaker closes, and the layer is up."""
        self._observer.shared_operation(operation, "ok")
        self._failures = 0
        self._set_up(True, operation, None)

    def failed(
        self, operation: Operation, outcome: Outcome, error: BaseException | None = None
    ) -> None:
        """Record a failure; the last of `FAILURES_TO_OPEN` in a row opens the breaker."""
        self._observer.shared_operation(operation, outcome)
        self._failures += 1
        if self._failures >= FAILURES_TO_OPEN:
            self._open_until = self._clock() + OPEN_SECONDS
        self._set_up(False, operation, error)

    def _set_up(self, up: bool, operation: Operation, error: BaseException | None) -> None:
        if up == self._up:
            return
        self._up = up
        self._observer.shared_up(up)
        if up:
            log.warning("shared cache layer reachable again: sharing resumed")
        else:
            # The error's class only: a message may carry the server's address or password.
            log.warning(
                "shared cache layer unreachable: answering from this process and AWS",
                extra={
                    "operation": operation,
                    "error": type(error).__name__ if error else "timeout",
                },
            )
