"""Per-request facts that logs and metrics need, carried in a context variable."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar
from dataclasses import dataclass, field

from app.domain.types import CacheResult

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,128}")
# What the log redaction treats as a phone number (see app.observability.logs).
_PHONE_LIKE = re.compile(r"\+[1-9]\d{6,14}|[1-9]\d{9,14}")


@dataclass(slots=True)
class RequestContext:
    """The request id and the cache results seen while serving one request."""

    request_id: str
    cache_results: list[CacheResult] = field(default_factory=list)


current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def request_id_from(header: bytes | None) -> str:
    """The caller's request id if it is sane (short, printable, no spaces), else a new one."""
    if header:
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            text = ""
        # A caller's id is logged: one that could carry a phone number is not kept.
        if _SANE_REQUEST_ID.fullmatch(text) and not _PHONE_LIKE.search(text):
            return text
    return _new_ids.next()


class _RandomIds:
    """32 hex digits of OS randomness per id, read from the OS 256 ids at a time."""

    __slots__ = ("_hex", "_offset")

    _BYTES = 4096

    def __init__(self) -> None:
        self._hex = ""
        self._offset = 0

    def next(self) -> str:
        """A new id."""
        offset = self._offset
        if offset >= len(self._hex):
            self._hex = os.urandom(self._BYTES).hex()
            offset = 0
        self._offset = offset + 32
        return self._hex[offset : offset + 32]

    def forget(self) -> None:
        """Drop the unused randomness (a forked child must not repeat its parent's ids)."""
        self._hex = ""
        self._offset = 0


_new_ids = _RandomIds()
os.register_at_fork(after_in_child=_new_ids.forget)


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    ctx = current.get()
    return None if ctx is None else ctx.request_id
