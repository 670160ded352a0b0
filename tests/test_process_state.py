"""Process state lives on instances (or in bounded `functools.lru_cache` memos): building
the gateway changes no module's globals, so two gateways in one process are independent."""

from __future__ import annotations

import sys
import types

import pytest

from app.main import create_app
from app.observability import tracing
from app.settings import Settings

pytestmark = pytest.mark.fast


def _module_state() -> dict[tuple[str, str], tuple[int, str]]:
    """Every global of the app's modules that is data (not a function, class or module):
    its identity and its text."""
    state = {}
    for name, module in list(sys.modules.items()):
        if name != "app" and not name.startswith("app."):
            continue
        for attribute, value in vars(module).items():
            if attribute.startswith("__") or callable(value):
                continue
            if isinstance(value, types.ModuleType):
                continue
            state[(name, attribute)] = (id(value), repr(value))
    return state


def test_building_the_gateway_changes_no_module_state() -> None:
    create_app(Settings())  # every module imported, every memo defined
    before = _module_state()

    traced = tracing.from_environment(
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}
    )
    try:
        create_app(Settings(cache_ttl_seconds=5, graphql_tuning=False), traced)
        create_app(Settings(redis_url="redis://127.0.0.1:9"))
    finally:
        if traced is not None:
            traced.shutdown()

    assert _module_state() == before
