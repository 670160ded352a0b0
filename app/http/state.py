"""The long-lived objects built in the lifespan, reached by the doors through typed state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from starlette.types import Scope

from app.observability.context import RequestContext
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


def caller_of(context: RequestContext, scope: Scope) -> str:
    """Who the request's upstream calls are charged to (the per-caller rate): the caller its
    token names, as the edge authenticated it into its `context` (`token:<digest>`,
    `sub:<sub>`), or else the client's address (always, with authentication off: a header
    then names no one)."""
    if context.caller is not None:
        return context.caller
    client = scope.get("client")
    return f"addr:{client[0]}" if client else UNKNOWN


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
