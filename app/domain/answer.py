"""What the origin said about a session, and for how long it may answer."""

from __future__ import annotations

from typing import NamedTuple

from app.domain.errors import NotFound
from app.domain.model import SessionRecord
from app.domain.outcome import CacheOutcome


class Answer(NamedTuple):
    """A session (or the origin's NotFound), fresh for `fresh_for` seconds from now and kept
    for stale answers `keep_for` seconds past that.

    In seconds from now, not at a clock's time: only the shared layer, which hands answers
    between processes, needs the wall clock."""

    value: SessionRecord | NotFound
    fresh_for: float
    keep_for: float


class Shared(NamedTuple):
    """What the shared layer got for a key, and how it answered for it."""

    answer: Answer
    outcome: CacheOutcome
