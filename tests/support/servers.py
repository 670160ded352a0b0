"""Real servers for the tests: the harness's emulator and gateway, with clients for them."""

from __future__ import annotations

import os
import subprocess
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

from harness import ROOT, processes, servers
from harness.aws import aws_env
from harness.network import LOOPBACK, free_port

__all__ = [
    "LOOPBACK",
    "ROOT",
    "Emulator",
    "Gateway",
    "aws_env",
    "free_port",
    "start_emulator",
    "start_gateway",
    "wait_ready",
]

DEVNULL = Path(os.devnull)


@dataclass
class Emulator:
    """The Chime SDK Voice emulator and its admin API."""

    process: subprocess.Popen[bytes]
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

    def call_times(self) -> list[float]:
        """When the latest GetProxySession requests arrived (Unix time, oldest first)."""
        times: list[float] = self.admin.get("/calls").json()["times"]
        return times

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
        processes.stop(self.process)


@dataclass
class Gateway:
    """A `python -m app` process and a client for it."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def rss_kib(self) -> int:
        """The process's resident memory, in KiB (`VmRSS` in `/proc`)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for process {self.process.pid}")

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
        return processes.stop(self.process)

    @property
    def server(self) -> servers.Server:
        """The harness's view of this gateway."""
        log = None if self.log_path == DEVNULL else self.log_path
        return servers.Server("gateway", self.process, self.url, log)


def _q(segment: str) -> str:
    return quote(segment, safe="")


def _fault_path(vc: str, ps: str) -> str:
    """The admin path for a key's fault; `*`, `*` is the wildcard (every key)."""
    if vc == ps == "*":
        return "/faults/*/*"
    return f"/faults/{_q(vc)}/{_q(ps)}"


def start_emulator(port: int = 0, options: Sequence[str] = ()) -> Emulator:
    """Start the emulator on loopback (a free port by default) with the sample data.

    `options` are further command line options, such as other credentials.
    """
    server = servers.start_emulator(port=port, options=options)
    return Emulator(server.process, server.url)


def start_gateway(
    emulator_url: str,
    log_path: Path | None,
    settings: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    wait: bool = True,
    entry: Sequence[str] = ("-m", "app"),
) -> Gateway:
    """Start `python -m app` (or `entry`) against the emulator, with `settings` as GATEWAY_*
    variables.

    Its output goes to `log_path`, or to this process's stdout when that is None.
    """
    server = servers.start_gateway(
        emulator_url, log_path, settings, port=port, wait=wait, entry=entry
    )
    return Gateway(server.process, server.url, log_path or DEVNULL)


def wait_ready(gateway: Gateway) -> None:
    """Poll /readyz until 200, failing fast if the process exits (the gateway is then stopped)."""
    try:
        servers.wait_gateway_ready(gateway.server)
    except BaseException:
        gateway.client.close()
        raise
