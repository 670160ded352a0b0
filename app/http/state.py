"""The long-lived objects built in the lifespan, reached by the doors through typed state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from app.auth.caller import Callers
from app.observability.metrics import Metrics
from app.service.callers import UNKNOWN
from app.service.sessions import ProxySessionService
from app.settings import Settings


@dataclass(slots=True)
class Lifecycle:
    """Whether the process can take traffic: client built and not shutting down."""

    started: bool = False
    stopping: bool = False

    @property
    def ready(self) -> bool:
        """True between a finished start and the beginning of shutdown."""
        return self.started and not self.stopping


@dataclass(slots=True)
class AppState:
    """Everything a request may need, built once per process."""

    settings: Settings
    metrics: Metrics
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    service: ProxySessionService | None = None
    callers: Callers | None = None
    """Who causes upstream calls: set only when the per-caller rate is on."""


def caller_of(
    state: AppState, headers: Iterable[tuple[bytes, bytes]], client: Iterable[object] | None
) -> str:
    """Who the request's upstream calls are charged to (`UNKNOWN` while the per-caller rate
    is off: nobody is counted)."""
    if state.callers is None:
        return UNKNOWN
    authorization = next((value for name, value in headers if name == b"authorization"), None)
    return state.callers.of(authorization, client)


def get_state(request: Request) -> AppState:
    """The app's state (set by `create_app`)."""
    state: AppState = request.app.state.gateway
    return state


def get_service(request: Request) -> ProxySessionService:
    """The shared service; only reachable once the lifespan built it."""
    service = get_state(request).service
    if service is None:
        raise RuntimeError("the service is not started")
    return service


# FastAPI runs a plain `def` dependency in a worker thread: these are async so a request
# never pays a thread hop to read the state.
async def _state_dependency(request: Request) -> AppState:
    return get_state(request)


async def _service_dependency(request: Request) -> ProxySessionService:
    return get_service(request)


StateDep = Annotated[AppState, Depends(_state_dependency)]
ServiceDep = Annotated[ProxySessionService, Depends(_service_dependency)]
