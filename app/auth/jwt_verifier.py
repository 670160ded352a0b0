"""OIDC JWT verification: RS256 or ES256 only, the key chosen by `kid`, exp/iss/aud required."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Literal

import jwt
from cachetools import TLRUCache
from jwt.exceptions import (
    ExpiredSignatureError,
    ImmatureSignatureError,
    InvalidAlgorithmError,
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    PyJWTError,
)

from app.auth.jwks import JwksClient
from app.auth.tokens import token_caller

Reason = Literal[
    "missing",
    "invalid_token",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "wrong_issuer",
    "wrong_audience",
    "unknown_key",
    "algorithm",
]
"""Why a request was refused: the `reason` label of `gateway_auth_failures_total`."""

ALGORITHMS = ("RS256", "ES256")
MAX_TOKEN_BYTES = 8 * 1024
LEEWAY_SECONDS = 30
VERIFIED_CACHE_SIZE = 4096
VERIFIED_CACHE_MAX_SECONDS = 300.0
REQUIRED_CLAIMS = ["exp", "iss", "aud"]

# Three base64url segments; the signature may be empty so that `alg: none` is refused as such.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# Looked up along each exception's MRO, so InvalidSignatureError wins over its base DecodeError.
_REASONS: dict[type[PyJWTError], Reason] = {
    ExpiredSignatureError: "expired",
    ImmatureSignatureError: "not_yet_valid",
    InvalidSignatureError: "bad_signature",
    InvalidIssuerError: "wrong_issuer",
    InvalidAudienceError: "wrong_audience",
    InvalidAlgorithmError: "algorithm",
}


def looks_like_jwt(token: str) -> bool:
    """Whether `token` has a compact JWS's shape and fits under the size cap."""
    return len(token) <= MAX_TOKEN_BYTES and _JWT_SHAPE.fullmatch(token) is not None


class Rejected(Exception):
    """A JWT was refused: `reason` is a metrics label, `kid` is safe to log."""

    def __init__(self, reason: Reason, kid: str | None = None) -> None:
        super().__init__(reason)
        self.reason: Reason = reason
        self.kid = kid


def _reason(exc: PyJWTError) -> Reason:
    for cls in type(exc).__mro__:
        if cls in _REASONS:
            return _REASONS[cls]
    return "invalid_token"


def _keep_until(_digest: bytes, entry: tuple[float, int, str], _now: float) -> float:
    return entry[0]


class JwtVerifier:
    """Verifies bearer JWTs against the JWKS, the issuer and the audience."""

    def __init__(self, jwks: JwksClient, issuer: str, audience: str) -> None:
        self._jwks = jwks
        self._issuer = issuer
        self._audience = audience
        # Verified tokens by SHA-256, until their `exp` (capped) and only while the keys they
        # were checked against are current: a repeat caller skips the signature check.
        self._verified: TLRUCache[bytes, tuple[float, int, str]] = TLRUCache(
            VERIFIED_CACHE_SIZE, _keep_until, timer=time.time
        )

    async def verify(self, token: str) -> str:
        """The caller `token` names (`sub:<sub>`, or `token:<digest>` without a `sub`) if it
        is a valid JWT for this gateway, else raise Rejected."""
        if not looks_like_jwt(token):
            raise Rejected("invalid_token")
        digest = hashlib.sha256(token.encode()).digest()
        verified = self._verified.get(digest)
        if verified is not None and verified[1] == self._jwks.generation:
            return verified[2]
        try:
            header = jwt.get_unverified_header(token)
        except PyJWTError as exc:
            raise Rejected("invalid_token") from exc
        # Refused by the header before any key is touched: never `none`, never HMAC (whose
        # "secret" would be the public key), and `jku`/`x5u`/`jwk` headers are never followed.
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
            raise Rejected("algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Rejected("unknown_key")
        key = await self._jwks.key(kid)
        if key is None:
            raise Rejected("unknown_key", kid)
        if key.algorithm != algorithm:
            raise Rejected("algorithm", kid)
        generation = self._jwks.generation
        try:
            claims = jwt.decode(
                token,
                key.jwk,
                algorithms=[key.algorithm],
                issuer=self._issuer,
                audience=self._audience,
                leeway=LEEWAY_SECONDS,
                options={"require": REQUIRED_CLAIMS, "enforce_minimum_key_length": True},
            )
        except PyJWTError as exc:
            raise Rejected(_reason(exc), kid) from exc
        expires = claims["exp"]
        # PyJWT also takes a numeric string; RFC 7519 says a NumericDate is a JSON number.
        if not isinstance(expires, int | float) or isinstance(expires, bool):
            raise Rejected("invalid_token", kid)
        until = min(float(expires), time.time() + VERIFIED_CACHE_MAX_SECONDS)
        sub = claims.get("sub")
        caller = f"sub:{sub}" if isinstance(sub, str) and sub else token_caller(digest)
        self._verified[digest] = (until, generation, caller)
        return caller
