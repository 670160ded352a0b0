"""The JWKS client: signing keys by `kid`, refetched on an unknown `kid` within a rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from app.observability.metrics import Metrics

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 3.0
MAX_JWKS_BYTES = 1024 * 1024
REFETCH_LIMIT = 3
REFETCH_WINDOW_SECONDS = 60.0
MIN_RSA_BITS = 2048


class JwksError(Exception):
    """The JWKS could not be fetched or holds no usable signing key."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One public key from the JWKS and the only algorithm it may verify."""

    kid: str
    algorithm: str
    jwk: PyJWK


def parse_jwks(body: bytes) -> dict[str, SigningKey]:
    """The usable RS256/ES256 verification keys of a JWKS document, by `kid`."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JwksError("the JWKS is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the JWKS has no `keys` array")
    keys: dict[str, SigningKey] = {}
    for entry in entries:
        key = _signing_key(entry)
        # The first key with a `kid` wins: a later duplicate must not swap the key under it.
        if key is not None and key.kid not in keys:
            keys[key.kid] = key
    if not keys:
        raise JwksError("the JWKS holds no usable RS256 or ES256 signing key")
    return keys


def _algorithm(entry: dict[str, Any]) -> str | None:
    kty = entry.get("kty")
    if kty == "RSA":
        algorithm = "RS256"
    elif kty == "EC" and entry.get("crv") == "P-256":
        algorithm = "ES256"
    else:
        return None
    # The key's own `alg`, when given, must agree: an RSA key never verifies ES256, etc.
    return algorithm if entry.get("alg", algorithm) == algorithm else None


def _signing_key(entry: object) -> SigningKey | None:
    if not isinstance(entry, dict):
        return None
    kid = entry.get("kid")
    if not isinstance(kid, str) or not kid:
        return None
    ops = entry.get("key_ops")
    # Encryption keys, keys not for verifying, and private keys published by mistake are skipped.
    if entry.get("use", "sig") != "sig" or "d" in entry:
        return None
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    algorithm = _algorithm(entry)
    if algorithm is None:
        return None
    try:
        jwk = PyJWK(entry, algorithm)
    except (PyJWTError, TypeError, ValueError):
        return None
    if algorithm == "RS256" and jwk.key.key_size < MIN_RSA_BITS:
        return None
    return SigningKey(kid, algorithm, jwk)


def _detail(exc: Exception) -> str | None:
    # Only errors whose text is known to name no more than a host and a status are logged.
    if isinstance(exc, JwksError | aiohttp.ClientConnectionError):
        return str(exc)[:200]
    return None


class JwksClient:
    """Keys from one JWKS URL: fetched at start, refetched (shared, rate-limited) on a new kid."""

    def __init__(
        self, url: str, metrics: Metrics, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._url = url
        self._metrics = metrics
        self._clock = clock
        self._keys: dict[str, SigningKey] = {}
        self._session: aiohttp.ClientSession | None = None
        self._flight: asyncio.Task[None] | None = None
        self._refetches: deque[float] = deque()
        # Bumped by every fetch that replaced the keys: tokens verified before must be rechecked.
        self.generation = 0

    async def start(self) -> None:
        """Open the HTTP session and start the first fetch without waiting for it."""
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS),
            headers={"Accept": "application/jwk-set+json, application/json"},
        )
        # In the background: a JWKS that is down must not stop the gateway from starting.
        self._flight = asyncio.create_task(self._fetch())

    async def close(self) -> None:
        """Cancel a fetch in flight and close the HTTP session."""
        if self._flight is not None and not self._flight.done():
            self._flight.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flight
        if self._session is not None:
            await self._session.close()

    async def key(self, kid: str) -> SigningKey | None:
        """The key for `kid`; an unknown one refetches the JWKS first, if the rate limit allows."""
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._flight is None or self._flight.done():
            if not self._may_refetch():
                self._metrics.jwks_fetch("rate_limited")
                return None
            self._flight = asyncio.create_task(self._fetch())
        # Shielded: a caller that hangs up must not cancel the fetch others are waiting for.
        await asyncio.shield(self._flight)
        return self._keys.get(kid)

    def _may_refetch(self) -> bool:
        """Record a refetch if fewer than REFETCH_LIMIT happened in the sliding window."""
        now = self._clock()
        while self._refetches and now - self._refetches[0] >= REFETCH_WINDOW_SECONDS:
            self._refetches.popleft()
        if len(self._refetches) >= REFETCH_LIMIT:
            return False
        self._refetches.append(now)
        return True

    async def _fetch(self) -> None:
        try:
            keys = await self._download()
        except Exception as exc:
            # Whatever went wrong, the keys already known keep working and JWT callers get a
            # 401, never a 500; the reason goes to the log, never to a caller.
            self._metrics.jwks_fetch("error")
            log.warning(
                "JWKS fetch failed, keeping the keys already known",
                extra={"error_type": type(exc).__name__, "detail": _detail(exc)},
            )
            return
        self._keys = keys
        self.generation += 1
        self._metrics.jwks_fetch("ok")
        log.info("JWKS fetched", extra={"kids": sorted(keys)[:20], "keys": len(keys)})

    async def _download(self) -> dict[str, SigningKey]:
        if self._session is None:
            raise JwksError("the JWKS client is not started")
        async with self._session.get(self._url) as response:
            if response.status != 200:
                raise JwksError(f"the JWKS answered HTTP {response.status}")
            body = bytearray()
            async for chunk in response.content.iter_chunked(64 * 1024):
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise JwksError("the JWKS is larger than the limit")
        return parse_jwks(bytes(body))
