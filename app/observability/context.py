"""Per-request facts that logs and metrics need, carried in a context variable."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

from app.types import CacheResult

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
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    ctx = current.get()
    return None if ctx is None else ctx.request_id
