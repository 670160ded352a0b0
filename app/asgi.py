"""Small helpers for pure ASGI code."""

from __future__ import annotations

from starlette.types import Scope


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case bytes) in an HTTP scope, if any."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None
