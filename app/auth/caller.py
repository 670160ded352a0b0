"""Who the caller of an admitted request is, for the per-caller upstream rate.

The caller is the static token (as a short digest, never the token), the JWT's `sub`, or
else the client's address. The edge authenticated the request before any door sees it, so
a JWT's claims are read here without checking its signature again; with authentication
off, whatever a request carries in `Authorization` is ignored and its address counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import jwt
from jwt import PyJWTError

from app.auth.jwt_verifier import looks_like_jwt
from app.auth.tokens import TokenVerifier, bearer_token
from app.service.callers import UNKNOWN
from app.settings import Settings

REMEMBERED = 4096
"""Authorization headers remembered with their caller (emptied when full)."""


class Callers:
    """Names the caller of a request, from its Authorization header and client address."""

    def __init__(self, settings: Settings) -> None:
        self._static = TokenVerifier(settings.tokens)
        self._authenticated = self._static.enabled or settings.jwt_jwks_url is not None
        self._remembered: dict[bytes, str] = {}

    def of(self, authorization: bytes | None, client: Iterable[object] | None) -> str:
        """The caller: `token:<digest>`, `sub:<sub>`, `addr:<address>`, or `unknown`."""
        if self._authenticated and authorization:
            caller = self._remembered.get(authorization)
            if caller is None:
                caller = self._from_token(authorization)
                if caller is not None:
                    if len(self._remembered) >= REMEMBERED:
                        self._remembered.clear()
                    self._remembered[authorization] = caller
            if caller is not None:
                return caller
        if client:
            host = next(iter(client), None)
            if host is not None:
                return f"addr:{host}"
        return UNKNOWN

    def _from_token(self, authorization: bytes) -> str | None:
        token = bearer_token(authorization)
        if token is None:
            return None
        digest = f"token:{hashlib.sha256(token.encode()).hexdigest()[:32]}"
        if self._static.matches(token) or not looks_like_jwt(token):
            return digest
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except PyJWTError:
            return digest
        sub = claims.get("sub") if isinstance(claims, dict) else None
        return f"sub:{sub}" if isinstance(sub, str) and sub else digest
