"""Who may call: static bearer tokens first, then OIDC JWTs when the JWT settings are set."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from app.auth.jwks import JwksClient
from app.auth.jwt_verifier import JwtVerifier, Reason, Rejected
from app.auth.tokens import TokenVerifier, bearer_token, caller_of_token
from app.observability.metrics import Metrics
from app.settings import Settings

log = logging.getLogger(__name__)

# Authorization headers remembered as carrying an accepted static token.
ACCEPTED_HEADERS = 64
# A `kid` comes from the caller: it is logged only when it looks like one.
_LOGGABLE_KID = re.compile(r"[A-Za-z0-9._:+/=-]{1,64}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, and whether its 401 says `error="invalid_token"` (RFC 6750)."""

    reason: Reason
    invalid_token: bool


class Authenticator:
    """Decides from the Authorization header whether a request may pass."""

    def __init__(
        self,
        tokens: TokenVerifier,
        metrics: Metrics,
        *,
        jwks: JwksClient | None = None,
        jwt_verifier: JwtVerifier | None = None,
    ) -> None:
        self._tokens = tokens
        self._accepted: dict[bytes, str] = {}  # an accepted header, to the caller it names
        self._metrics = metrics
        self._jwks = jwks
        self._jwt = jwt_verifier

    async def start(self) -> None:
        """Open the JWKS client, if any (never fails because the JWKS is down)."""
        if self._jwks is not None:
            await self._jwks.start()

    async def close(self) -> None:
        """Close the JWKS client, if any."""
        if self._jwks is not None:
            await self._jwks.close()

    def remembered(self, authorization: bytes | None) -> str | None:
        """The caller of a header that carried an accepted static token before (no await)."""
        return None if authorization is None else self._accepted.get(authorization)

    async def authenticate(self, authorization: bytes | None) -> Refusal | str:
        """The caller the header's token names when it is accepted (`token:<digest>`, or a
        JWT's `sub:<sub>`), else the refusal (counted, logged)."""
        if (caller := self.remembered(authorization)) is not None:
            return caller
        token = bearer_token(authorization)
        if token is None:
            return self._refuse("missing")
        # Static tokens first: a digest compare, far cheaper than a signature check.
        if self._tokens.matches(token):
            assert authorization is not None  # a token came out of it
            caller = caller_of_token(token)
            self._remember(authorization, caller)
            return caller
        if self._jwt is None:
            return self._refuse("invalid_token")
        try:
            return await self._jwt.verify(token)
        except Rejected as rejected:
            return self._refuse(rejected.reason, rejected.kid)

    def _remember(self, authorization: bytes, caller: str) -> None:
        """Keep a header that carried an accepted static token, so its next request skips the
        digest. Only accepted headers are kept (at most `ACCEPTED_HEADERS`): a guess never
        enters the set. Looking a guess up hashes it with the process's secret hash key and
        compares bytes only on a full hash match, so the time says nothing about how close
        it came. JWTs are never kept: they expire."""
        if len(self._accepted) >= ACCEPTED_HEADERS:
            self._accepted.clear()
        self._accepted[authorization] = caller

    def _refuse(self, reason: Reason, kid: str | None = None) -> Refusal:
        self._metrics.auth_failure(reason)
        extra: dict[str, str] = {"reason": reason}
        if kid is not None:
            extra["kid"] = kid if _LOGGABLE_KID.fullmatch(kid) else "(unprintable)"
        log.info("authentication refused: %s", reason, extra=extra)
        return Refusal(reason, invalid_token=self._jwt is not None and reason != "missing")


def build_authenticator(settings: Settings, metrics: Metrics) -> Authenticator | None:
    """The authenticator the settings ask for, or None when auth is off."""
    tokens = TokenVerifier(settings.tokens)
    url, issuer, audience = settings.jwt_jwks_url, settings.jwt_issuer, settings.jwt_audience
    if url is None or issuer is None or audience is None:
        return Authenticator(tokens, metrics) if tokens.enabled else None
    jwks = JwksClient(url, metrics)
    return Authenticator(
        tokens, metrics, jwks=jwks, jwt_verifier=JwtVerifier(jwks, issuer, audience)
    )
