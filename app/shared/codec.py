"""Shared-layer values: a found session or a NotFound, with freshness in wall-clock time.

Replicas share no monotonic clock, so an entry carries the Unix times until which it is
fresh and until which it may still answer stale. What cannot be read back (garbage, another
key's value, a value no key opens, a format from another version) reads as None: a miss.

What is read back is input, whoever wrote it: a session is rendered again from its members
(only what the gateway would say is served), a NotFound carries the gateway's own words, and
freshness is clamped to what this replica would give.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
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


NOT_FOUND_CODE = "NotFoundException"


@dataclass(frozen=True, slots=True)
class Lifetimes:
    """The longest freshness this replica gives each kind of entry, and how long past it an
    entry is kept: a freshness read back is never longer."""

    found: float
    closed: float
    not_found: float
    keep: float


class Codec:
    """Turns entries into stored bytes and back, sealing them when a keyring is given."""

    def __init__(
        self,
        keyring: Keyring | None,
        lifetimes: Lifetimes | None = None,
        *,
        wall: Callable[[], float] = time.time,
        mask: bool = False,
    ) -> None:
        """Without `lifetimes`, freshness is read back as written."""
        self._keyring = keyring
        self._lifetimes = lifetimes
        self._wall = wall
        self._mask = mask

    def encode(self, entry: SharedEntry, name: bytes) -> bytes:
        """The bytes to store under the Redis key `name`."""
        members: dict[str, object] = {"f": entry.fresh_until, "k": entry.keep_until}
        value = entry.value
        if isinstance(value, NotFound):
            members["n"] = 1
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
                value = SessionRecord.from_body(members["b"].encode(), key, mask=self._mask)
            elif "n" in members:
                value = NotFound(f"AWS answered {NOT_FOUND_CODE}.", upstream_code=NOT_FOUND_CODE)
            else:
                return None
        except Exception:  # anything at all: what cannot be read back is a miss
            return None
        if not (math.isfinite(fresh_until) and math.isfinite(keep_until)):
            return None
        return self._clamped(SharedEntry(value, fresh_until, keep_until))

    def _clamped(self, entry: SharedEntry) -> SharedEntry:
        """`entry` with no more freshness, nor stale time, than this replica would give."""
        if self._lifetimes is None:
            return entry
        limits, value = self._lifetimes, entry.value
        if isinstance(value, NotFound):
            longest, keep = limits.not_found, 0.0
        else:
            longest, keep = (limits.closed if value.session.closed else limits.found), limits.keep
        fresh_until = min(entry.fresh_until, self._wall() + longest)
        keep_until = min(max(entry.keep_until, fresh_until), fresh_until + keep)
        return SharedEntry(value, fresh_until, keep_until)
