"""Two paths through one door, compared: the served gateway against the plain framework path.

Each door has a fast path below FastAPI (and strawberry) and the framework path that
documents it. `framework_only_app` builds the gateway in this process with one fast path
taken out; the same requests go to it and to the served gateway, and their answers are
compared without what differs per request (ids, seconds left).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson
import pytest

from app.main import Gateway, create_app
from app.settings import Settings
from tests.support.servers import Emulator, aws_env

Headers = Sequence[tuple[str, str]]
HeadersFrom = Headers | Callable[[Sequence[httpx.Response]], Headers]
"""Headers, or a function of the answers so far (to send back an ETag, say)."""
Request = tuple[str, str, HeadersFrom, bytes | None]
"""Method, path, headers (repeats allowed) and body."""

# Seconds left depend on when each side filled its cache; their values are tested elsewhere.
_SECONDS = re.compile(r"(ttl=|max-age=)\d+")
COMPARED_HEADERS = (
    "content-type",
    "content-length",
    "transfer-encoding",
    "cache-control",
    "cache-status",
    "etag",
    "retry-after",
    "allow",
    "www-authenticate",
)


def framework_only_app(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, **settings: Any
) -> Gateway:
    """The gateway built in this process, pointed at the emulator, without its fast paths."""
    for name, value in aws_env(emulator.url).items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    return create_app(Settings(breaker_failure_threshold=1000, **settings), fast_paths=False)


async def exchange(app: Gateway, requests: Sequence[Request]) -> list[httpx.Response]:
    """Send `requests` in order to `app` through its lifespan, over httpx's ASGI transport."""
    async with app.api.router.lifespan_context(app.api):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            answers: list[httpx.Response] = []
            for method, path, headers, body in requests:
                sent = _headers(headers, answers)
                answers.append(await client.request(method, path, headers=sent, content=body))
            return answers


def served(client: httpx.Client, requests: Sequence[Request]) -> list[httpx.Response]:
    """Send `requests` in order to the served gateway."""
    answers: list[httpx.Response] = []
    for method, path, headers, body in requests:
        sent = _headers(headers, answers)
        answers.append(client.request(method, path, headers=sent, content=body))
    return answers


def _headers(headers: HeadersFrom, answers: Sequence[httpx.Response]) -> list[tuple[str, str]]:
    return list(headers(answers) if callable(headers) else headers)


def comparable(reply: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, the contract's headers and the body, minus what differs per request."""
    headers = {
        name: _SECONDS.sub(r"\1N", reply.headers[name])
        for name in COMPARED_HEADERS
        if name in reply.headers
    }
    body: Any = orjson.loads(reply.content) if reply.content else None
    _drop_request_ids(body)
    return reply.status_code, headers, body


def _drop_request_ids(body: Any) -> None:
    if isinstance(body, dict):
        body.pop("requestId", None)
        for value in body.values():
            _drop_request_ids(value)
    elif isinstance(body, list):
        for item in body:
            _drop_request_ids(item)
