"""The development harness: the emulator and the gateway as subprocesses, for tests, `make run`
and the benchmark.

Not shipped, never imported by `app/` or the emulator, and importing neither `app` nor `tests`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
"""The repository, where every child process starts."""
