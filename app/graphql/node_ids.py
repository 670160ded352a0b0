"""Global object ids (Relay's Global Object Identification): `ProxySession.id` and the
argument of `Query.node`.

An id is opaque to clients and stable: base64url, without padding, of
`ProxySession:<length of the voice connector id>:<voice connector id>:<proxy session id>`
(the length makes any character safe in either id). One that does not decode to valid ids
is `BAD_USER_INPUT`, and costs no upstream call.
"""

from __future__ import annotations

import base64
import binascii

from app.domain.errors import BadUserInput
from app.domain.model import validate_key
from app.domain.types import SessionKey

TYPE = "ProxySession"
MAX_ID_LENGTH = 2048
"""Longer ids are refused before decoding (two ids at their longest fit well within)."""


def node_id(key: SessionKey) -> str:
    """The global id of the session under `key`."""
    voice_connector_id, proxy_session_id = key
    raw = f"{TYPE}:{len(voice_connector_id)}:{voice_connector_id}:{proxy_session_id}"
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode("ascii")


def session_key(global_id: str) -> SessionKey:
    """The key a global id names; BadUserInput when it names none."""
    try:
        if len(global_id) > MAX_ID_LENGTH:
            raise ValueError("too long")
        padded = global_id + "=" * (-len(global_id) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
        kind, length, rest = raw.split(":", 2)
        size = int(length)
        if kind != TYPE or not length.isdigit() or rest[size : size + 1] != ":":
            raise ValueError("not a session id")
        return validate_key(rest[:size], rest[size + 1 :])
    except (ValueError, UnicodeError, binascii.Error):
        raise BadUserInput("The id is not a node id this gateway issued.") from None
