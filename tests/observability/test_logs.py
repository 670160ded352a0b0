"""The access line written by hand is the line the JSON formatter writes for it."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from app.observability.log_buffer import BatchingStreamHandler
from app.observability.logs import AccessLog, JsonFormatter

pytestmark = pytest.mark.fast

ROUTE = "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"


@pytest.fixture
def root_logging() -> Iterator[logging.Logger]:
    """The root logger, its handlers and level put back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.setLevel(logging.INFO)
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def _written(root: logging.Logger, handler: logging.StreamHandler[Any], *fields: Any) -> Any:
    stream = io.StringIO()
    handler.setStream(stream)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    AccessLog().write(*fields)
    handler.flush()
    [line] = stream.getvalue().splitlines()
    entry = orjson.loads(line)
    entry.pop("time")
    return list(entry.items())


@pytest.mark.parametrize(
    "fields",
    [
        ("GET", ROUTE, 200, 0.000123, "abcdef0123456789abcdef0123456789", "hit", "127.0.0.1"),
        ("POST", "/graphql", 503, 1.5, "caller-id:42", None, "::1"),
        ("HEAD", "unmatched", 404, 0.0, "x", "miss,negative", None),
        ("PROPFIND", "unmatched", 405, 0.01, "x", None, "10.0.0.1"),  # the formatter's way
        ("GET", "/healthz", 200, 0.002, "x", None, 'odd"client'),  # the formatter's way
    ],
)
def test_the_access_line_is_the_json_formatters_line(
    root_logging: logging.Logger, fields: tuple[Any, ...]
) -> None:
    by_hand = _written(root_logging, BatchingStreamHandler(io.StringIO()), *fields)
    formatted = _written(root_logging, logging.StreamHandler(), *fields)

    assert by_hand == formatted
    assert [name for name, _ in by_hand][:4] == ["level", "logger", "message", "request_id"]
