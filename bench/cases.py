"""The wrk cases: the gateway and its ceiling started fresh, alternated A B A B."""

from __future__ import annotations

import json
import secrets
import shlex
from pathlib import Path
from typing import Any

import httpx

from app.graphql.limits import Limits
from app.settings import Settings
from bench import documents, wrk
from bench.context import FULL_QUERY, HIT_PS, MISS_PREFIX, SESSION_PATH, VC, Bench
from bench.processes import core_times, process_cpu_seconds, start_ceiling
from bench.results import TARGETS, PairResult, Run
from harness.servers import Server


def run_rest_hit(bench: Bench) -> PairResult:
    """GET the sample session (a cache hit after the first) against the bare ASGI ceiling."""
    gateway = bench.gateway("gateway-rest")
    try:
        ceiling, notes = _bare_ceiling(bench, gateway)
        try:
            url = gateway.url + SESSION_PATH.format(vc=VC, ps=HIT_PS)
            ceiling_url = ceiling.url + SESSION_PATH.format(vc=VC, ps=HIT_PS)
            result = pair(
                bench, "rest_hit", "bare_asgi", (gateway, url, None), (ceiling, ceiling_url, None)
            )
        finally:
            bench.stop(ceiling)
    finally:
        bench.stop(gateway)
    result.notes.extend(notes)
    return result


def run_graphql_hit(bench: Bench) -> PairResult:
    """POST the full query for the sample session against the same bare ASGI ceiling."""
    gateway = bench.gateway("gateway-graphql")
    try:
        ceiling, notes = _bare_ceiling(bench, gateway)
        try:
            body = json.dumps({"query": FULL_QUERY, "variables": {"vc": VC, "ps": HIT_PS}})
            data = _graphql_answer(bench, gateway, body, "the GraphQL query failed")
            if not data["data"]["proxySession"]:
                raise RuntimeError("the GraphQL query found no session")
            script = bench.path("graphql", ".lua")
            script.write_text(wrk.post_script(body), encoding="utf-8")
            ceiling_url = ceiling.url + SESSION_PATH.format(vc=VC, ps=HIT_PS)
            result = pair(
                bench,
                "graphql_hit",
                "bare_asgi",
                (gateway, f"{gateway.url}/graphql", script),
                (ceiling, ceiling_url, None),
            )
        finally:
            bench.stop(ceiling)
    finally:
        bench.stop(gateway)
    result.notes.extend(notes)
    result.notes.append("the ceiling is the bare ASGI answer to the REST hit's GET, as in rest_hit")
    return result


def run_miss(bench: Bench) -> PairResult:
    """A fresh key every request: gateway against a naive long-lived aioboto3 route."""
    gateway = bench.gateway("gateway-miss")
    try:
        ceiling = start_ceiling(
            bench.procs, "aioboto3", bench.emulator_url, bench.path("bare-aioboto3", ".log")
        )
        try:
            for server, headers in ((gateway, bench.auth), (ceiling, {})):
                probe = server.url + MISS_PREFIX + f"probe-{secrets.token_hex(4)}"
                httpx.get(probe, headers=headers).raise_for_status()
            result = pair(
                bench,
                "miss",
                "bare_aioboto3",
                (gateway, gateway.url + MISS_PREFIX, "fresh"),
                (ceiling, ceiling.url + MISS_PREFIX, "fresh"),
            )
        finally:
            bench.stop(ceiling)
    finally:
        bench.stop(gateway)
    result.notes.append("both sides make one real upstream call per request to the emulator")
    return result


def _graphql_answer(bench: Bench, server: Server, body: str, failure: str) -> dict[str, Any]:
    """POST `body` to the server's /graphql; its answer, or RuntimeError(`failure`) unless
    it is a 200 without errors."""
    reply = httpx.post(
        f"{server.url}/graphql",
        content=body,
        headers={**bench.auth, "Content-Type": "application/json"},
    )
    data = reply.json()
    if reply.status_code != 200 or not isinstance(data, dict) or data.get("errors"):
        raise RuntimeError(f"{failure}: {reply.status_code} {reply.text}")
    return data


def _bare_ceiling(bench: Bench, gateway: Server) -> tuple[Server, list[str]]:
    """Fetch a real REST hit from the gateway and start a bare ASGI app serving its bytes."""
    url = gateway.url + SESSION_PATH.format(vc=VC, ps=HIT_PS)
    with httpx.Client(headers=bench.auth) as client:
        client.get(url).raise_for_status()
        hit = client.get(url)
    hit.raise_for_status()
    if "; hit" not in hit.headers.get("cache-status", ""):
        raise RuntimeError(f"the second GET was not a cache hit: {hit.headers}")
    body, headers = bench.path("rest-hit", ".body"), bench.path("rest-hit", ".headers.json")
    body.write_bytes(hit.content)
    pairs = [[name.decode("latin-1"), value.decode("latin-1")] for name, value in hit.headers.raw]
    headers.write_text(json.dumps(pairs), encoding="utf-8")
    extra = ["--body", str(body), "--headers", str(headers)]
    ceiling = start_ceiling(
        bench.procs, "bare", bench.emulator_url, bench.path("bare-asgi", ".log"), extra
    )
    with httpx.Client() as client:
        mirror = client.get(url.replace(gateway.url, ceiling.url))
    note = (
        f"ceiling answers {len(mirror.content)} bytes with {len(mirror.headers.raw)} headers;"
        f" the gateway's hit {len(hit.content)} bytes with {len(hit.headers.raw)} headers"
    )
    if mirror.content != hit.content or len(mirror.headers.raw) != len(hit.headers.raw):
        note = "MISMATCH: " + note
    return ceiling, [note]


# The server, the URL wrk loads, and its script ("fresh": a new key every request).
Side = tuple[Server, str, Path | str | None]


def pair(
    bench: Bench,
    case: str,
    ceiling: str,
    case_side: Side,
    ceiling_side: Side,
    *,
    connections: int | None = None,
) -> PairResult:
    """Alternate the case and its ceiling (A B A B), each run after its own warm-up."""
    config = bench.config
    result = PairResult(case, ceiling, TARGETS.get(case))
    for round_ in range(1, config.rounds + 1):
        for name, (server, url, script) in ((case, case_side), (ceiling, ceiling_side)):
            for duration, measured in ((config.warmup, False), (config.duration, True)):
                argv = wrk.command(
                    url,
                    duration=duration,
                    connections=connections or config.connections,
                    threads=config.threads,
                    headers=bench.auth,
                    script=_script(bench, script),
                )
                cpu, cores = process_cpu_seconds(server.process.pid), _cores(bench)
                outcome = wrk.run(bench.procs, argv, duration)
                if not measured:
                    continue
                busy = [
                    _busy(before, after) for before, after in zip(cores, _cores(bench), strict=True)
                ]
                run = Run(
                    name,
                    round_,
                    shlex.join(argv).replace(bench.token, "<token>"),
                    outcome,
                    process_cpu_seconds(server.process.pid) - cpu,
                    *busy,
                )
                result.runs.append(run)
                print(
                    f"  {name:<14} round {round_}: {outcome.requests_per_sec:>9.0f} req/s,"
                    f" {run.cpu_us_per_request:>7.0f} us CPU/req, server had"
                    f" {run.server_share:.0%} of its core",
                    flush=True,
                )
    return result


def _cores(bench: Bench) -> list[tuple[int, int]]:
    pinning = bench.procs.pinning
    return [core_times(pinning.server), core_times(pinning.load)]


def _busy(before: tuple[int, int], after: tuple[int, int]) -> float:
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def _script(bench: Bench, script: Path | str | None) -> Path | None:
    if script != "fresh":
        return script if isinstance(script, Path) else None
    lua = bench.path("fresh-key", ".lua")
    lua.write_text(wrk.fresh_key_script(MISS_PREFIX, secrets.token_hex(4)), encoding="utf-8")
    return lua


WORST_CPU_MS = 5.0
"""The goal for the worst GraphQL document the limits admit: CPU per request."""


def _unique_documents_script(document: str) -> str:
    """A wrk script POSTing the worst document with a new comment each time: no cache of
    parsed documents or responses can answer it, as with a hostile client."""
    mark = "@@COUNTER@@"
    body = json.dumps({"query": f"# {mark}\n" + document})
    before, after = body.split(mark)
    return (
        f"local before = {wrk.lua_string(before)}\n"
        f"local after = {wrk.lua_string(after)}\n"
        "local counter = 0\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        "request = function()\n"
        "  counter = counter + 1\n"
        '  return wrk.format("POST", nil, nil, before .. counter .. after)\n'
        "end\n"
    )


def run_graphql_worst(bench: Bench) -> PairResult:
    """The worst admitted document, a new text every time (no cache of documents or of
    responses helps), against the cached full query on the same gateway."""
    settings = Settings()
    shape, document = documents.costliest(Limits.of(settings))
    gateway = bench.gateway("gateway-graphql-worst")
    try:
        _graphql_answer(
            bench, gateway, json.dumps({"query": document}), "the worst document was refused"
        )
        hit = json.dumps({"query": FULL_QUERY, "variables": {"vc": VC, "ps": HIT_PS}})
        _graphql_answer(bench, gateway, hit, "the GraphQL query failed")
        worst_script = bench.path("graphql-worst", ".lua")
        worst_script.write_text(_unique_documents_script(document), encoding="utf-8")
        hit_script = bench.path("graphql-hit", ".lua")
        hit_script.write_text(wrk.post_script(hit), encoding="utf-8")
        url = f"{gateway.url}/graphql"
        # Few connections: a costly request each, all within wrk's 2 s timeout.
        result = pair(
            bench,
            "graphql_worst",
            "graphql_hit",
            (gateway, url, worst_script),
            (gateway, url, hit_script),
            connections=4,
        )
    finally:
        bench.stop(gateway)
    cpu_ms = result.median("cpu_us_per_request") / 1000
    result.goal = cpu_ms <= WORST_CPU_MS
    verdict = "pass" if result.goal else "FAIL"
    result.notes.append(
        f"worst admitted document: {shape}, {settings.graphql_max_fields} fields,"
        f" {cpu_ms:.2f} ms of CPU a request (goal ≤ {WORST_CPU_MS:g} ms): {verdict}"
    )
    return result


def run_graphql_tuning(bench: Bench) -> PairResult:
    """The same full-path GraphQL request on a gateway with `GATEWAY_GRAPHQL_TUNING` on (each
    document parsed and validated once) and one with it off (strawberry parses and validates
    every request): what the strawberry and graphql-core seams buy.

    The request asks to revalidate (`Cache-Control: no-cache`), so the fast path passes it
    to strawberry; the revalidation floor answers it from the session cache but once a
    second (`GATEWAY_REVALIDATE_MIN_INTERVAL_SECONDS`)."""
    tuned = untuned = None
    try:
        tuned = bench.gateway("gateway-graphql-tuned")
        untuned = bench.gateway("gateway-graphql-untuned", {"GATEWAY_GRAPHQL_TUNING": "off"})
        body = json.dumps({"query": FULL_QUERY, "variables": {"vc": VC, "ps": HIT_PS}})
        for server in (tuned, untuned):
            _graphql_answer(bench, server, body, "the GraphQL query failed")
        script = bench.path("graphql-revalidating", ".lua")
        script.write_text(
            wrk.post_script(body) + 'wrk.headers["Cache-Control"] = "no-cache"\n', encoding="utf-8"
        )
        # Few connections: an untuned request costs milliseconds, all within wrk's 2 s timeout.
        result = pair(
            bench,
            "graphql_tuning",
            "graphql_untuned",
            (tuned, f"{tuned.url}/graphql", script),
            (untuned, f"{untuned.url}/graphql", script),
            connections=4,
        )
    finally:
        bench.stop(*(server for server in (tuned, untuned) if server is not None))
    result.notes.append(
        "graphql_tuning: the full query through strawberry, answered from the session cache"
    )
    return result
