"""Start child processes from the repository root, optionally pinned and grouped, and stop them."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness import ROOT

STOP_TIMEOUT = 15.0


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    log: Path | None = None,
    pipe: bool = False,
    core: int | None = None,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Start `argv` with its output in `log` (stderr too), in a pipe (stdout only), or inherited.

    `core` pins it there with taskset. `own_group` makes it lead a process group of its own,
    so a Ctrl-C on the terminal reaches only its parent, which then stops it by group.
    """
    if log is not None and pipe:
        raise ValueError("output goes to a log or a pipe, not both")
    prefix = ["taskset", "-c", str(core)] if core is not None else []
    out = log.open("wb") if log is not None else None
    try:
        return subprocess.Popen(  # noqa: S603 - argv built by the harness, no shell
            [*prefix, *argv],
            cwd=ROOT,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipe else out,
            stderr=None if pipe else subprocess.STDOUT,
            start_new_session=own_group,
        )
    finally:
        if out is not None:
            out.close()


def stop(process: subprocess.Popen[Any], *, group: bool = False) -> int:
    """SIGTERM the process (its group when it leads one), SIGKILL if it lingers; its exit code."""
    if process.poll() is None:
        _signal(process, signal.SIGTERM, group)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal(process, signal.SIGKILL, group)
            process.wait()
    if group:
        _signal(process, signal.SIGKILL, group)  # anything it left behind in its group
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def _signal(process: subprocess.Popen[Any], signum: signal.Signals, group: bool) -> None:
    if not group:
        process.send_signal(signum)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
