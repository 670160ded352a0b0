"""AES-256-GCM for values at rest in the shared layer, with key rotation.

A sealed value is `b"\x01"`, a 4-byte key id, a 12-byte nonce, then the ciphertext and tag.
The cache key is the associated data: a value copied under another key does not open.
The first key seals; every key opens (rotation: add the new key first, drop the old later).

Notices are authenticated, not sealed: an HMAC-SHA256 tag under a key derived from each
encryption key (one key is never used for two purposes), named by the same key id.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEALED = 1
_NONCE = 12
_ID = 4
TAG_BYTES = 16
"""An HMAC-SHA256 tag, truncated (as RFC 2104 allows) to 128 bits."""
_MAC_LABEL = b"proxy-session-gateway notices v1"


def key_id(key: bytes) -> bytes:
    """A key's public id: the first bytes of its SHA-256 (tells which key sealed a value)."""
    return hashlib.sha256(key).digest()[:_ID]


class Keyring:
    """Seals with the first key; opens with whichever key sealed."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a keyring needs a key")
        self._sealing = (key_id(keys[0]), AESGCM(keys[0]))
        self._opening = {key_id(key): AESGCM(key) for key in reversed(keys)}
        macs = [(key_id(key), hmac.digest(key, _MAC_LABEL, "sha256")) for key in keys]
        self._signing = macs[0]
        self._checking = dict(reversed(macs))

    def seal(self, plain: bytes, associated: bytes) -> bytes:
        """Encrypt `plain`, bound to `associated`, under a fresh random nonce."""
        ident, cipher = self._sealing
        nonce = os.urandom(_NONCE)
        return bytes((SEALED,)) + ident + nonce + cipher.encrypt(nonce, plain, associated)

    def open(self, sealed: bytes, associated: bytes) -> bytes | None:
        """The plaintext, or None when no key opens it (unknown key, tampered, other key)."""
        if len(sealed) < 1 + _ID + _NONCE or sealed[0] != SEALED:
            return None
        cipher = self._opening.get(sealed[1 : 1 + _ID])
        if cipher is None:
            return None
        nonce = sealed[1 + _ID : 1 + _ID + _NONCE]
        try:
            return cipher.decrypt(nonce, sealed[1 + _ID + _NONCE :], associated)
        except InvalidTag:
            return None

    def sign(self, message: bytes) -> bytes:
        """The first key's id and its tag over `message` (`ID_BYTES + TAG_BYTES` bytes)."""
        ident, key = self._signing
        return ident + hmac.digest(key, message, "sha256")[:TAG_BYTES]

    def verify(self, signature: bytes, message: bytes) -> bool:
        """Whether `signature` (from `sign`) is a tag over `message` by any key held."""
        key = self._checking.get(signature[:_ID])
        if key is None or len(signature) != _ID + TAG_BYTES:
            return False
        expected = hmac.digest(key, message, "sha256")[:TAG_BYTES]
        return hmac.compare_digest(expected, signature[_ID:])


SIGNATURE_BYTES = _ID + TAG_BYTES
