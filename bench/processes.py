"""The bench's processes: pinned to cores, each leading its own group, all stopped at the end."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from harness import processes
from harness.aws import aws_env
from harness.network import LOOPBACK, free_port
from harness.servers import Server, wait_ready

CEILING_READY_PATH = "/_ready"


@dataclass(frozen=True, slots=True)
class Pinning:
    """The core of the server under test and the core of the load side (wrk, emulator)."""

    nproc: int
    server: int | None = None
    load: int | None = None

    @property
    def enabled(self) -> bool:
        """Whether processes are pinned at all."""
        return self.server is not None

    def describe(self) -> str:
        """One line for the report."""
        if not self.enabled:
            return f"no pinning ({self.nproc} core(s) available)"
        return f"server on core {self.server}, wrk and emulator on core {self.load}"


def detect_pinning() -> tuple[Pinning, str | None]:
    """Pin to the first two cores this process may use; none (and a warning) if fewer."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return Pinning(len(cores)), "only one core: server and load share it, numbers are rough"
    if shutil.which("taskset") is None:
        return Pinning(len(cores)), "taskset not found (util-linux): running unpinned"
    return Pinning(len(cores), cores[0], cores[1]), None


def read_status_kib(pid: int, field: str) -> int:
    """A `Vm*` line of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def core_times(core: int | None) -> tuple[int, int]:
    """(busy, total) clock ticks of one core (all cores when None) since boot."""
    name = "cpu" if core is None else f"cpu{core}"
    for line in Path("/proc/stat").read_text().splitlines():
        parts = line.split()
        if parts[0] == name:
            ticks = [int(value) for value in parts[1:9]]
            idle = ticks[3] + ticks[4]  # idle + iowait
            return sum(ticks) - idle, sum(ticks)
    raise KeyError(name)


class Processes:
    """Every process the bench started; closing it (or leaving `with`) ends them all.

    Each child leads its own process group, so a Ctrl-C on the terminal reaches only the
    bench, whose `finally` then stops the children by group.
    """

    def __init__(self, pinning: Pinning) -> None:
        self.pinning = pinning
        self._started: list[subprocess.Popen[bytes]] = []

    def start(
        self,
        argv: Sequence[str],
        *,
        core: int | None,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        pipe: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start argv pinned to `core`, output to `log` (a file), a pipe, or inherited."""
        process = processes.start(argv, env=env, log=log, pipe=pipe, core=core, own_group=True)
        return self.adopt(process)

    def adopt(self, process: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        """Stop `process` (started in its own group) along with the others."""
        self._started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process's group, SIGKILL it if it lingers."""
        processes.stop(process, group=True)
        if process in self._started:
            self._started.remove(process)

    def close(self) -> None:
        """Stop everything still running, the last started first."""
        for process in reversed(list(self._started)):
            self.stop(process)

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def start_ceiling(
    procs: Processes, kind: str, emulator_url: str, log: Path, extra: Sequence[str] = ()
) -> Server:
    """A ceiling of `bench.ceilings` (`bare` or `aioboto3`) on the server core."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceilings", kind, "--port", str(port), *extra]
    process = procs.start(argv, core=procs.pinning.server, env=aws_env(emulator_url), log=log)
    name = f"bare_{'asgi' if kind == 'bare' else kind}"
    server = Server(name, process, f"http://{LOOPBACK}:{port}", log, own_group=True)
    wait_ready(server, CEILING_READY_PATH)
    return server
