"""How a cache layer answered a lookup: facts the edge turns into `Cache-Status`.

A lookup passes through one or more cache layers, closest to the origin first (the shared
layer, when there is one, then this process's own). Each says whether it answered, how
much freshness was left, and, when it went on towards the origin, why and with what result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from app.domain.errors import GatewayError

CacheLayer = Literal["local", "shared"]
"""`local`: this process's cache; `shared`: the layer every replica shares."""

Forward = Literal["miss", "stale", "request"]
"""Why a layer went on to the origin: nothing held, only a stale entry, or the caller asked."""


@dataclass(frozen=True, slots=True, eq=False)
class CacheOutcome:
    """One layer's answer. `ttl` is whole seconds of freshness left (negative once stale).

    Compared and hashed by identity (cheap, and what the formatters' memos need): the
    service makes each outcome without a fault once and hands out the same object.
    """

    layer: CacheLayer
    hit: bool = False
    ttl: int | None = None
    forward: Forward | None = None
    fault: GatewayError | None = None
    """The upstream failure a stale entry answered for (`hit` is False, `forward` is set)."""
    fetched: bool = False
    """The origin answered this lookup's own call."""
    found: bool = True
    """What the origin answered, when `fetched`: the session, or that there is none."""
    stored: bool = False
    collapsed: bool = False
    """The lookup joined a call already in flight for its key."""


Outcomes = CacheOutcome | tuple[CacheOutcome, ...]
"""One layer's outcome, or every layer's, closest to the origin first."""
