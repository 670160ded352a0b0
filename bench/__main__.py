"""`python -m bench [--quick]`: run the cases, print the table, write JSON and a chart."""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import cases, fleet, floods, report, traces
from bench.context import TOPOLOGIES, Bench, BenchConfig, Topology
from bench.processes import Pinning, Processes, core_times, detect_pinning
from harness import ROOT

RESULTS = Path(__file__).resolve().parent / "results"
CASES: dict[str, Callable[[Bench], report.CaseResult]] = {
    "rest_hit": cases.run_rest_hit,
    "graphql_hit": cases.run_graphql_hit,
    "graphql_worst": cases.run_graphql_worst,
    "graphql_tuning": cases.run_graphql_tuning,
    "miss": cases.run_miss,
    "stampede": floods.run_stampede,
    "memory": floods.run_memory,
    "fleet_calls": fleet.run_fleet_calls,
    "fleet_hit": fleet.run_fleet_hit,
    "fleet_l2_hit": fleet.run_fleet_l2_hit,
    "swr": fleet.run_swr,
    "traced_hit": traces.run_traced_hit,
    "traced_hit_sampled": traces.run_traced_hit_sampled,
}
# Cases run once per shared-layer topology, as `<case>` and `<case>_<topology>` side by side.
ACROSS_TOPOLOGIES: dict[str, Callable[[Bench, Topology], report.CaseResult]] = {
    "fleet_calls": fleet.run_fleet_calls,
    "fleet_l2_hit": fleet.run_fleet_l2_hit,
}
# ~2 minutes: shorter runs, one round, a memory flood of 2x a smaller cache bound, and
# fewer stale-while-revalidate keys.
QUICK: dict[str, Any] = {
    "duration": 3.0,
    "warmup": 1.0,
    "rounds": 1,
    "flood_keys": 5_000,
    "cache_bound": 2_500,
    "warm_keys": 500,
    "swr_keys": 100,
}
BUSY_WARNING = 0.10


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="3 s runs, one round, memory flood of 5k keys over a 2.5k bound (~2 minutes)",
    )
    parser.add_argument("--duration", type=float, help="seconds per measured wrk run (8)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up before each run (2)")
    parser.add_argument("--rounds", type=int, help="A B rounds per pair (2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (64)")
    parser.add_argument(
        "--fleet-redis-timeout",
        type=float,
        help="GATEWAY_REDIS_TIMEOUT_SECONDS of fleet_calls' replicas (0.5; the gateway's own"
        " default is 0.1)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help=f"comma-separated subset of {','.join(CASES)}; {', '.join(ACROSS_TOPOLOGIES)} run"
        f" on each shared-layer topology ({', '.join(t.name for t in TOPOLOGIES)})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and PNG")
    args = parser.parse_args(argv)
    unknown = set(args.cases.split(",")) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    return args


def build_config(args: argparse.Namespace) -> BenchConfig:
    """The defaults, the --quick ones over them, then any explicit option."""
    values: dict[str, Any] = dict(QUICK) if args.quick else {}
    for name in ("duration", "warmup", "rounds", "fleet_redis_timeout"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    return BenchConfig(connections=args.connections, **values)


def runs(name: str) -> list[tuple[str, Callable[[Bench], report.CaseResult]]]:
    """What the case `name` runs, by the name of its row: itself, or itself on each topology."""
    across = ACROSS_TOPOLOGIES.get(name)
    if across is None:
        return [(name, CASES[name])]
    return [(name + topology.suffix, _on(across, topology)) for topology in TOPOLOGIES]


def _on(
    case: Callable[[Bench, Topology], report.CaseResult], topology: Topology
) -> Callable[[Bench], report.CaseResult]:
    return lambda bench: case(bench, topology)


def machine(pinning: Pinning) -> dict[str, Any]:
    """What the numbers were measured on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": pinning.nproc,
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "pinning": {**asdict(pinning), "description": pinning.describe()},
        "wrk": _output(["wrk", "-v"]).splitlines()[0] if _output(["wrk", "-v"]) else "",
        "git_commit": _output(["git", "rev-parse", "--short", "HEAD"]),
        "app_dirty": bool(_output(["git", "status", "--porcelain", "app"])),
    }


def busy_before(seconds: float = 1.0) -> float:
    """How busy the machine's cores were just before the run (other people's work)."""
    before = core_times(None)
    time.sleep(seconds)
    after = core_times(None)
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def _output(argv: list[str]) -> str:
    try:
        # Fixed argv lists built here, never a shell.
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    except OSError:
        return ""
    return done.stdout.strip()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # so every `finally` stops what it started


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every case ran and met its bar, 1 when one broke or missed
    it (the table's FAIL rows)."""
    args = parse_args(argv)
    config = build_config(args)
    command = shlex.join(sys.orig_argv)
    pinning, warning = detect_pinning()
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    if pinning.load is not None:
        os.sched_setaffinity(0, {pinning.load})  # the harness is load side too
    signal.signal(signal.SIGTERM, _terminate)
    busy = busy_before()
    if busy > BUSY_WARNING:
        print(
            f"warning: the machine was {busy:.0%} busy before the run: expect noise",
            file=sys.stderr,
        )
    print(f"command: {command}\n{pinning.describe()}; {config}", flush=True)
    started, clock = datetime.now(UTC), time.monotonic()
    results: dict[str, report.CaseResult] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp, Processes(pinning) as procs:
            bench = Bench(procs, config, Path(tmp))
            for name, run in (row for case in args.cases.split(",") for row in runs(case)):
                print(f"{name} ...", flush=True)
                try:
                    results[name] = run(bench)
                except Exception as exc:  # report it, then run the other cases
                    results[name] = f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        print("\ninterrupted: every process the harness started is stopped", file=sys.stderr)
        return 130
    elapsed = time.monotonic() - clock
    header = {
        "command": command,
        "started": started.isoformat(timespec="seconds"),
        "elapsed_s": round(elapsed, 1),
        "machine": {**machine(pinning), "busy_before": round(busy, 3)},
        "config": asdict(config),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    report.write_json(args.out / "latest.json", header, results)
    title = f"{command}\n{started:%Y-%m-%d %H:%M} UTC; {pinning.describe()}"
    report.write_chart(args.out / "ratios.png", results, title)
    print(f"\n{report.table(results)}\n")
    print(f"command: {command}  ({elapsed:.0f} s)")
    print(f"wrote {_shown(args.out / 'latest.json')} and {_shown(args.out / 'ratios.png')}")
    if failures := report.failed(results):
        print(f"failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
