"""A real `redis-server` on loopback for the shared layer (fleet mode): no persistence, a
directory of its own, stopped, killed or restarted on the same port at will, over TCP or TLS."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import processes
from harness.network import LOOPBACK, free_port

START_TIMEOUT = 10.0
MISSING = (
    "redis-server is not installed: `make test` installs it (apt-get install redis-server);"
    " fleet mode's tests need a real server"
)
CERTIFICATE_DAYS = "2"
# The CA signs the server certificate; the server presents it to clients and, for replication
# and the cluster bus, to its peers, hence both purposes.
OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclass(frozen=True)
class TlsFiles:
    """A private CA's certificate, and a server certificate it signed with that server's key."""

    ca: Path
    cert: Path
    key: Path


def make_tls_files(folder: Path) -> TlsFiles:
    """A new private CA and a server certificate for 127.0.0.1 and localhost, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "openssl.cnf"
    config.write_text(OPENSSL_CONFIG, encoding="ascii")
    files = TlsFiles(ca=folder / "ca.crt", cert=folder / "server.crt", key=folder / "server.key")
    ca_key, request = folder / "ca.key", folder / "server.csr"
    new_key = ["-newkey", "rsa:2048", "-nodes", "-config", str(config)]
    days = ["-days", CERTIFICATE_DAYS]
    ca = ["-keyout", str(ca_key), "-out", str(files.ca), "-subj", "/CN=psgw harness CA"]
    _openssl("req", "-x509", *new_key, *ca, "-extensions", "ca", *days)
    server = ["-keyout", str(files.key), "-out", str(request), "-subj", "/CN=localhost"]
    _openssl("req", "-new", *new_key, *server)
    signer = ["-CA", str(files.ca), "-CAkey", str(ca_key), "-CAcreateserial"]
    extensions = ["-extfile", str(config), "-extensions", "server"]
    _openssl(
        "x509", "-req", "-in", str(request), *signer, "-out", str(files.cert), *days, *extensions
    )
    return files


def _openssl(*args: str) -> None:
    found = shutil.which("openssl")
    if found is None:
        raise RuntimeError("openssl is not installed: the TLS topologies need its command line")
    done = subprocess.run(  # noqa: S603 - argv built here, no shell
        [found, *args], capture_output=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.decode(errors='replace')}")


def redis_server_binary() -> str:
    """The path of redis-server, or RuntimeError saying how to get it."""
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError(MISSING)
    return found


class RedisServer:
    """One redis-server process; `url` stays the same across restarts.

    With `tls` it listens with TLS only, on `port`; `extra_args` end its command line.
    `directory` (made if missing) replaces the temporary directory of its own.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        log: Path | None = None,
        tls: TlsFiles | None = None,
        extra_args: Sequence[str] = (),
        directory: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.tls = tls
        self.url = f"{'rediss' if tls else 'redis'}://{LOOPBACK}:{self.port}/0"
        self.extra_args = tuple(extra_args)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
        self._dir = directory or Path(tempfile.mkdtemp(prefix="psgw-redis-"))
        self._log = log or self._dir / "redis.log"
        self._ssl = ssl.create_default_context(cafile=str(tls.ca)) if tls else None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        """Start it and wait until it answers PING. It leads a process group of its own: a
        Ctrl-C in the terminal reaches the script that started it, which stops its gateways
        first and their Redis last, not Redis at once."""
        self.process = processes.start(self._argv(), log=self._log, own_group=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self._log.read_text(errors='replace')}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not answer PING in time")

    def _argv(self) -> list[str]:
        """Its command line."""
        return [redis_server_binary(), *self._options()]

    def _options(self) -> list[str]:
        """The options every mode shares: the listener, no persistence, then `extra_args`."""
        return [
            "--bind", LOOPBACK,
            *self._listener(),
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "no",
            "--protected-mode", "no",
            "--enable-debug-command", "local",
            *self.extra_args,
        ]  # fmt: skip

    def _listener(self) -> list[str]:
        """Plain TCP on `port`, or TLS only (port 0 turns plain TCP off)."""
        if self.tls is None:
            return ["--port", str(self.port)]
        return [
            "--port", "0",
            "--tls-port", str(self.port),
            "--tls-cert-file", str(self.tls.cert),
            "--tls-key-file", str(self.tls.key),
            "--tls-ca-cert-file", str(self.tls.ca),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of its log, to explain a failure."""
        if not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def _connect(self, timeout: float) -> socket.socket:
        """A connection to it, over TLS when it listens with TLS."""
        connection = socket.create_connection((LOOPBACK, self.port), timeout=timeout)
        if self._ssl is None:
            return connection
        try:
            return self._ssl.wrap_socket(connection, server_hostname=LOOPBACK)
        except BaseException:
            connection.close()
            raise

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
        with self._connect(timeout=2) as connection:
            connection.sendall(b"".join(parts))
            return connection.recv(65536)

    def call(self, *args: str | bytes, timeout: float = 2.0) -> Any:
        """Send one command and return its whole reply, parsed (RESP2): bytes, an int, a list,
        None; an error reply raises ReplyError. `timeout` bounds the wait for the reply."""
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with self._connect(timeout) as connection:
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
