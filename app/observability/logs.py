"""JSON logs, one object per line on stdout, with the request id and no phone numbers."""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import trace

from app.observability.context import current_request_id
from app.observability.log_buffer import BatchingStreamHandler
from app.observability.tracing import hex_ids

# E.164 with its plus sign, or a bare run of 10-15 digits: what a phone number looks like.
_PHONE = re.compile(r"\+[1-9]\d{6,14}\b|\b[1-9]\d{9,14}\b")
REDACTED = "[redacted]"

# These libraries log raw request and response bodies and headers at DEBUG.
_QUIET = ("botocore", "aiobotocore", "boto3", "aioboto3", "urllib3", "aiohttp", "asyncio")
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"color_message"}


def redact(text: str) -> str:
    """Replace anything that looks like a phone number."""
    return _PHONE.sub(REDACTED, text)


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object, redacting phone numbers from every string."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": log_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
        }
        if (ids := _current_trace_ids()) is not None:  # written inside a span
            entry["trace_id"], entry["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            entry["traceback"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


_TRACED = ',"trace_id":"%s","span_id":"%s"'


def _current_trace_ids() -> tuple[str, str] | None:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return hex_ids(context)


_PLAIN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_JSON_SAFE = re.compile(r"[0-9A-Za-z.:%_-]*")


class AccessLog:
    """Writes the per-request access line as the JSON formatter would, without a LogRecord.

    It does not redact: every value written here must be safe by construction (route
    templates, numbers, sanitized request ids, the client address).
    """

    def __init__(self) -> None:
        self._logger = logging.getLogger("app.access")
        self._safe_client: str | None = None

    def _json_safe(self, client: str) -> bool:
        """Whether a client address needs no JSON escaping (the last one is remembered)."""
        if _JSON_SAFE.fullmatch(client) is None:
            return False
        self._safe_client = client
        return True

    def write(
        self,
        method: str,
        route: str,
        status: int,
        seconds: float,
        request_id: str,
        cache: str | None,
        client: str | None,
        trace_ids: tuple[str, str] | None = None,
    ) -> None:
        """One access line, if the `app.access` logger is enabled for INFO; a traced
        request's line carries its trace and span ids."""
        logger = self._logger
        if not logger.isEnabledFor(logging.INFO):
            return
        message = f"{method} {route} {status}"
        duration_ms = int(seconds * 1e6) / 1000
        handlers = logging.root.handlers
        if (
            handlers
            and isinstance(handlers[0], BatchingStreamHandler)
            and method in _PLAIN_METHODS
            and (client is None or client == self._safe_client or self._json_safe(client))
        ):
            # Every value is JSON-safe by construction (a route template, a method and a
            # client address checked above, a sanitized request id, a bounded cache set):
            # the line is written as orjson would write it, without building a dict.
            cache_json = "null" if cache is None else f'"{cache}"'
            client_json = "null" if client is None else f'"{client}"'
            traced = "" if trace_ids is None else _TRACED % trace_ids
            handlers[0].write_line(
                f'{{"time":"{log_time(time.time())}","level":"INFO","logger":"app.access",'
                f'"message":"{message}","request_id":"{request_id}","method":"{method}",'
                f'"route":"{route}","status":{status},"duration_ms":{duration_ms!r},'
                f'"cache":{cache_json},"client":{client_json}{traced}}}\n'
            )
            return
        fields = {  # the record's own message is `message`: logging refuses it as an extra
            "request_id": request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "cache": cache,
            "client": client,
        }
        logger.info(message, extra=fields)  # an unusual setup or request: the slow way


def log_time(now: float) -> str:
    """`now` (epoch seconds) as `2026-12-01T20:47:32.123+00:00` (milliseconds truncated).

    Made once per millisecond: under load a dozen lines share one, and `datetime.isoformat`
    cost more than the rest of the access line.
    """
    return _millisecond(int(now * 1000))


@functools.lru_cache(maxsize=4)
def _millisecond(millis: int) -> str:
    seconds, fraction = divmod(millis, 1000)
    return f"{_second(seconds)}.{fraction:03d}+00:00"


@functools.lru_cache(maxsize=2)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def flush() -> None:
    """Write out every batched line (the lifespan's last step; exit does it too)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure(level: str) -> None:
    """Send every log record to stdout as JSON lines, batched (see app.observability.log_buffer).

    Libraries that dump bodies and headers stay at WARNING.
    """
    handler = BatchingStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
