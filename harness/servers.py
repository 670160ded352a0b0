"""The emulator and the gateway, each started as a subprocess on loopback and waited for."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness import processes
from harness.aws import CREDENTIAL_OPTIONS, aws_env
from harness.network import LOOPBACK, free_port

EMULATOR_BANNER = "emulator listening on "
READY_PATH = "/readyz"
START_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Server:
    """A started HTTP server: its process, base URL, and the file its output goes to, if any."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path | None = None
    own_group: bool = False

    def log_text(self) -> str:
        """Everything it wrote so far (nothing when its output is not in a file)."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its output, to explain a failure."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stop(self) -> int:
        """Stop the process (by group when it leads one) and return its exit code."""
        return processes.stop(self.process, group=self.own_group)


def start_emulator(
    *,
    port: int = 0,
    options: Sequence[str] = (),
    core: int | None = None,
    own_group: bool = False,
) -> Server:
    """The emulator on loopback (a free port by default), with its sample data.

    It accepts the harness's credentials unless `options` (further command line options,
    such as `--default-session PATH`) give others.
    """
    argv = [sys.executable, "-m", "emulator", "--host", LOOPBACK, "--port", str(port)]
    argv += [*CREDENTIAL_OPTIONS, *options]
    process = processes.start(argv, pipe=True, core=core, own_group=own_group)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode(errors="replace").strip()
        if not line.startswith(EMULATOR_BANNER):
            raise RuntimeError(f"emulator did not start: {line!r}")
    except BaseException:
        processes.stop(process, group=own_group)
        raise
    return Server("emulator", process, line.removeprefix(EMULATOR_BANNER), own_group=own_group)


def start_gateway(
    emulator_url: str,
    log: Path | None,
    settings: Mapping[str, str] | None = None,
    *,
    name: str = "gateway",
    port: int | None = None,
    wait: bool = True,
    core: int | None = None,
    own_group: bool = False,
    entry: Sequence[str] = ("-m", "app"),
) -> Server:
    """`python -m app` on loopback against the emulator, with `settings` as GATEWAY_* variables.

    Its output goes to `log`, or to this process's stdout when that is None. `entry`: how
    Python runs the gateway (`("-m", "uvicorn", "app.main:app")` serves the app with stock
    uvicorn, which reads the address from `UVICORN_HOST` and `UVICORN_PORT`).
    """
    port = port or free_port()
    env = aws_env(emulator_url)
    address = {"HOST": LOOPBACK, "PORT": str(port)}
    env.update(
        {
            f"{server}_{name}": value
            for server in ("GATEWAY", "UVICORN")
            for name, value in address.items()
        }
    )
    env.update(settings or {})
    argv = [sys.executable, *entry]
    process = processes.start(argv, env=env, log=log, core=core, own_group=own_group)
    server = Server(name, process, f"http://{LOOPBACK}:{port}", log, own_group)
    if wait:
        wait_gateway_ready(server)
    return server


def wait_gateway_ready(server: Server) -> None:
    """Wait for /readyz, and for the log (if any) to say that this gateway is the one answering."""
    marker = f"running on {server.url} " if server.log is not None else None
    wait_ready(server, READY_PATH, marker=marker)


def wait_ready(
    server: Server,
    path: str = READY_PATH,
    *,
    marker: str | None = None,
    timeout: float = START_TIMEOUT,
) -> None:
    """Poll `path` until it answers 200 and the log shows `marker`; else stop the server."""
    try:
        _poll(server, path, marker, timeout)
    except BaseException:
        server.stop()
        raise


def _poll(server: Server, path: str, marker: str | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited:\n{server.log_text()}")
            try:
                answered = client.get(path).status_code == 200
            except httpx.TransportError:
                answered = False
            if answered and (marker is None or marker in server.log_text()):
                return
            time.sleep(0.05)
    raise RuntimeError(f"{server.name} did not become ready:\n{server.log_text()}")
