"""The benchmark harness's pure helpers: wrk's report, medians and ratios, the table.

No benchmark runs here: `make bench` measures speed, never a test.
"""

from __future__ import annotations

from typing import cast

import pytest

from bench import __main__ as cli
from bench import wrk
from bench.context import CLUSTER, STANDALONE, Bench, Topology
from bench.fleet import outcome_kind
from bench.report import CaseResult, failed, format_ms, rows
from bench.results import KeyReads, MemoryResult, PairResult, Run, StampedeResult, WrkResult

WRK_REPORT = """\
Running 8s test @ http://127.0.0.1:40001/v1/voice-connectors/bench/proxy-sessions/hit
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.40ms  402.08us   1.02s    90.12%
    Req/Sec    14.59k   456.30    15.15k    88.75%
  Latency Distribution
     50%  812.00us
     75%    4.50ms
     90%    4.71ms
     99%    1.02s
  116185 requests in 8.00s, 60.83MB read
  Non-2xx or 3xx responses: 12
  Socket errors: connect 0, read 1, write 0, timeout 3
Requests/sec:  14520.50
Transfer/sec:      7.60MB
"""


@pytest.mark.parametrize(
    ("text", "ms"),
    [("812.00us", 0.812), ("4.50ms", 4.5), ("1.02s", 1020.0), ("1.50m", 90_000.0)],
)
def test_wrk_durations_are_read_in_every_unit(text: str, ms: float) -> None:
    assert wrk.parse_duration_ms(text) == pytest.approx(ms)


def test_a_wrk_report_gives_rate_percentiles_and_errors() -> None:
    result = wrk.parse_output(WRK_REPORT)

    assert result.requests_per_sec == 14520.5
    assert result.p50_ms == pytest.approx(0.812)
    assert result.p99_ms == pytest.approx(1020.0)
    assert (result.requests, result.duration_s) == (116185, 8.0)
    assert (result.non_2xx, result.socket_errors) == (12, 4)
    assert not result.clean


def test_a_clean_report_has_no_error_lines() -> None:
    text = "\n".join(
        line for line in WRK_REPORT.splitlines() if not line.strip().startswith(("Non", "Socket"))
    )

    assert wrk.parse_output(text).clean


def test_a_report_without_latency_distribution_is_refused() -> None:
    text = WRK_REPORT.split("  Latency Distribution", maxsplit=1)[0] + "Requests/sec:  10.00\n"

    with pytest.raises(wrk.WrkError, match="--latency"):
        wrk.parse_output(text)


def test_the_wrk_command_carries_headers_and_script() -> None:
    argv = wrk.command(
        "http://127.0.0.1:1/x",
        duration=8,
        connections=64,
        threads=1,
        headers={"Authorization": "Bearer t"},
        script=None,
    )

    assert argv[:5] == ["wrk", "-t1", "-c64", "-d8s", "--latency"]
    assert argv[5:] == ["-H", "Authorization: Bearer t", "http://127.0.0.1:1/x"]


def test_lua_long_strings_survive_closing_brackets() -> None:
    assert wrk.lua_string('{"a": [[1]]}') == '[=[{"a": [[1]]}]=]'
    assert wrk.lua_string("plain") == "[[plain]]"


def test_the_fresh_key_script_builds_a_new_path_per_request() -> None:
    script = wrk.fresh_key_script("/v1/voice-connectors/bench/proxy-sessions/", "ab12")

    assert "request = function()" in script
    assert "counter = counter + 1" in script
    assert "[[ab12]]" in script


def _run(server: str, rps: float, cpu_s: float = 1.0) -> Run:
    result = WrkResult(rps, 1.0, 2.0, requests=int(rps * 8), duration_s=8.0)
    return Run(server, 1, "wrk", result, server_cpu_s=cpu_s)


def test_the_ratio_is_of_the_medians_of_alternated_runs() -> None:
    pair = PairResult("rest_hit", "bare_asgi", 0.4)
    pair.runs += [_run("rest_hit", 4000), _run("bare_asgi", 10000), _run("rest_hit", 5000)]
    pair.runs += [_run("bare_asgi", 12000), _run("rest_hit", 100)]

    assert pair.median("requests_per_sec") == 4000
    assert pair.median("requests_per_sec", ceiling=True) == 11000
    assert pair.ratio == pytest.approx(4000 / 11000)
    assert not pair.passed


def test_cpu_per_request_gives_a_ratio_robust_to_a_starved_core() -> None:
    pair = PairResult("miss", "bare_aioboto3", 1.1)
    pair.runs += [_run("miss", 500, cpu_s=8.0), _run("bare_aioboto3", 800, cpu_s=6.4)]

    assert pair.runs[0].cpu_us_per_request == pytest.approx(2000)
    assert pair.runs[0].server_share == pytest.approx(1.0)
    assert pair.cpu_ratio == pytest.approx(1000 / 2000)


def test_a_pair_with_error_answers_fails_whatever_its_ratio() -> None:
    pair = PairResult("rest_hit", "bare_asgi", 0.4)
    broken = WrkResult(9000, 1.0, 2.0, 72000, 8.0, non_2xx=72000)
    pair.runs += [Run("rest_hit", 1, "wrk", broken), _run("bare_asgi", 10000)]

    assert pair.ratio == pytest.approx(0.9)
    assert not pair.passed


def test_a_case_fails_when_it_misses_its_bar_and_the_table_says_so() -> None:
    worst = PairResult("graphql_worst", "graphql_hit", None, goal=False)  # over its CPU goal
    worst.runs += [_run("graphql_worst", 40), _run("graphql_hit", 12000)]
    figure = PairResult("traced_hit_sampled", "untraced_hit", None)
    figure.runs += [_run("traced_hit_sampled", 10), _run("untraced_hit", 12000)]
    met = PairResult("rest_hit", "bare_asgi", 0.4)
    met.runs += [_run("rest_hit", 8000), _run("bare_asgi", 10000)]
    missed = PairResult("miss", "bare_aioboto3", 1.5)
    missed.runs += [_run("miss", 1000), _run("bare_aioboto3", 1000)]
    results: dict[str, CaseResult] = {
        "graphql_worst": worst,
        "traced_hit_sampled": figure,
        "rest_hit": met,
        "miss": missed,
        "stampede": "RuntimeError: broke",
    }

    assert failed(results) == ["graphql_worst", "miss", "stampede"]
    verdicts = {row[0].split(" vs ")[0]: row[-1] for row in rows(results)}
    assert verdicts["graphql_worst"] == "FAIL"
    assert verdicts["traced_hit_sampled"] == "figure"
    assert verdicts["rest_hit"] == "pass"
    assert verdicts["miss"] == "FAIL"


def _memory(hwm_mib: float) -> MemoryResult:
    mib = 1024
    return MemoryResult(
        keys=20_000,
        cache_bound=10_000,
        warm_keys=1_000,
        rss_idle_kib=100 * mib,
        rss_warm_kib=110 * mib,
        rss_full_kib=110 * mib + 9_000 * 5,  # 5 KiB per entry while filling
        rss_after_kib=int(hwm_mib * mib),
        hwm_kib=int(hwm_mib * mib),
        entries_warm=1_000,
        entries_full=10_000,
        entries_after=10_000,
        tolerance=0.15,
        flood_req_per_sec=500.0,
        errors=0,
    )


def test_memory_growth_is_bounded_by_warm_up_plus_a_full_cache() -> None:
    bounded = _memory(hwm_mib=110 + 50)
    unbounded = _memory(hwm_mib=110 + 2 * 50)

    assert bounded.per_entry_bytes == pytest.approx(5 * 1024)
    assert bounded.bound_kib == pytest.approx(10 * 1024 + 10_000 * 5 * 1.15)
    assert bounded.passed
    assert not unbounded.passed


def test_stampede_passes_only_on_one_call_and_all_answers_200() -> None:
    assert StampedeResult(200, 0.5, 1, {200: 200}, 199, 0.6).passed
    assert not StampedeResult(200, 0.5, 2, {200: 200}, 198, 0.6).passed
    assert not StampedeResult(200, 0.5, 1, {200: 199, 503: 1}, 198, 0.6).passed


def test_the_table_has_a_row_per_case_and_marks_errors() -> None:
    pair = PairResult("rest_hit", "bare_asgi", 0.4)
    pair.runs += [_run("rest_hit", 5000), _run("bare_asgi", 10000)]

    table = rows({"rest_hit": pair, "miss": "RuntimeError: gateway exited"})

    assert table[0][0] == "rest_hit vs bare_asgi"
    assert table[0][5:] == ("0.50x", "≥ 0.40x", "pass")
    assert table[1][-1] == "ERROR"


@pytest.mark.parametrize(("ms", "shown"), [(0.25, "250 µs"), (4.5, "4.50 ms"), (1500, "1.50 s")])
def test_latencies_are_shown_in_a_readable_unit(ms: float, shown: str) -> None:
    assert format_ms(ms) == shown


def test_fleet_outcomes_name_the_layer_that_answered() -> None:
    assert outcome_kind("proxy-gateway-shared; hit; ttl=25, proxy-gateway; fwd=miss; stored") == (
        "shared: hit"
    )
    assert outcome_kind(
        "proxy-gateway-shared; fwd=miss; collapsed, proxy-gateway; fwd=miss; stored"
    ) == ("shared: fwd=miss; collapsed")
    assert outcome_kind("proxy-gateway; hit; ttl=3") == "local: hit"


def test_key_reads_pass_only_with_one_call_a_key_and_every_answer_a_200() -> None:
    good = KeyReads({"a": 1, "b": 1}, {200: 8}, {})
    twice = KeyReads({"a": 1, "b": 2}, {200: 8}, {})
    failed = KeyReads({"a": 1, "b": 1}, {200: 7, 502: 1}, {})

    assert good.passed(replicas=4)
    assert good.total == 2
    assert not twice.passed(replicas=4)
    assert not failed.passed(replicas=4)


def test_a_topology_names_its_layer_and_the_rows_measured_on_it() -> None:
    assert (STANDALONE.suffix, STANDALONE.described) == ("", "one redis-server")
    assert (CLUSTER.suffix, CLUSTER.described) == ("_cluster", "a 3-master cluster")


def test_the_fleet_cases_compared_across_topologies_run_once_on_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[Topology] = []

    def case(bench: Bench, topology: Topology) -> str:
        seen.append(topology)
        return topology.name

    monkeypatch.setitem(cli.ACROSS_TOPOLOGIES, "fleet_calls", case)
    planned = cli.runs("fleet_calls")
    results = {name: run(cast(Bench, None)) for name, run in planned}

    assert results == {"fleet_calls": "standalone", "fleet_calls_cluster": "cluster"}
    assert seen == [STANDALONE, CLUSTER]
    assert [name for name, _ in cli.runs("fleet_l2_hit")] == [
        "fleet_l2_hit",
        "fleet_l2_hit_cluster",
    ]
    assert [name for name, _ in cli.runs("fleet_hit")] == ["fleet_hit"]
