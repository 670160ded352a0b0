"""Where each request on a connection begins and ends, in the bytes as sent: the head guard's
measure.

The protocol feeds httptools one segment at a time, cut by a `Framer` at the end of each
request head and of each message, so that every head is counted exactly (every byte,
whatever the spacing, however TCP splits it, pipelined requests included), a chunked body's
trailer section counts in its request's budget, and the empty lines a client may send
between requests start no request. The parser still decides what the bytes mean; the
framer only says how many belong to what, and the protocol refuses the connection where
the two disagree.
"""

from __future__ import annotations

import re
from typing import Literal

Segment = Literal["skip", "head", "head_end", "body", "over", "stray"]
"""What the next bytes are: empty lines between requests (`skip`: never fed to the parser),
part of a head, the rest of a head up to its end, a body (trailers included), the head's
budget's last bytes (`over`: the head goes past it; nothing more is read), or past the
budget where no request can be answered (`stray`: too many empty lines, or trailers)."""

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_NEWLINES = b"\r\n"
CHUNK_LINE_MAX = 4096
"""A chunk-size line longer than this is not one (the parser refuses what follows)."""


class Framer:
    """Cuts a connection's bytes into segments: `step` says what the bytes from `pos` are and
    where they end; the protocol tells it what each head announced (`body`) and when a
    message is over (`message_done`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head_bytes = 0
        """Bytes of the current request's head (and, once its body ends, its trailers)."""
        self.between_bytes = 0
        """Empty-line bytes since the last message (they start no request)."""
        self._state: Literal["head", "length", "chunked", "free"] = "head"
        self._tail = b""  # the last bytes of a head not yet ended, to find its end across reads
        self._left = 0  # body bytes left (length), or of the current chunk (chunked)
        self._chunk: Literal["size", "data", "crlf", "trailers", "done"] = "size"
        self._line = b""  # a chunk-size or trailer line not yet ended

    @property
    def in_head(self) -> bool:
        """Whether the bytes awaited are (the rest of) a request head."""
        return self._state == "head"

    @property
    def tracking(self) -> bool:
        """Whether it still cuts the bytes (see `lose_track`)."""
        return self._state != "free"

    @property
    def head_started(self) -> bool:
        """Whether a head has begun and not yet ended."""
        return self._state == "head" and self.head_bytes > 0

    def step(self, data: bytes, pos: int) -> tuple[Segment, int]:
        """What `data[pos:end]` is, and `end` (past `pos`, at most `len(data)`)."""
        if self._state == "head":
            return self._head(data, pos)
        if self._state == "length":
            end = min(len(data), pos + self._left)
            self._left -= end - pos
            return "body", end
        if self._state == "chunked":
            return self._chunked(data, pos)
        return "body", len(data)  # after a disagreement: the parser has the last word

    def body(self, *, length: int | None, chunked: bool) -> None:
        """The head just parsed announced a body of `length` bytes, or a chunked one."""
        if chunked:
            self._state, self._chunk, self._line = "chunked", "size", b""
        elif length:
            self._state, self._left = "length", length
        # No body: the message is over, and `message_done` follows at once.

    def message_done(self) -> None:
        """The parser finished a message: what follows is the next request's."""
        self._state = "head"
        self.head_bytes = 0
        self.between_bytes = 0
        self._tail = b""

    def lose_track(self) -> None:
        """Stop cutting: the parser alone reads what follows (an upgrade, say)."""
        self._state = "free"

    def _head(self, data: bytes, pos: int) -> tuple[Segment, int]:
        if self.head_bytes == 0:  # empty lines before a request line start no request
            end = pos
            while end < len(data) and data[end] in _NEWLINES:
                end += 1
            if end > pos:
                self.between_bytes += end - pos
                return ("stray" if self.between_bytes > self.limit else "skip"), end
        found = self._head_end(data, pos)
        end = len(data) if found < 0 else found
        if self.head_bytes + (end - pos) > self.limit:
            # As much as the budget allows: the parser cannot end the head within it.
            end = pos + (self.limit - self.head_bytes)
            self.head_bytes = self.limit
            return "over", end
        self.head_bytes += end - pos
        if found < 0:
            self._tail = (self._tail + data[pos:])[-3:]
            return "head", end
        self._tail = b""
        return "head_end", end

    def _head_end(self, data: bytes, pos: int) -> int:
        """Where the head ends in `data` (just past its empty line), or -1; searched no
        further than the budget allows, so a long read is searched once, not per request."""
        if self._tail:  # the empty line may have begun in the last read
            joined = self._tail + data[pos : pos + 3]
            found = _HEAD_END.search(joined)
            if found is not None and found.start() < len(self._tail):
                return pos + found.end() - len(self._tail)
        window = min(len(data), pos + self.limit - self.head_bytes + 4)
        # A line ending, then an empty line: "\n\r\n" or, from a lax client, "\n\n".
        crlf = data.find(b"\n\r\n", pos, window)
        lf = data.find(b"\n\n", pos, window if crlf < 0 else crlf + 2)
        if lf >= 0:
            return lf + 2
        return -1 if crlf < 0 else crlf + 3

    def _chunked(self, data: bytes, pos: int) -> tuple[Segment, int]:
        """Bytes of a chunked body up to its end, its trailer section counted as head."""
        end = pos
        size = len(data)
        while end < size and self._state == "chunked" and self._chunk != "done":
            if self._chunk == "data":
                take = min(size - end, self._left)
                end += take
                self._left -= take
                if self._left == 0:
                    self._chunk, self._left = "crlf", 2
            elif self._chunk == "crlf":
                if data[end] == 0x0A or self._left == 1:  # "\n" ends it
                    self._chunk = "size"
                self._left -= 1
                end += 1
            else:
                newline = data.find(b"\n", end)
                stop = size if newline < 0 else newline + 1
                if self._chunk == "trailers":
                    self.head_bytes += stop - end
                    if self.head_bytes > self.limit:
                        return "stray", end
                self._line += data[end:stop]
                end = stop
                if newline < 0:
                    if len(self._line) > CHUNK_LINE_MAX:
                        self.lose_track()  # not a line of a chunked body: the parser refuses it
                        return "body", size
                    break
                line, self._line = self._line.rstrip(b"\r\n"), b""
                self._chunk_line(line)
        if self._state == "free":
            return "body", size
        return "body", end

    def _chunk_line(self, line: bytes) -> None:
        """Act on one whole line of a chunked body: a chunk's size, or a trailer."""
        if self._chunk == "trailers":
            if not line:  # the empty line: the message ends here (`message_done` follows)
                self._chunk = "done"
            return
        try:
            chunk = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError:
            self.lose_track()  # not a chunk size: the parser refuses it
            return
        if chunk == 0:
            self._chunk = "trailers"
        else:
            self._chunk, self._left = "data", chunk
