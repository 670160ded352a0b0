"""Authentication: static bearer tokens and OIDC JWTs, checked before anything is cached or read.

`build_authenticator(settings, metrics)` gives the `Authenticator` (None when auth is off),
whose `start()`/`close()` belong in the lifespan; the edge (`app.http`) applies it to every
route but the probes and metrics.
"""

from __future__ import annotations

from app.auth.authenticator import Authenticator, Refusal, build_authenticator
from app.auth.tokens import TokenVerifier

__all__ = [
    "Authenticator",
    "Refusal",
    "TokenVerifier",
    "build_authenticator",
]
