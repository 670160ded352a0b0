"""Run wrk and read its report: requests/sec and latency percentiles (us, ms, s, m, h)."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.processes import Processes
from bench.results import WrkResult

MS_PER_UNIT: dict[str, float] = {
    "us": 0.001,
    "ms": 1.0,
    "s": 1000.0,
    "m": 60_000.0,
    "h": 3_600_000.0,
}
_DURATION = re.compile(r"([\d.]+)(us|ms|s|m|h)")
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+(?:us|ms|s|m|h))\s*$", re.MULTILINE)
_TOTALS = re.compile(r"^\s*(\d+) requests in ([\d.]+(?:us|ms|s|m|h)),", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)\s*$", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)\s*$", re.MULTILINE
)
# Past the run itself, wrk gets this long to report before it counts as hung.
GRACE_SECONDS = 15.0


class WrkError(RuntimeError):
    """wrk failed, hung, or printed something this parser does not understand."""


def parse_duration_ms(text: str) -> float:
    """`812.00us`, `1.23ms`, `1.02s`, `1.50m` as milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise WrkError(f"not a wrk duration: {text!r}")
    return float(match[1]) * MS_PER_UNIT[match[2]]


def parse_output(text: str) -> WrkResult:
    """Read one `wrk --latency` report."""
    rate, totals = _RATE.search(text), _TOTALS.search(text)
    percentiles = {float(p): parse_duration_ms(value) for p, value in _PERCENTILE.findall(text)}
    if rate is None or totals is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise WrkError(f"unexpected wrk output (was --latency given?):\n{text}")
    non_2xx = _NON_2XX.search(text)
    sockets = _SOCKET.search(text)
    return WrkResult(
        requests_per_sec=float(rate[1]),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        requests=int(totals[1]),
        duration_s=parse_duration_ms(totals[2]) / 1000,
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


def command(
    url: str,
    *,
    duration: float,
    connections: int,
    threads: int,
    headers: Mapping[str, str],
    script: Path | None = None,
) -> list[str]:
    """The wrk command line for one run."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    for name, value in headers.items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def run(procs: Processes, argv: Sequence[str], duration: float) -> WrkResult:
    """Run wrk on the load core and parse its report."""
    process = procs.start(argv, core=procs.pinning.load, pipe=True)
    try:
        out, _ = process.communicate(timeout=duration + GRACE_SECONDS)
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk hung: {shlex.join(argv)}") from exc
    finally:
        procs.stop(process)
    if process.returncode != 0:
        raise WrkError(f"wrk exited {process.returncode}: {out.decode(errors='replace')}")
    return parse_output(out.decode(errors="replace"))


def lua_string(text: str) -> str:
    """A Lua long-bracket literal holding `text` verbatim."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def post_script(body: str, content_type: str = "application/json") -> str:
    """A wrk script sending one fixed POST (built once, so wrk's own cost stays minimal)."""
    return (
        'wrk.method = "POST"\n'
        f"wrk.body = {lua_string(body)}\n"
        f'wrk.headers["Content-Type"] = "{content_type}"\n'
    )


def fresh_key_script(prefix: str, salt: str) -> str:
    """A wrk script asking for `<prefix><counter>-<salt><random>`: a new key every request."""
    return (
        f"local prefix = {lua_string(prefix)}\n"
        f"local salt = {lua_string(salt)}\n"
        "local counter = 0\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        '  local key = counter .. "-" .. salt .. string.format("%x", math.random(0, 0x7fffffff))\n'
        "  return wrk.format(nil, prefix .. key)\n"
        "end\n"
    )


def cycle_script(paths: Sequence[str]) -> str:
    """A wrk script asking for `paths` in turn, round and round."""
    listed = ",\n".join(f"  {lua_string(path)}" for path in paths)
    return (
        f"local paths = {{\n{listed}\n}}\n"
        "local count = #paths\n"
        "local index = 0\n"
        "request = function()\n"
        "  index = index % count + 1\n"
        "  return wrk.format(nil, paths[index])\n"
        "end\n"
    )
