"""The framer's cut, in process: wherever TCP splits a connection's bytes, every head ends
where it ends and is counted to the byte, trailers included; empty lines start nothing."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.http.framing import Framer

pytestmark = pytest.mark.fast

LIMIT = 1024


@dataclass(frozen=True)
class Message:
    """One request as sent: its head, then its body (framed as the head says)."""

    head: bytes
    body: bytes = b""
    length: int | None = None
    chunked: bool = False
    trailers: bytes = b""


GET = Message(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Pad:      spaced\r\n\r\n")
POST = Message(b"POST /graphql HTTP/1.1\r\nHost:gw\r\nContent-Length:5\r\n\r\n", b"hello", length=5)
CHUNKED = Message(
    b"POST /graphql HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"5;ext=1\r\nhello\r\n3\r\n, w\r\n0\r\nX-T: 1\r\n\r\n",
    chunked=True,
    trailers=b"X-T: 1\r\n\r\n",
)
LF_ONLY = Message(b"GET /healthz HTTP/1.1\nHost: gw\n\n")
STREAM = [GET, POST, CHUNKED, LF_ONLY, GET]
WIRE = b"\r\n".join(m.head + m.body for m in STREAM)  # empty lines between some of them


def _cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges) if b > a]


def _message_ends() -> list[int]:
    """Where each message of STREAM ends in WIRE (what the parser knows from its framing)."""
    ends, at = [], 0
    for message in STREAM:
        at += len(message.head) + len(message.body)
        ends.append(at)
        at += 2  # the empty line between messages
    return ends


def _drive(reads: list[bytes]) -> list[tuple[int, int]]:
    """Each head's size as the framer counted it, and its trailers' count, the framer told
    what the parser would tell it: the framing a head announces, and where a message ends."""
    framer = Framer(LIMIT)
    seen: list[tuple[int, int]] = []
    ends = iter(_message_ends())
    messages = iter(STREAM)
    offset = 0
    for data in reads:
        pos = 0
        while pos < len(data):
            kind, end = framer.step(data, pos)
            assert kind in ("skip", "head", "head_end", "body"), kind
            if kind == "head_end":
                message, message_end = next(messages), next(ends)
                seen.append((framer.head_bytes, 0))
                framer.body(length=message.length, chunked=message.chunked)
            if kind in ("head_end", "body") and offset + end == message_end:
                seen[-1] = (seen[-1][0], framer.head_bytes - seen[-1][0])
                framer.message_done()
            pos = end
        offset += len(data)
    return seen


@given(st.lists(st.integers(min_value=0, max_value=len(WIRE)), max_size=12))
def test_every_split_cuts_the_same_heads_with_the_same_sizes(points: list[int]) -> None:
    seen = _drive(_cut(WIRE, points))

    assert seen == [(len(m.head), len(m.trailers)) for m in STREAM]


def test_a_head_over_the_budget_is_cut_at_the_budget() -> None:
    head = b"GET / HTTP/1.1\r\nX-Pad: " + b"p" * LIMIT + b"\r\n\r\n"
    framer = Framer(LIMIT)

    assert framer.step(head, 0) == ("over", LIMIT)


def test_too_many_empty_lines_are_stray() -> None:
    framer = Framer(LIMIT)

    assert framer.step(b"\r\n" * LIMIT, 0) == ("stray", 2 * LIMIT)
    assert Framer(LIMIT).step(b"\r\n\r\nGET", 0) == ("skip", 4)


def test_trailers_count_in_the_budget() -> None:
    framer = Framer(LIMIT)
    head = CHUNKED.head
    assert framer.step(head, 0) == ("head_end", len(head))
    framer.body(length=None, chunked=True)
    body = b"0\r\n" + b"X-T: " + b"t" * LIMIT + b"\r\n\r\n"

    kind, _ = framer.step(body, 0)

    assert kind == "stray"
