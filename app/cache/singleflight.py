"""Single flight: concurrent callers for one key share one in-flight task."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """Runs at most one task per key; callers await it shielded, so a caller's cancellation
    never cancels the work the others wait for.

    A flight joined only in the background (nobody awaits it: a refresh) that fails has no
    one to raise to: its exception goes to `unawaited`, once.
    """

    def __init__(self, unawaited: Callable[[K, BaseException], None] | None = None) -> None:
        self._tasks: dict[K, asyncio.Task[V]] = {}
        self._awaited: set[K] = set()
        self._unawaited = unawaited

    def join(
        self,
        key: K,
        work: Callable[[], Coroutine[Any, Any, V]],
        *,
        background: bool = False,
    ) -> tuple[asyncio.Task[V], bool]:
        """The task in flight for `key` (from `work` if none), and whether this call started
        it. `background`: this caller will not await the task."""
        task = self._tasks.get(key)
        if not background:
            self._awaited.add(key)
        if task is not None:
            return task, False
        task = asyncio.create_task(work())
        self._tasks[key] = task
        task.add_done_callback(lambda done: self._finish(key, done))
        return task, True

    def _finish(self, key: K, task: asyncio.Task[V]) -> None:
        awaited = key in self._awaited
        if self._tasks.get(key) is task:
            del self._tasks[key]
            self._awaited.discard(key)
        if task.cancelled():
            return
        # Retrieved here, so that asyncio does not report it when the flight is collected.
        error = task.exception()
        if error is not None and not awaited and self._unawaited is not None:
            self._unawaited(key, error)
