"""Shared-layer values: read back exactly, sealed when keys are given, and anything that
cannot be read back is None (a miss), never an error."""

from __future__ import annotations

import os
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import NotFound
from app.domain.model import ProxySession, SessionRecord
from app.shared.codec import Codec, SharedEntry
from app.shared.keyring import Keyring
from harness import sample

pytestmark = pytest.mark.fast

KEY = (sample.VOICE_CONNECTOR_ID, sample.PROXY_SESSION_ID)
NAME = b"psgw:s:key"
PHONE = sample.session()["Participants"][0]["PhoneNumber"]


def _record() -> SessionRecord:
    """The sample session as the cache holds it (timestamps and participants included)."""
    members = sample.session()
    for name in ("CreatedTimestamp", "UpdatedTimestamp", "EndedTimestamp"):
        if name in members:
            members[name] = datetime.fromisoformat(members[name])
    return SessionRecord.render(ProxySession.from_aws(members, KEY))


ENTRY = SharedEntry(_record(), 1_800_000_000.5, 1_800_000_300.5)
MISSING = SharedEntry(NotFound("gone", upstream_code="NotFoundException"), 10.0, 10.0)


@pytest.mark.parametrize("keys", [None, [os.urandom(32)]], ids=["plain", "sealed"])
def test_entries_read_back_as_they_were(keys: list[bytes] | None) -> None:
    codec = Codec(Keyring(keys) if keys else None)

    found = codec.decode(codec.encode(ENTRY, NAME), NAME, KEY)
    missing = codec.decode(codec.encode(MISSING, NAME), NAME, KEY)

    assert found == ENTRY
    assert missing is not None
    assert isinstance(missing.value, NotFound)
    # A NotFound read back says the gateway's own words, whatever was stored.
    assert (missing.value.detail, missing.value.upstream_code) == (
        "AWS answered NotFoundException.",
        "NotFoundException",
    )
    assert (missing.fresh_until, missing.keep_until) == (10.0, 10.0)


def test_a_sealed_value_shows_no_phone_number_and_differs_each_time() -> None:
    codec = Codec(Keyring([os.urandom(32)]))
    assert PHONE.encode() in Codec(None).encode(ENTRY, NAME)

    first, second = codec.encode(ENTRY, NAME), codec.encode(ENTRY, NAME)

    assert PHONE.encode() not in first
    assert first != second  # a fresh nonce per value


def test_keys_rotate_the_first_seals_every_one_opens() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed_by_old = Codec(Keyring([old])).encode(ENTRY, NAME)

    rotated = Codec(Keyring([new, old]))

    assert rotated.decode(sealed_by_old, NAME, KEY) == ENTRY
    assert Codec(Keyring([old])).decode(rotated.encode(ENTRY, NAME), NAME, KEY) is None
    assert Codec(Keyring([new])).decode(rotated.encode(ENTRY, NAME), NAME, KEY) == ENTRY


def test_what_cannot_be_read_back_is_a_miss() -> None:
    key = os.urandom(32)
    sealed, plain = Codec(Keyring([key])), Codec(None)
    value = sealed.encode(ENTRY, NAME)

    assert sealed.decode(value, b"psgw:s:other", KEY) is None  # copied under another key
    assert Codec(Keyring([os.urandom(32)])).decode(value, NAME, KEY) is None  # wrong key
    assert plain.decode(value, NAME, KEY) is None  # sealed, and no key here
    assert sealed.decode(plain.encode(ENTRY, NAME), NAME, KEY) is None  # plain, keys here
    tampered = value[:-1] + bytes([value[-1] ^ 1])
    assert sealed.decode(tampered, NAME, KEY) is None
    assert plain.decode(plain.encode(ENTRY, NAME), NAME, ("other", "key")) is None


@given(st.binary(max_size=300))
def test_garbage_is_a_miss(garbage: bytes) -> None:
    for codec in (Codec(None), Codec(Keyring([b"k" * 32]))):
        assert codec.decode(garbage, NAME, KEY) is None
        assert codec.decode(b"\x00" + garbage, NAME, KEY) is None


def test_a_record_read_back_is_the_one_rendered() -> None:
    record = ENTRY.value
    assert isinstance(record, SessionRecord)
    assert record.session.created_timestamp is not None

    again = SessionRecord.from_body(record.body, KEY)

    assert again == record
    with pytest.raises(ValueError, match="another key"):
        SessionRecord.from_body(record.body, ("vc", "ps"))
