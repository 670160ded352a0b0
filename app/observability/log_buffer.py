"""A log handler that writes its lines in batches, at most `FLUSH_INTERVAL_SECONDS` late.

WARNING and worse, a batch past `MAX_BATCH_CHARS`, lines outside an event loop and exit
write at once; see docs/performance.md, "Log lines written in batches".
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TextIO

FLUSH_INTERVAL_SECONDS = 0.05
MAX_BATCH_CHARS = 64 * 1024


class BatchingStreamHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler whose lines reach the stream in batches."""

    def __init__(
        self,
        stream: TextIO,
        interval: float = FLUSH_INTERVAL_SECONDS,
        max_chars: int = MAX_BATCH_CHARS,
    ) -> None:
        super().__init__(stream)
        self._interval = interval
        self._max_chars = max_chars
        # Its own lock: the access log writes here without going through `handle`.
        self._batch_lock = threading.RLock()
        self._lines: list[str] = []
        self._chars = 0
        self._timer: asyncio.TimerHandle | None = None

    def emit(self, record: logging.LogRecord) -> None:
        """Format `record` and add it to the batch (WARNING and worse go out at once)."""
        try:
            line = self.format(record) + self.terminator
        except RecursionError:
            raise
        except Exception:  # logging must not raise into the caller
            self.handleError(record)
            return
        self.write_line(line, urgent=record.levelno >= logging.WARNING)

    def write_line(self, line: str, *, urgent: bool = False) -> None:
        """Add one finished line (with its newline) to the batch."""
        with self._batch_lock:
            self._lines.append(line)
            self._chars += len(line)
            if urgent or self._chars >= self._max_chars or not self._scheduled():
                self._write_batch()

    def flush(self) -> None:
        """Write whatever is batched now."""
        with self._batch_lock:
            self._write_batch()

    def _scheduled(self) -> bool:
        """Make sure a timer will write the batch; False when no event loop runs here.

        A pending timer is trusted without asking for the running loop (that call was a
        visible part of a cache hit): the gateway flushes before its loop ends
        (`app.observability.logs.flush`), which cancels the timer.
        """
        if self._timer is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._timer = loop.call_later(self._interval, self.flush)
        return True

    def _write_batch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines:
            return
        data = "".join(self._lines)
        self._lines.clear()
        self._chars = 0
        stream = self.stream
        stream.write(data)
        stream.flush()
