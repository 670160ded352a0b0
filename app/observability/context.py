"""Per-request facts that logs and metrics need, carried in a context variable."""

from __future__ import annotations

import os
import re
import weakref
from collections.abc import Callable
from contextvars import ContextVar

from app.domain.types import CacheResult, CallRecord

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
# What the log redaction treats as a phone number (see app.observability.logs).
_PHONE_LIKE = re.compile(r"\+[1-9]\d{6,14}|[1-9]\d{9,14}")


class TraceFacts:
    """What a traced request's span says besides HTTP: set by the doors and the error
    pipeline while it is served, read by the edge when the span ends."""

    __slots__ = ("error_code", "operation_name", "operation_type")

    def __init__(self) -> None:
        self.operation_name: str | None = None
        self.operation_type: str | None = None
        self.error_code: str | None = None


class RequestContext:
    """The request id, the caller its token names once authenticated (None: no token, or
    authentication is off), the cache results seen while serving it, and with tracing on
    the facts its span needs (`trace`, else None)."""

    __slots__ = ("cache_results", "caller", "joined", "request_id", "trace")

    def __init__(
        self,
        request_id: str | None,
        trace: TraceFacts | None = None,
        joined: list[CallRecord] | None = None,
    ) -> None:
        # A plain class: one is made per request, and a dataclass's generated
        # `__init__` with a default factory cost three times as much.
        self.request_id = request_id
        self.caller: str | None = None
        self.cache_results: list[CacheResult] = []
        self.trace = trace
        self.joined = joined
        """The upstream calls a traced request started or joined (None: not traced)."""


log_request_id: ContextVar[str | None] = ContextVar("log_request_id", default=None)
"""The id of the request being served, for the log lines written while it is (set by the
edge). The one request fact that travels sideways: a log line anywhere below the edge
carries it without every call passing it on. Everything else a request's answer, access
line or span needs goes in its `RequestContext`, which the edge puts in the ASGI scope."""


class RequestIds:
    """Request ids: the caller's when sane, else 32 hex digits of OS randomness, read from
    the OS 128 ids at a time.

    `uuid.uuid4()` makes one `getrandom` system call per id, a noticeable part of a cache
    hit; one read of 2 KiB, cut into ids at once, keeps the same randomness for less.
    """

    __slots__ = ("__weakref__", "_ids")

    _IDS_PER_READ = 128

    def __init__(self) -> None:
        self._ids: list[str] = []
        os.register_at_fork(after_in_child=_forgetting(self))

    def of(self, header: bytes | None) -> str:
        """The caller's id if it is sane (short, printable, no spaces), else a new one."""
        if header:
            try:
                text = header.decode("ascii")
            except UnicodeDecodeError:
                text = ""
            # A caller's id is logged: one that could carry a phone number is not kept.
            if _SANE_REQUEST_ID.fullmatch(text) and not _PHONE_LIKE.search(text):
                return text
        return self.next()

    def next(self) -> str:
        """A new id."""
        ids = self._ids
        if not ids:
            text = os.urandom(16 * self._IDS_PER_READ).hex()
            ids.extend(text[offset : offset + 32] for offset in range(0, len(text), 32))
        return ids.pop()

    def forget(self) -> None:
        """Drop the unused randomness."""
        self._ids.clear()


def _forgetting(ids: RequestIds) -> Callable[[], None]:
    """What a forked child runs so as not to repeat its parent's ids (without keeping
    `ids` alive)."""
    held = weakref.ref(ids)

    def forget() -> None:
        if (alive := held()) is not None:
            alive.forget()

    return forget


def current_request_id() -> str | None:
    """The id of the request being served, if any (for log lines)."""
    return log_request_id.get()
