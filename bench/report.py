"""The report: a table on the terminal, `latest.json`, and a PNG chart of the ratios."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend is chosen first

from bench.results import (
    FleetCallsResult,
    MemoryResult,
    PairResult,
    StampedeResult,
    SwrResult,
    percentile,
)

CaseResult = (
    PairResult | StampedeResult | MemoryResult | FleetCallsResult | SwrResult | str
)  # str: the case's error
COLUMNS = ("case", "req/s", "p50", "p99", "ceiling req/s", "ratio", "target", "result")
DASH = "—"
MIB = 1024
SATURATED = 0.9  # a server under load below this share of its core was not the bottleneck


def format_ms(value: float) -> str:
    """Milliseconds as the unit a reader expects (µs under 1 ms, s over 1 s)."""
    if value < 1:
        return f"{value * 1000:.0f} µs"
    if value < 1000:
        return f"{value:.2f} ms"
    return f"{value / 1000:.2f} s"


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def failed(results: dict[str, CaseResult]) -> list[str]:
    """The cases that broke (an error) or missed a bar they have; figures never fail."""
    out = []
    for name, result in results.items():
        if isinstance(result, str):
            out.append(name)
        elif isinstance(result, PairResult):
            if not result.clean or (result.judged and not result.passed):
                out.append(name)
        elif not result.passed:
            out.append(name)
    return out


def rows(results: dict[str, CaseResult]) -> list[tuple[str, ...]]:
    """One table row per case."""
    table: list[tuple[str, ...]] = []
    for name, result in results.items():
        if isinstance(result, PairResult):
            verdict = _verdict(result.passed) if result.judged else "figure"
            if not result.clean:
                verdict = "FAIL (errors)"
            table.append(
                (
                    f"{name} vs {result.ceiling}",
                    f"{result.median('requests_per_sec'):,.0f}",
                    format_ms(result.median("p50_ms")),
                    format_ms(result.median("p99_ms")),
                    f"{result.median('requests_per_sec', ceiling=True):,.0f}",
                    f"{result.ratio:.2f}x",
                    DASH if result.target is None else f"≥ {result.target:.2f}x",
                    verdict,
                )
            )
        elif isinstance(result, StampedeResult):
            table.append(
                (
                    f"{name} ({result.requests} on 1 key)",
                    DASH,
                    DASH,
                    f"{result.elapsed_s:.2f} s all",
                    DASH,
                    f"{result.upstream_calls} call(s)",
                    "== 1 call",
                    _verdict(result.passed),
                )
            )
        elif isinstance(result, MemoryResult):
            table.append(
                (
                    f"{name} ({result.keys // 1000}k keys)",
                    f"{result.flood_req_per_sec:,.0f}",
                    DASH,
                    DASH,
                    DASH,
                    f"+{result.growth_kib / MIB:.1f} MiB",
                    f"≤ {result.bound_kib / MIB:.1f} MiB",
                    _verdict(result.passed),
                )
            )
        elif isinstance(result, FleetCallsResult):
            table.append(
                (
                    f"{name} ({result.replicas} replicas, {result.topology})",
                    DASH,
                    DASH,
                    DASH,
                    DASH,
                    f"{result.stampede_calls} / {result.in_turn.total} / {result.at_once.total}"
                    " calls",
                    f"== 1 / {result.keys} / {result.keys}",
                    _verdict(result.passed),
                )
            )
        elif isinstance(result, SwrResult):
            table.append(
                (
                    f"{name} (stale vs miss)",
                    DASH,
                    format_ms(result.stale_p50_ms),
                    format_ms(percentile(result.stale_ms, 0.99)),
                    DASH,
                    f"{result.ratio:.3f}x p50",
                    DASH,
                    _verdict(result.passed),
                )
            )
        else:
            table.append((name, DASH, DASH, DASH, DASH, DASH, DASH, "ERROR"))
    return table


def table(results: dict[str, CaseResult]) -> str:
    """The results as an aligned text table, with each case's notes under it."""
    body = rows(results)
    widths = [max(len(row[i]) for row in (COLUMNS, *body)) for i in range(len(COLUMNS))]

    def line(row: tuple[str, ...]) -> str:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        return "  ".join(cells).rstrip()

    out = [line(COLUMNS), "  ".join("-" * w for w in widths)]
    out += [line(row) for row in body]
    out.append("")
    out += [f"{name}: {note}" for name, result in results.items() for note in notes(result)]
    return "\n".join(out)


def notes(result: CaseResult) -> list[str]:
    """The lines that explain a row."""
    if isinstance(result, str):
        return [f"error: {result}"]
    if isinstance(result, PairResult):
        ceiling = (
            f"ceiling p50 {format_ms(result.median('p50_ms', ceiling=True))},"
            f" p99 {format_ms(result.median('p99_ms', ceiling=True))}"
        )
        errors = [
            f"{run.server} round {run.round}: {run.result.non_2xx} non-2xx,"
            f" {run.result.socket_errors} socket errors"
            for run in result.runs
            if not run.result.clean
        ]
        share, ceiling_share = (
            result.median("server_share", ceiling=side) for side in (False, True)
        )
        cpu = (
            f"server CPU per request: {result.median('cpu_us_per_request'):.0f} us vs the"
            f" ceiling's {result.median('cpu_us_per_request', ceiling=True):.0f} us"
            f" (ratio {result.cpu_ratio:.2f}x; the server had {share:.0%} / {ceiling_share:.0%}"
            " of its core)"
        )
        starved = [
            f"the {name} got only {value:.1%} of its core (the load side or another process"
            " held it back): trust the CPU ratio over the req/s ratio"
            for name, value in ((result.case, share), (result.ceiling, ceiling_share))
            if value < SATURATED
        ]
        return [ceiling, cpu, *starved, *result.notes, *errors]
    if isinstance(result, StampedeResult):
        return [
            f"upstream delayed {result.delay_s:g} s once; statuses {result.statuses},"
            f" {result.collapsed} answered 'collapsed'"
        ]
    if isinstance(result, FleetCallsResult):
        return fleet_calls_notes(result)
    if isinstance(result, SwrResult):
        return swr_notes(result)
    return [
        f"RSS idle {result.rss_idle_kib / MIB:.1f} MiB, after {result.warm_keys} keys"
        f" {result.rss_warm_kib / MIB:.1f}, at {result.entries_full} entries"
        f" {result.rss_full_kib / MIB:.1f}, after {result.keys} keys"
        f" {result.rss_after_kib / MIB:.1f} (peak {result.hwm_kib / MIB:.1f});"
        f" entries at the end {result.entries_after}",
        f"~{result.per_entry_bytes / 1024:.1f} KiB per cached entry; bound = warm-up growth"
        f" + {result.cache_bound} entries x per-entry x {1 + result.tolerance:g};"
        f" {result.errors} failed requests",
    ]


def fleet_calls_notes(result: FleetCallsResult) -> list[str]:
    """The lines under the fleet's upstream calls."""
    lines = [
        f"{result.calls_per_key:.2f} upstream calls per key over the three parts (the bar: 1),"
        f" {result.replicas} replicas sharing {result.topology}",
        f"stampede: {result.stampede_requests} requests at once on one new key, spread over"
        f" {result.replicas} replicas, upstream delayed {result.stampede_delay_s:g} s once:"
        f" {result.stampede_calls} upstream call(s), statuses {result.stampede_statuses},"
        f" {result.stampede_elapsed_s:.2f} s; {listed(result.stampede_outcomes)}",
    ]
    for label, reads in (("in turn", result.in_turn), ("at once", result.at_once)):
        spread = dict(sorted(Counter(reads.calls.values()).items()))
        lines.append(
            f"{result.keys} new keys each read once on every replica, {label}:"
            f" {reads.total} upstream calls (keys by calls: {spread}), statuses"
            f" {reads.statuses}; {listed(reads.outcomes)}"
        )
    failures = listed(result.shared_failures) if result.shared_failures else "none"
    lines.append(f"shared-layer operations that failed, over the replicas: {failures}")
    lines.append(f"the replicas ran with GATEWAY_REDIS_TIMEOUT_SECONDS={result.redis_timeout_s:g}")
    return lines


def listed(counts: dict[str, int]) -> str:
    """`kind count, kind count, ...`."""
    return ", ".join(f"{kind} {count}" for kind, count in counts.items())


def swr_notes(result: SwrResult) -> list[str]:
    """The lines under stale-while-revalidate."""
    stale, misses, hits = len(result.stale_ms), len(result.miss_ms), len(result.hit_ms)
    return [
        f"{stale} requests to entries expired under GATEWAY_CACHE_TTL_SECONDS={result.ttl_s:g},"
        f" within GATEWAY_STALE_WHILE_REVALIDATE_SECONDS={result.window_s:g}:"
        f" {_p(result.stale_ms)};"
        f" {misses} misses: {_p(result.miss_ms)} (every upstream answer delayed"
        f" {result.delay_s:g} s); {hits} fresh hits: {_p(result.hit_ms)}; {result.concurrency}"
        " requests at a time, one replica in fleet mode",
        f"{result.stale_answers} of {stale} answered stale at once (hit; ttl=-N, max-age=0),"
        f" e.g. {result.example}; upstream refreshes per stale key: {result.refreshes};"
        f" miss statuses {result.miss_statuses}",
    ]


def _p(values: list[float]) -> str:
    return f"p50 {format_ms(percentile(values, 0.5))}, p99 {format_ms(percentile(values, 0.99))}"


def to_json(result: CaseResult) -> dict[str, Any]:
    """A case's raw numbers and the figures derived from them."""
    if isinstance(result, str):
        return {"error": result}
    data: dict[str, Any] = asdict(result)
    if isinstance(result, PairResult):
        data["median"] = {
            side: {
                attr: result.median(attr, ceiling=side == "ceiling")
                for attr in ("requests_per_sec", "p50_ms", "p99_ms", "cpu_us_per_request")
            }
            for side in ("case", "ceiling")
        }
        for run, raw in zip(result.runs, data["runs"], strict=True):
            raw.update(cpu_us_per_request=run.cpu_us_per_request, server_share=run.server_share)
        data.update(
            ratio=result.ratio, cpu_ratio=result.cpu_ratio, clean=result.clean, passed=result.passed
        )
    elif isinstance(result, StampedeResult):
        data["statuses"] = {str(k): v for k, v in result.statuses.items()}
        data["passed"] = result.passed
    elif isinstance(result, FleetCallsResult):
        data["stampede_statuses"] = {str(k): v for k, v in result.stampede_statuses.items()}
        for name, reads in (("in_turn", result.in_turn), ("at_once", result.at_once)):
            data[name]["statuses"] = {str(k): v for k, v in reads.statuses.items()}
            data[name]["total"] = reads.total
        data.update(calls_per_key=result.calls_per_key, passed=result.passed)
    elif isinstance(result, SwrResult):
        data["refreshes"] = {str(k): v for k, v in result.refreshes.items()}
        data["miss_statuses"] = {str(k): v for k, v in result.miss_statuses.items()}
        data.update(
            stale_p50_ms=result.stale_p50_ms,
            stale_p99_ms=percentile(result.stale_ms, 0.99),
            miss_p50_ms=result.miss_p50_ms,
            miss_p99_ms=percentile(result.miss_ms, 0.99),
            hit_p50_ms=percentile(result.hit_ms, 0.5),
            ratio=result.ratio,
            passed=result.passed,
        )
    else:
        data.update(
            per_entry_bytes=result.per_entry_bytes,
            growth_kib=result.growth_kib,
            bound_kib=result.bound_kib,
            ratio=result.ratio,
            passed=result.passed,
        )
    return data


def write_json(path: Path, header: dict[str, Any], results: dict[str, CaseResult]) -> None:
    """Write the whole run as JSON."""
    document = {**header, "cases": {name: to_json(result) for name, result in results.items()}}
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def chart_bars(results: dict[str, CaseResult]) -> list[tuple[str, float, float | None, bool]]:
    """(label, value, target or None, passed) per case with a ratio to chart."""
    bars: list[tuple[str, float, float | None, bool]] = []
    for name, result in results.items():
        if isinstance(result, PairResult):
            bound = "figure" if result.target is None else f"≥ {result.target:g}"
            label = f"{name} / {result.ceiling} ({bound})"
            bars.append((label, result.ratio, result.target, result.passed))
        elif isinstance(result, StampedeResult):
            bars.append((f"{name}: upstream calls (== 1)", result.upstream_calls, 1, result.passed))
        elif isinstance(result, MemoryResult):
            bars.append((f"{name}: growth / bound (≤ 1)", result.ratio, 1, result.passed))
        elif isinstance(result, FleetCallsResult):
            label = f"{name}: upstream calls per key (== 1)"
            bars.append((label, result.calls_per_key, 1, result.passed))
        elif isinstance(result, SwrResult):
            label = f"{name}: stale p50 / miss p50 (figure)"
            bars.append((label, result.ratio, None, result.passed))
    return bars


def _charted(results: dict[str, CaseResult]) -> list[CaseResult]:
    return [result for result in results.values() if not isinstance(result, str)]


def write_chart(path: Path, results: dict[str, CaseResult], title: str) -> None:
    """Horizontal bars of each case's ratio, its target as a line across the bar."""
    bars = chart_bars(results)
    if not bars:
        return
    figure, axes = plt.subplots(figsize=(9, 0.8 * len(bars) + 1.6))
    positions = list(range(len(bars)))[::-1]
    values = [value for _, value, _, _ in bars]
    colours = ["tab:green" if passed else "tab:red" for *_, passed in bars]
    axes.barh(positions, values, color=colours, height=0.6)
    for y, (_, value, target, _) in zip(positions, bars, strict=True):
        if target is not None:
            axes.vlines(target, y - 0.4, y + 0.4, colors="black", linestyles="--", linewidth=1.5)
        axes.text(value, y, f" {value:.2f}", va="center")
    cpu = [
        (y, result.cpu_ratio)
        for y, result in zip(positions, _charted(results), strict=True)
        if isinstance(result, PairResult)
    ]
    if cpu:
        axes.scatter(
            [x for _, x in cpu],
            [y for y, _ in cpu],
            marker="D",
            color="black",
            zorder=3,
            label="same, by server CPU per request",
        )
        axes.legend(loc="lower right", fontsize=8)
    axes.set_yticks(positions, [label for label, *_ in bars])
    targets = [t for _, _, t, _ in bars if t is not None]
    axes.set_xlim(0, max([*values, *(x for _, x in cpu), *targets]) * 1.2)
    axes.set_xlabel("ratio (dashed: target; green: met)")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
