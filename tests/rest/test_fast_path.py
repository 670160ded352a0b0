"""The REST door's two paths are one: the FastAPI route, with the fast path taken out,
answers every request as the served gateway (whose fast path answers valid GETs) does.

Both build their answers with `app.rest.reply`; this holds them to the same wire
behaviour, through the real aioboto3 client and the emulator, for the headers a caller
may send oddly: repeated, weak, listed, in other cases.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import httpx
import pytest

from tests.conftest import SAMPLE_SESSION
from tests.support.differential import (
    Request,
    comparable,
    exchange,
    framework_only_app,
    served,
)
from tests.support.servers import Emulator, Gateway

PATH = "/v1/voice-connectors/{}/proxy-sessions/{}"


def _etag(answers: Sequence[httpx.Response]) -> str:
    return answers[0].headers["etag"]


def test_the_route_answers_as_the_fast_path_does(
    emulator: Emulator,
    gateway: Gateway,
    key: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, missing = key, (key[0], key[1] + "-missing")
    emulator.seed(*found, SAMPLE_SESSION)
    session, absent = PATH.format(*found), PATH.format(*missing)
    requests: list[Request] = [
        ("GET", session, (), None),  # miss: one upstream call
        ("GET", session, (), None),  # hit
        ("GET", session, [("If-None-Match", "*")], None),  # 304
        ("GET", session, lambda a: [("If-None-Match", _etag(a))], None),  # 304
        ("GET", session, lambda a: [("If-None-Match", "W/" + _etag(a))], None),  # weak: 304
        ("GET", session, lambda a: [("If-None-Match", f'"other", {_etag(a)}')], None),  # 304
        ("GET", session, lambda a: [("If-None-Match", '"other"')], None),  # 200
        # Repeated headers: the first value counts, as FastAPI's Header() reads it.
        ("GET", session, lambda a: [("If-None-Match", '"x"'), ("If-None-Match", _etag(a))], None),
        ("GET", session, lambda a: [("If-None-Match", _etag(a)), ("If-None-Match", '"x"')], None),
        ("GET", session, [("Cache-Control", "max-age=60"), ("Cache-Control", "no-cache")], None),
        ("GET", session, [("Cache-Control", "no-cache"), ("Cache-Control", "max-age=60")], None),
        ("GET", session, [("Cache-Control", "No-Cache")], None),  # revalidated
        ("GET", session, [("Pragma", "no-cache")], None),  # revalidated
        ("GET", session, [("If-None-Match", "")], None),  # 200
        ("GET", absent, (), None),  # 404 problem
        ("GET", absent, (), None),  # negative hit
        ("GET", PATH.format(" ", "x"), (), None),  # 400 problem, no upstream call
        ("GET", PATH.format("x" * 129, "x"), (), None),  # 400 problem, no upstream call
        ("GET", PATH.format("x", "%2E%2E"), (), None),  # dot segment: 400, no upstream call
    ]

    app = framework_only_app(emulator, monkeypatch, revalidate_min_interval_seconds=0)
    route = asyncio.run(exchange(app, requests))
    calls_after_route = emulator.calls(*found), emulator.calls(*missing)
    gateway_answers = served(gateway.client, requests)
    calls_after_both = emulator.calls(*found), emulator.calls(*missing)

    assert calls_after_route == (4, 1)
    assert calls_after_both == (8, 2)
    assert [comparable(r) for r in route] == [comparable(r) for r in gateway_answers]
    assert [r.status_code for r in route] == [
        *(200, 200, 304, 304, 304, 304, 200),
        *(200, 304, 200, 200, 200, 200, 200),
        *(404, 404, 400, 400, 400),
    ]
