"""Real servers for the tests: the emulator and the gateway, each a subprocess on loopback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from tests.support.sigv4 import ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 30.0


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def aws_env(endpoint: str) -> dict[str, str]:
    """A clean AWS environment pointing the standard endpoint override at the emulator.

    The credentials are the ones the emulator checks signatures with.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GATEWAY_"))}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL_CHIME_SDK_VOICE": endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_SHUTDOWN_DRAIN_SECONDS": "0",
        }
    )
    return env


@dataclass
class Emulator:
    """The Chime SDK Voice emulator and its admin API."""

    process: subprocess.Popen[str]
    url: str
    admin: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.admin = httpx.Client(base_url=f"{self.url}/_emulator", timeout=10)

    def seed(self, vc: str, ps: str, session: Mapping[str, Any]) -> None:
        """Store `session` verbatim under (vc, ps)."""
        self.admin.put(
            f"/sessions/{_q(vc)}/{_q(ps)}", content=orjson.dumps(session)
        ).raise_for_status()

    def delete(self, vc: str, ps: str) -> None:
        """Remove the session (vc, ps)."""
        self.admin.delete(f"/sessions/{_q(vc)}/{_q(ps)}").raise_for_status()

    def fault(self, vc: str, ps: str, **spec: Any) -> None:
        """Inject a fault for (vc, ps) (`*`, `*` for every key)."""
        self.admin.put(_fault_path(vc, ps), json=spec).raise_for_status()

    def clear_fault(self, vc: str, ps: str) -> None:
        """Remove the fault for (vc, ps)."""
        self.admin.delete(_fault_path(vc, ps)).raise_for_status()

    def calls(self, vc: str, ps: str) -> int:
        """GetProxySession requests received for (vc, ps)."""
        reply = self.admin.get(f"/calls/{_q(vc)}/{_q(ps)}")
        reply.raise_for_status()
        count: int = reply.json()["count"]
        return count

    def total_calls(self) -> int:
        """GetProxySession requests received in all."""
        total: int = self.admin.get("/calls").json()["total"]
        return total

    def rejected(self, code: str) -> int:
        """Requests refused on authentication with this AWS error code."""
        counts: dict[str, int] = self.admin.get("/calls").json()["rejected"]
        return counts.get(code, 0)

    def max_inflight(self) -> int:
        """The most faulted requests held at once since the last reset."""
        value: int = self.admin.get("/calls").json()["max_inflight"]
        return value

    def reset(self) -> None:
        """Back to the sample data, no faults, no counts."""
        self.admin.post("/reset").raise_for_status()

    def stop(self) -> None:
        """Stop the process."""
        self.admin.close()
        _stop(self.process)


@dataclass
class Gateway:
    """A `python -m app` process and a client for it."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def get_session(self, vc: str, ps: str, **kwargs: Any) -> httpx.Response:
        """GET the REST route for (vc, ps)."""
        return self.client.get(f"/v1/voice-connectors/{_q(vc)}/proxy-sessions/{_q(ps)}", **kwargs)

    def graphql(
        self, query: str, variables: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """POST a GraphQL document with variables."""
        return self.client.post("/graphql", json={"query": query, "variables": variables}, **kwargs)

    def metric(self, name: str, **labels: str) -> float:
        """Scrape /metrics and sum the samples called `name` that carry these label values."""
        text = self.client.get("/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def log_lines(self) -> list[str]:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()

    def settled_log_lines(self) -> list[str]:
        """The log once every line logged so far is written.

        Lines reach stdout in batches (app.observability.log_buffer), in order: a probe's
        access line showing up means everything logged before it is there too.
        """
        marker = f"settle-{uuid.uuid4().hex}"
        self.client.get("/healthz", headers={"X-Request-ID": marker})
        self.wait_for_records(lambda record: record.get("request_id") == marker)
        return self.log_lines()

    def log_records(self) -> list[dict[str, Any]]:
        """The stdout lines parsed as JSON objects (every line must be one)."""
        return [orjson.loads(line) for line in self.log_lines() if line.strip()]

    def wait_for_records(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 5
    ) -> list[dict[str, Any]]:
        """The log records matching `predicate`, once at least `count` of them are written.

        The access line is written after the response is sent, so a test may read the log
        before the line is there.
        """
        deadline = time.monotonic() + timeout
        while True:
            found = [record for record in self.log_records() if predicate(record)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    def stop(self) -> int:
        """Stop the process with SIGTERM and return its exit code."""
        self.client.close()
        return _stop(self.process)


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _fault_path(vc: str, ps: str) -> str:
    """The admin path for a key's fault; `*`, `*` is the wildcard (every key)."""
    if vc == ps == "*":
        return "/faults/*/*"
    return f"/faults/{_q(vc)}/{_q(ps)}"


def _stop(process: subprocess.Popen[Any]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()
    return process.returncode


def start_emulator(port: int = 0, options: Sequence[str] = ()) -> Emulator:
    """Start the emulator on loopback (a free port by default) with the sample data.

    `options` are further command line options, such as other credentials.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator", "--host", LOOPBACK, "--port", str(port), *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("emulator listening on "):
        _stop(process)
        raise RuntimeError(f"emulator did not start: {line!r}")
    return Emulator(process, line.removeprefix("emulator listening on "))


def start_gateway(
    emulator_url: str,
    log_path: Path | None,
    settings: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    wait: bool = True,
) -> Gateway:
    """Start `python -m app` against the emulator, with `settings` as GATEWAY_* variables.

    Its output goes to `log_path`, or to this process's stdout when that is None.
    """
    port = port or free_port()
    env = aws_env(emulator_url)
    env.update({"GATEWAY_HOST": LOOPBACK, "GATEWAY_PORT": str(port)})
    env.update(settings or {})
    log_file = log_path.open("wb") if log_path is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT
    )
    if log_file is not None:
        log_file.close()
    log_path = log_path or Path(os.devnull)
    gateway = Gateway(process, f"http://{LOOPBACK}:{port}", log_path)
    if wait:
        wait_ready(gateway)
    return gateway


def _listening(gateway: Gateway) -> bool:
    """Whether the answer came from this gateway, not another process that took the port."""
    if gateway.log_path == Path(os.devnull):
        return gateway.process.poll() is None
    return f"running on {gateway.url} " in gateway.log_path.read_text(errors="replace")


def wait_ready(gateway: Gateway) -> None:
    """Poll /readyz until 200, failing fast if the process exits."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if gateway.process.poll() is not None:
            raise RuntimeError("gateway exited:\n" + "\n".join(gateway.log_lines()))
        try:
            if gateway.client.get("/readyz").status_code == 200 and _listening(gateway):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    gateway.stop()
    raise RuntimeError("gateway did not become ready:\n" + "\n".join(gateway.log_lines()))
