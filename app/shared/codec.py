"""Shared-layer values: a found session or a NotFound, with freshness in wall-clock time.

Replicas share no monotonic clock, so an entry carries the Unix times until which it is
fresh and until which it may still answer stale. What cannot be read back (garbage, another
key's value, a value no key opens, a format from another version) reads as None: a miss.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from app.domain.errors import NotFound
from app.domain.model import SessionRecord
from app.domain.types import SessionKey
from app.shared.keyring import Keyring

PLAIN = 0
"""First byte of a value stored unencrypted (sealed ones start with `keyring.SEALED`)."""


@dataclass(frozen=True, slots=True)
class SharedEntry:
    """A value for every replica: fresh until `fresh_until`, kept until `keep_until`."""

    value: SessionRecord | NotFound
    fresh_until: float
    keep_until: float

    def fresh(self, now: float) -> bool:
        """Whether it may answer without asking upstream at wall-clock time `now`."""
        return now < self.fresh_until


class Codec:
    """Turns entries into stored bytes and back, sealing them when a keyring is given."""

    def __init__(self, keyring: Keyring | None) -> None:
        self._keyring = keyring

    def encode(self, entry: SharedEntry, name: bytes) -> bytes:
        """The bytes to store under the Redis key `name`."""
        members: dict[str, object] = {"f": entry.fresh_until, "k": entry.keep_until}
        value = entry.value
        if isinstance(value, NotFound):
            members["n"] = value.detail
            members["u"] = value.upstream_code
        else:
            members["b"] = value.body.decode()
        if self._keyring is None:
            # A NotFound names no key: the name it is stored under binds it (a sealed value
            # is bound to it by the cipher).
            members["i"] = name.decode()
            return bytes((PLAIN,)) + orjson.dumps(members)
        return self._keyring.seal(orjson.dumps(members), name)

    def decode(self, stored: bytes, name: bytes, key: SessionKey) -> SharedEntry | None:
        """The entry stored under `name` for `key`, or None when it cannot be read back."""
        if self._keyring is None:
            plain = stored[1:] if stored[:1] == bytes((PLAIN,)) else None
        else:
            plain = self._keyring.open(stored, name)
        if plain is None:
            return None
        try:
            members = orjson.loads(plain)
            if self._keyring is None and members.get("i") != name.decode():
                return None  # stored under another key
            fresh_until, keep_until = float(members["f"]), float(members["k"])
            value: SessionRecord | NotFound
            if "b" in members:
                value = SessionRecord.from_body(members["b"].encode(), key)
            else:
                detail, code = members["n"], members.get("u")
                if not isinstance(detail, str) or not isinstance(code, str | None):
                    return None
                value = NotFound(detail, upstream_code=code)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
            return None
        return SharedEntry(value, fresh_until, keep_until)
