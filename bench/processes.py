"""Start and stop the processes a benchmark needs: pinned to a core, each in its own group."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx

ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
EMULATOR_BANNER = "emulator listening on "
# The emulator checks every upstream call's signature against this key pair.
AWS_ACCESS_KEY_ID = "bench"
AWS_SECRET_ACCESS_KEY = "bench"  # noqa: S105 - a key pair only the local emulator knows


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


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


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
    """Every process the harness started; closing it (or leaving `with`) ends them all.

    Each child leads its own process group, so a Ctrl-C on the terminal reaches only the
    harness, whose `finally` then stops the children by group.
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
        stdout: Path | None = None,
        pipe: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start argv pinned to `core`, output to `stdout` (a file), a pipe, or /dev/null."""
        prefix = ["taskset", "-c", str(core)] if core is not None else []
        out = stdout.open("wb") if stdout is not None else None
        try:
            process = subprocess.Popen(  # noqa: S603  (argv built by the harness, no shell)
                [*prefix, *argv],
                cwd=ROOT,
                env=dict(env) if env is not None else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipe else (out or subprocess.DEVNULL),
                stderr=subprocess.STDOUT if out is not None else None,
                start_new_session=True,
            )
        finally:
            if out is not None:
                out.close()
        self._started.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process's group, SIGKILL it if it lingers."""
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
        _signal_group(process, signal.SIGKILL)  # anything it left behind in its group
        if process.stdout is not None:
            process.stdout.close()
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


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


@dataclass(frozen=True, slots=True)
class Server:
    """A started HTTP server: its process, base URL, and where its output goes."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path | None = None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its output, to explain a failure."""
        if self.log is None or not self.log.exists():
            return ""
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def wait_ready(server: Server, path: str, timeout: float = START_TIMEOUT) -> None:
    """Poll `path` until it answers 200, failing fast if the process exits."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log_tail()}")
            try:
                if client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not become ready:\n{server.log_tail()}")


def start_emulator(procs: Processes, default_session: Path) -> Server:
    """The emulator on the load core, answering unknown keys with `default_session`."""
    argv = [sys.executable, "-m", "emulator", "--host", LOOPBACK, "--port", "0"]
    argv += ["--default-session", str(default_session)]
    argv += ["--access-key-id", AWS_ACCESS_KEY_ID, "--secret-access-key", AWS_SECRET_ACCESS_KEY]
    process = procs.start(argv, core=procs.pinning.load, pipe=True)
    assert process.stdout is not None
    line = process.stdout.readline().decode().strip()
    if not line.startswith(EMULATOR_BANNER):
        procs.stop(process)
        raise RuntimeError(f"emulator did not start: {line!r}")
    return Server("emulator", process, line.removeprefix(EMULATOR_BANNER))


def aws_env(emulator_url: str) -> dict[str, str]:
    """A clean AWS environment pointing the standard endpoint override at the emulator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GATEWAY_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL_CHIME_SDK_VOICE": emulator_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    return env


def start_gateway(
    procs: Processes,
    emulator_url: str,
    token: str,
    log: Path,
    name: str = "gateway",
    settings: Mapping[str, str] | None = None,
) -> Server:
    """`python -m app` on the server core with production settings and one static token."""
    port = free_port()
    env = aws_env(emulator_url)
    env.update(
        {
            "GATEWAY_HOST": LOOPBACK,
            "GATEWAY_PORT": str(port),
            "GATEWAY_AUTH_TOKENS": token,
            # Shutdown behaviour only: a drain period would just slow the harness down.
            "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
            **(settings or {}),
        }
    )
    process = procs.start(
        [sys.executable, "-m", "app"], core=procs.pinning.server, env=env, stdout=log
    )
    server = Server(name, process, f"http://{LOOPBACK}:{port}", log)
    wait_ready(server, "/readyz")
    return server


def start_ceiling(
    procs: Processes, kind: str, emulator_url: str, log: Path, extra: Sequence[str] = ()
) -> Server:
    """A ceiling of `bench.ceilings` (`bare` or `aioboto3`) on the server core."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.ceilings", kind, "--port", str(port), *extra]
    process = procs.start(argv, core=procs.pinning.server, env=aws_env(emulator_url), stdout=log)
    server = Server(
        f"bare_{'asgi' if kind == 'bare' else kind}", process, f"http://{LOOPBACK}:{port}", log
    )
    wait_ready(server, "/_ready")
    return server
