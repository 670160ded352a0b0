"""A real `redis-server` on loopback for the shared layer (fleet mode): no persistence, a
directory of its own, stopped, killed or restarted on the same port at will."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import processes
from harness.network import LOOPBACK, free_port

START_TIMEOUT = 10.0
MISSING = (
    "redis-server is not installed: `make test` installs it (apt-get install redis-server);"
    " fleet mode's tests need a real server"
)


def redis_server_binary() -> str:
    """The path of redis-server, or RuntimeError saying how to get it."""
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(MISSING)
    return found


class RedisServer:
    """One redis-server process; `url` stays the same across restarts."""

    def __init__(self, *, port: int | None = None, log: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://{LOOPBACK}:{self.port}/0"
        self._dir = Path(tempfile.mkdtemp(prefix="psgw-redis-"))
        self._log = log or self._dir / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING."""
        argv = [
            redis_server_binary(),
            "--bind", LOOPBACK,
            "--port", str(self.port),
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--enable-debug-command", "local",
        ]  # fmt: skip
        self.process = processes.start(argv, log=self._log)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log.read_text(errors='replace')}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING in time")

    def ping(self) -> bool:
        """Whether it answers PING now."""
        try:
            return self.command("PING") == b"+PONG\r\n"
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one command (RESP) and return the raw first reply line(s)."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection((LOOPBACK, self.port), timeout=2) as connection:
            connection.sendall(b"".join(parts))
            return connection.recv(65536)

    def call(self, *args: str | bytes, timeout: float = 2.0) -> Any:
        """Send one command and return its whole reply, parsed (RESP2): bytes, an int, a list,
        None; an error reply raises ReplyError. `timeout` bounds the wait for the reply."""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with socket.create_connection((LOOPBACK, self.port), timeout=timeout) as connection:
            connection.sendall(b"".join(parts))
            with connection.makefile("rb") as reader:
                return _reply(reader)

    def strings(self, pattern: str = "*") -> dict[bytes, bytes]:
        """Every string key matching `pattern`, with its value (other types are left out)."""
        found: dict[bytes, bytes] = {}
        for name in self.call("KEYS", pattern):
            if self.call("TYPE", name) == b"string":
                value = self.call("GET", name)
                if value is not None:
                    found[name] = value
        return found

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL)."""
        if self.process is not None:
            processes.stop(self.process)
            self.process = None

    def kill(self) -> None:
        """SIGKILL it, as a crash would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.process = None

    def restart(self) -> None:
        """Start it again on the same port (empty: no persistence)."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        """Stop it and remove its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


class ReplyError(RuntimeError):
    """An error reply (`-ERR ...`, `-READONLY ...`)."""


def _reply(reader: Any) -> Any:
    line: bytes = reader.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("redis-server closed the connection")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        raise ReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data: bytes = reader.read(size + 2)
        return data[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_reply(reader) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line!r}")
