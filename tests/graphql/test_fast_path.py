"""The GraphQL door's two paths are one: strawberry's route, with the fast path taken out,
answers every request as the served gateway (whose fast path answers repeated queries
from the response cache) does.

Each request is sent twice in a row: the second is the one the fast path may answer.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from app.graphql.fast_path import KEYS_BYTES, GraphQLFastPath
from app.graphql.persisted import Manifest
from app.graphql.response_cache import ResponseCache
from app.http.state import AppState
from app.observability.metrics import Metrics
from app.settings import Settings
from tests.conftest import NAME_QUERY, SAMPLE_SESSION
from tests.support.differential import (
    Headers,
    Request,
    comparable,
    exchange,
    framework_only_app,
    served,
)
from tests.support.servers import Emulator, Gateway

VARIANTS: list[Headers] = [
    [("Content-Type", "application/json")],
    [("Content-Type", "application/json; charset=utf-8")],
    [("Content-Type", "Application/JSON")],
    [("Content-Type", "application/jsonx")],
    [("Content-Type", "application/json-patch+json")],
    [("Content-Type", "text/plain")],
    [("Content-Type", "application/json"), ("Content-Type", "text/plain")],
    [("Content-Type", "text/plain"), ("Content-Type", "application/json")],
    [("Content-Type", "application/json"), ("Cache-Control", "no-cache")],
    [
        ("Content-Type", "application/json"),
        ("Cache-Control", "max-age=60"),
        ("Cache-Control", "no-cache"),
    ],
    [("Content-Type", "application/json"), ("Pragma", "no-cache")],
]


def test_strawberry_answers_as_the_fast_path_does(
    emulator: Emulator,
    gateway: Gateway,
    key: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    emulator.seed(*key, SAMPLE_SESSION)
    body = orjson.dumps({"query": NAME_QUERY, "variables": {"vc": key[0], "ps": key[1]}})
    bodies = [
        body,
        body + b" ",  # the same document, other bytes
        orjson.dumps({"query": NAME_QUERY, "variables": {"vc": key[0], "ps": " "}}),
        b"{not json",
    ]
    requests: list[Request] = [
        ("POST", "/graphql", headers, content)
        for content in bodies
        for headers in VARIANTS
        for _ in range(2)
    ]

    app = framework_only_app(emulator, monkeypatch, revalidate_min_interval_seconds=0)
    strawberry = asyncio.run(exchange(app, requests))
    calls_after_strawberry = emulator.calls(*key)
    gateway_answers = served(gateway.client, requests)

    assert [comparable(r) for r in strawberry] == [comparable(r) for r in gateway_answers]
    assert emulator.calls(*key) == 2 * calls_after_strawberry
    statuses = {r.status_code for r in strawberry}
    assert statuses == {200, 400, 415}


def test_the_body_memo_stays_within_its_bound() -> None:
    fast_path = GraphQLFastPath(
        _no_app, AppState(Settings(), Metrics()), ResponseCache(), Manifest.empty()
    )
    body = b"x" * (KEYS_BYTES // 10)

    for n in range(25):
        fast_path._remember(body + b"%d" % n, ("query", b"", None))

    held = sum(len(body) for body in fast_path._keys)
    assert 0 < held <= KEYS_BYTES
    assert body + b"24" in fast_path._keys  # the newest is always kept


async def _no_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("not called")
