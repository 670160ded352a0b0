"""How the edge words an authentication refusal (RFC 6750's challenge)."""

from __future__ import annotations

from app.auth import Refusal
from app.domain.errors import BEARER_CHALLENGE, Unauthenticated

INVALID_TOKEN_CHALLENGE = BEARER_CHALLENGE + b', error="invalid_token"'
# One message whatever the reason: the reason goes to the log and metrics, not to the caller.
DETAIL = "A valid bearer token is required."


def unauthenticated(refusal: Refusal) -> Unauthenticated:
    """The 401 for `refusal`, saying `error="invalid_token"` when a token was refused."""
    challenge = INVALID_TOKEN_CHALLENGE if refusal.invalid_token else BEARER_CHALLENGE
    return Unauthenticated(DETAIL, challenge=challenge)
