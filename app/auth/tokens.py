"""Static bearer tokens, held as SHA-256 digests and compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def bearer_token(authorization: bytes | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None without one."""
    if not authorization:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def token_caller(digest: bytes) -> str:
    """The caller a token names by its SHA-256 `digest` (never the token itself)."""
    return f"token:{digest.hex()[:32]}"


def caller_of_token(token: str) -> str:
    """The caller a static token names."""
    return token_caller(_digest(token))


class TokenVerifier:
    """Holds digests of the accepted static tokens and compares in constant time."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests = tuple(_digest(token) for token in tokens)

    @property
    def enabled(self) -> bool:
        """Whether any static token is configured."""
        return bool(self._digests)

    def matches(self, token: str) -> bool:
        """Whether `token` is one of the accepted static tokens."""
        candidate = _digest(token)
        # Compare against every digest, no early exit, so timing says nothing.
        matched = False
        for digest in self._digests:
            matched |= hmac.compare_digest(candidate, digest)
        return matched
