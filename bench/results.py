"""What the cases measure, and the targets set for them (see README.md)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

# Ratio to the ceiling each throughput case must reach (a pair not listed is a figure only).
TARGETS: dict[str, float] = {
    "rest_hit": 0.65,
    "graphql_hit": 0.55,
    "graphql_tuning": 1.10,
    "miss": 1.50,
    "fleet_hit": 0.95,
    "traced_hit": 0.70,
}


@dataclass(frozen=True, slots=True)
class WrkResult:
    """One wrk run, as wrk reports it."""

    requests_per_sec: float
    p50_ms: float
    p99_ms: float
    requests: int
    duration_s: float
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def clean(self) -> bool:
        """Whether every request got a 2xx/3xx answer and no socket failed."""
        return self.non_2xx == 0 and self.socket_errors == 0


@dataclass(frozen=True, slots=True)
class Run:
    """One measured wrk run of one side of a pair, with what the cores did meanwhile."""

    server: str
    round: int
    command: str
    result: WrkResult
    # CPU seconds the server process used during the run.
    server_cpu_s: float = 0.0
    # Fractions of the server's and the load side's cores busy (any process) during the run.
    server_core_busy: float = 0.0
    load_core_busy: float = 0.0

    @property
    def cpu_us_per_request(self) -> float:
        """Server CPU per request: robust to other processes stealing the core."""
        requests = self.result.requests
        return self.server_cpu_s * 1e6 / requests if requests else 0.0

    @property
    def server_share(self) -> float:
        """How much of a core the server got: below ~0.9, something else ran there."""
        duration = self.result.duration_s
        return self.server_cpu_s / duration if duration else 0.0


def _value(run: Run, attribute: str) -> float:
    """A Run attribute, or else its WrkResult's."""
    source: object = run if hasattr(run, attribute) else run.result
    return float(getattr(source, attribute))


@dataclass(slots=True)
class PairResult:
    """A case and its ceiling, alternated A B A B; medians and the ratio of the medians."""

    case: str
    ceiling: str
    target: float | None  # None: a figure to report, no bar to meet
    runs: list[Run] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    goal: bool | None = None
    """Whether a goal of the case's own, beside the ratio, was met (graphql_worst's CPU a
    request); None: the case has none, and its ratio's target decides."""

    def _median(self, server: str, attribute: str) -> float:
        values = sorted(_value(run, attribute) for run in self.runs if run.server == server)
        if not values:
            return 0.0
        middle = len(values) // 2
        if len(values) % 2:
            return values[middle]
        return (values[middle - 1] + values[middle]) / 2

    def median(self, attribute: str, *, ceiling: bool = False) -> float:
        """The median of a Run or WrkResult attribute over the case's (or ceiling's) runs."""
        return self._median(self.ceiling if ceiling else self.case, attribute)

    @property
    def ratio(self) -> float:
        """The case's median req/s over the ceiling's."""
        ceiling = self.median("requests_per_sec", ceiling=True)
        return self.median("requests_per_sec") / ceiling if ceiling else 0.0

    @property
    def cpu_ratio(self) -> float:
        """The ceiling's median CPU per request over the case's: the ratio without the noise."""
        case = self.median("cpu_us_per_request")
        return self.median("cpu_us_per_request", ceiling=True) / case if case else 0.0

    @property
    def clean(self) -> bool:
        """Whether no run saw errors (an error answer is not a fair req/s)."""
        return all(run.result.clean for run in self.runs)

    @property
    def judged(self) -> bool:
        """Whether the case has a bar to meet (a target ratio or a goal of its own)."""
        return self.target is not None or self.goal is not None

    @property
    def passed(self) -> bool:
        """Goal or target (if any) met on clean runs."""
        if self.goal is not None:
            return self.clean and self.goal
        return self.clean and (self.target is None or self.ratio >= self.target)


@dataclass(frozen=True, slots=True)
class StampedeResult:
    """Concurrent misses on one key while its upstream answer is delayed."""

    requests: int
    delay_s: float
    upstream_calls: int
    statuses: dict[int, int]
    collapsed: int
    elapsed_s: float

    @property
    def passed(self) -> bool:
        """One upstream call, and every caller got its 200."""
        return self.upstream_calls == 1 and self.statuses == {200: self.requests}


@dataclass(frozen=True, slots=True)
class MemoryResult:
    """RSS of a fresh gateway before, while and after a flood of unique keys."""

    keys: int
    cache_bound: int
    warm_keys: int
    rss_idle_kib: int
    rss_warm_kib: int
    rss_full_kib: int
    rss_after_kib: int
    hwm_kib: int
    entries_warm: int
    entries_full: int
    entries_after: int
    tolerance: float
    flood_req_per_sec: float
    errors: int

    @property
    def per_entry_bytes(self) -> float:
        """RSS growth per cached entry while the cache fills (warm-up excluded)."""
        entries = self.entries_full - self.entries_warm
        return (self.rss_full_kib - self.rss_warm_kib) * 1024 / entries if entries > 0 else 0.0

    @property
    def growth_kib(self) -> int:
        """Peak RSS (VmHWM) over RSS at idle."""
        return self.hwm_kib - self.rss_idle_kib

    @property
    def bound_kib(self) -> float:
        """Warm-up growth plus what a full cache of measured entries explains, with tolerance."""
        cache_kib = self.cache_bound * self.per_entry_bytes / 1024
        return (self.rss_warm_kib - self.rss_idle_kib) + cache_kib * (1 + self.tolerance)

    @property
    def ratio(self) -> float:
        """Peak growth over the bound: at most 1 passes."""
        return self.growth_kib / self.bound_kib if self.bound_kib > 0 else float("inf")

    @property
    def passed(self) -> bool:
        """Growth explained by the bounded cache, and no request failed."""
        return self.errors == 0 and self.ratio <= 1.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of `values` (0.5: the median); 0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class KeyReads:
    """New keys each read once on every replica: the upstream calls per key, the statuses,
    and how Cache-Status said the shared layer answered."""

    calls: dict[str, int]
    statuses: dict[int, int]
    outcomes: dict[str, int]

    @property
    def total(self) -> int:
        """Upstream calls for all the keys (the goal: one per key)."""
        return sum(self.calls.values())

    def passed(self, replicas: int) -> bool:
        """One upstream call per key, and every read a 200."""
        return all(calls == 1 for calls in self.calls.values()) and self.statuses == {
            200: len(self.calls) * replicas
        }


@dataclass(frozen=True, slots=True)
class FleetCallsResult:
    """Upstream calls made by replicas sharing one layer, counted at the emulator:
    a stampede on one new key spread over the replicas, then new keys read on every replica,
    one replica after the other (`in_turn`) and all at once (`at_once`)."""

    replicas: int
    stampede_requests: int
    stampede_delay_s: float
    stampede_calls: int
    stampede_statuses: dict[int, int]
    stampede_elapsed_s: float
    stampede_outcomes: dict[str, int]
    keys: int
    in_turn: KeyReads
    at_once: KeyReads
    # Shared-layer operations that did not succeed, by outcome, over every replica.
    shared_failures: dict[str, int]
    # The replicas' GATEWAY_REDIS_TIMEOUT_SECONDS.
    redis_timeout_s: float = 0.1
    # The shared layer: one redis-server or a cluster (see bench.context.Topology).
    topology: str = "one redis-server"

    @property
    def calls_per_key(self) -> float:
        """Upstream calls per key over the three parts (the goal: 1)."""
        calls = self.stampede_calls + self.in_turn.total + self.at_once.total
        return calls / (1 + 2 * self.keys)

    @property
    def passed(self) -> bool:
        """One upstream call per key for the whole fleet, and every answer a 200."""
        return (
            self.stampede_calls == 1
            and self.stampede_statuses == {200: self.stampede_requests}
            and self.in_turn.passed(self.replicas)
            and self.at_once.passed(self.replicas)
        )


@dataclass(frozen=True, slots=True)
class SwrResult:
    """Latency of a request to an expired entry answered stale at once, against a miss that
    waits for the same delayed upstream answer; every latency in milliseconds."""

    delay_s: float
    ttl_s: float
    window_s: float
    concurrency: int
    stale_ms: list[float]
    miss_ms: list[float]
    # Fresh hits under the same client, for comparison (those that were fresh hits).
    hit_ms: list[float]
    # Stale answers with `hit; ttl=-N` and `max-age=0` (the rest: a wrong answer).
    stale_answers: int
    # Upstream calls per stale key after its stale answer: {calls: keys}; 1 refresh each.
    refreshes: dict[int, int]
    miss_statuses: dict[int, int]
    example: str

    @property
    def stale_p50_ms(self) -> float:
        """The median latency of the stale answers."""
        return percentile(self.stale_ms, 0.5)

    @property
    def miss_p50_ms(self) -> float:
        """The median latency of the misses."""
        return percentile(self.miss_ms, 0.5)

    @property
    def ratio(self) -> float:
        """The stale answer's median latency over the miss's."""
        return self.stale_p50_ms / self.miss_p50_ms if self.miss_p50_ms else 0.0

    @property
    def passed(self) -> bool:
        """Every stale request answered stale, one refresh per key, every miss a 200."""
        stale = len(self.stale_ms)
        return (
            stale > 0
            and self.stale_answers == stale
            and self.refreshes == {1: stale}
            and self.miss_statuses == {200: len(self.miss_ms)}
        )
