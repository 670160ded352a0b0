"""Trusted documents (persisted operations) over the wire: a manifest in the forms GraphQL
Codegen's client preset and Apollo's `generate-persisted-query-manifest` write, requests by
`documentId` or `extensions.persistedQuery`, persisted-only mode, and bad manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from app.graphql.response_cache import cache_key
from tests.conftest import GatewayFactory
from tests.graphql.refusals import no_upstream_call
from tests.support.servers import Emulator, Gateway, start_gateway

NAME = (
    "query SessionName($vc: ID!, $ps: ID!) {"
    " proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { id name } }"
)
STATUS = (
    "query SessionStatus($vc: ID!, $ps: ID!) {"
    " proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { status } }"
)
ADHOC = (
    "query Adhoc($vc: ID!, $ps: ID!) {"
    " proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { name } }"
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def codegen_manifest(*documents: str) -> dict[str, str]:
    """GraphQL Codegen's client preset (`persistedDocuments`): `{"sha256:<hash>": text}`."""
    return {f"sha256:{sha256(document)}": document for document in documents}


def apollo_manifest(*documents: str) -> dict[str, Any]:
    """Apollo's `generate-persisted-query-manifest` output."""
    return {
        "format": "apollo-persisted-query-manifest",
        "version": 1,
        "operations": [
            {"id": sha256(d), "name": d.split()[1].split("(")[0], "type": "query", "body": d}
            for d in documents
        ],
    }


@pytest.fixture(scope="module")
def manifests(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("manifests")
    files = {
        "codegen": codegen_manifest(NAME, STATUS),
        "apollo": apollo_manifest(NAME, STATUS),
    }
    paths = {}
    for name, content in files.items():
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(json.dumps(content), encoding="utf-8")
    return paths


@pytest.fixture(params=["codegen", "apollo"])
def persisted(
    request: pytest.FixtureRequest, gateway_factory: GatewayFactory, manifests: dict[str, Path]
) -> Gateway:
    return gateway_factory(graphql_persisted_documents_file=manifests[request.param])


@pytest.fixture
def persisted_only(gateway_factory: GatewayFactory, manifests: dict[str, Path]) -> Gateway:
    return gateway_factory(
        graphql_persisted_documents_file=manifests["codegen"], graphql_persisted_only=True
    )


def post(gateway: Gateway, body: dict[str, Any]) -> Any:
    return gateway.client.post("/graphql", json=body)


def test_a_document_is_run_by_its_id_in_every_form(
    persisted: Gateway, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    bodies: list[dict[str, Any]] = [
        {"documentId": sha256(NAME), "variables": variables},
        {"documentId": f"sha256:{sha256(NAME)}", "variables": variables},
        {
            "variables": variables,
            "extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(NAME)}},
        },
        {"query": NAME, "variables": variables},  # its text, as its id would be
    ]

    answers = [post(persisted, body) for body in bodies]

    assert {reply.status_code for reply in answers} == {200}
    names = [reply.json()["data"]["proxySession"]["name"] for reply in answers]
    assert names == ["order-1234"] * 4


def test_a_repeated_request_by_id_is_a_hit_with_the_same_bytes(
    persisted_only: Gateway, seeded: tuple[str, str]
) -> None:
    body = {"documentId": sha256(NAME), "variables": {"vc": seeded[0], "ps": seeded[1]}}
    requests = ["by-id-1", "by-id-2"]

    answers = [
        persisted_only.client.post("/graphql", json=body, headers={"X-Request-ID": request_id})
        for request_id in requests
    ]

    assert answers[0].content == answers[1].content
    records = persisted_only.wait_for_records(lambda r: r.get("request_id") in requests, 2)
    assert [r["cache"] for r in records] == ["miss", "hit"]


def test_the_response_cache_keys_a_document_by_its_id_and_never_mixes_id_and_text() -> None:
    texts = {sha256(NAME): NAME}

    def text_of(document_id: object) -> str | None:
        return texts.get(str(document_id).removeprefix("sha256:"))

    by_id = cache_key({"documentId": f"sha256:{sha256(NAME)}"}, text_of)
    apollo = cache_key(
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(NAME)}}}, text_of
    )

    assert by_id == apollo == cache_key({"query": NAME})
    assert cache_key({"documentId": sha256(ADHOC)}, text_of) is None  # not in the manifest
    assert cache_key({"query": NAME, "documentId": sha256(NAME)}, text_of) is None
    assert cache_key({"documentId": sha256(NAME)}) is None  # no manifest, no key


def test_an_unknown_id_is_refused_in_either_mode(
    persisted: Gateway, persisted_only: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    for gateway in (persisted, persisted_only):
        with no_upstream_call(emulator):
            reply = post(gateway, {"documentId": sha256(ADHOC), "variables": variables})
        assert reply.status_code == 400
        assert reply.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


def test_an_adhoc_query_runs_unless_persisted_only(
    persisted: Gateway, persisted_only: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}

    allowed = post(persisted, {"query": ADHOC, "variables": variables})
    with no_upstream_call(emulator):
        refused = post(persisted_only, {"query": ADHOC, "variables": variables})
    listed = post(persisted_only, {"query": STATUS, "variables": variables})
    by_id = post(persisted_only, {"documentId": sha256(STATUS), "variables": variables})

    assert allowed.json()["data"]["proxySession"]["name"] == "order-1234"
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_ONLY"
    assert listed.json() == by_id.json() == {"data": {"proxySession": {"status": "OPEN"}}}


def test_operations_are_counted_by_trusted_document(
    persisted_only: Gateway, gateway: Gateway, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    before = persisted_only.metric(
        "gateway_graphql_operations_total",
        operation_type="query",
        outcome="ok",
        document="SessionName",
    )
    adhoc = gateway.metric(
        "gateway_graphql_operations_total", operation_type="query", outcome="ok", document="adhoc"
    )

    post(persisted_only, {"documentId": sha256(NAME), "variables": variables})
    post(gateway, {"query": ADHOC, "variables": variables})

    assert (
        persisted_only.metric(
            "gateway_graphql_operations_total",
            operation_type="query",
            outcome="ok",
            document="SessionName",
        )
        == before + 1
    )
    assert (
        gateway.metric(
            "gateway_graphql_operations_total",
            operation_type="query",
            outcome="ok",
            document="adhoc",
        )
        == adhoc + 1
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "is not JSON"),
        (json.dumps({sha256(NAME): STATUS}), "is not the SHA-256 of its text"),
        (json.dumps(codegen_manifest("{ proxySession(")), "does not parse"),
        (json.dumps(codegen_manifest("query Bad { nothing }")), "(Bad) does not validate"),
        (json.dumps(["a list"]), "expected a JSON object"),
    ],
)
def test_a_bad_manifest_stops_the_process_with_one_line(
    emulator: Emulator, tmp_path: Path, content: str, says: str
) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(content, encoding="utf-8")
    log = tmp_path / "stdout.log"
    env = {"GATEWAY_GRAPHQL_PERSISTED_DOCUMENTS_FILE": str(manifest)}
    gateway = start_gateway(emulator.url, log, env, wait=False)

    code = gateway.process.wait(timeout=30)
    lines = [line for line in log.read_text().splitlines() if line.startswith("invalid")]

    assert code == 2
    assert len(lines) == 1
    assert lines[0].startswith("invalid persisted documents: ")
    assert says in lines[0]


def test_persisted_only_without_a_manifest_is_a_settings_error(
    emulator: Emulator, tmp_path: Path
) -> None:
    log = tmp_path / "stdout.log"
    gateway = start_gateway(
        emulator.url, log, {"GATEWAY_GRAPHQL_PERSISTED_ONLY": "true"}, wait=False
    )

    assert gateway.process.wait(timeout=30) == 2
    assert "GATEWAY_GRAPHQL_PERSISTED_ONLY needs GATEWAY_GRAPHQL_PERSISTED_DOCUMENTS_FILE" in (
        log.read_text()
    )


def get(gateway: Gateway, params: dict[str, str], **headers: str) -> Any:
    return gateway.client.get("/graphql", params=params, headers=headers)


def test_a_persisted_query_by_get_is_cacheable_like_the_rest_door(
    persisted_only: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    params = {
        "documentId": sha256(NAME),
        "variables": json.dumps({"vc": seeded[0], "ps": seeded[1]}),
    }

    first = get(persisted_only, params)
    again = get(persisted_only, params, **{"If-None-Match": first.headers["etag"]})
    modern = get(
        persisted_only,
        params,
        **{"If-None-Match": first.headers["etag"], "Accept": "application/graphql-response+json"},
    )
    apollo = get(
        persisted_only,
        {
            "variables": params["variables"],
            "extensions": json.dumps(
                {"persistedQuery": {"version": 1, "sha256Hash": sha256(NAME)}}
            ),
        },
    )

    assert first.status_code == 200
    assert first.json()["data"]["proxySession"]["name"] == "order-1234"
    max_age = int(first.headers["cache-control"].removeprefix("private, max-age="))
    assert 0 < max_age <= 30
    assert first.headers["etag"].startswith('"')
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    # Another representation, another validator (RFC 9110 8.8.1): no 304 across them.
    assert modern.status_code == 200
    assert modern.headers["etag"] != first.headers["etag"]
    modern_again = get(
        persisted_only,
        params,
        **{"If-None-Match": modern.headers["etag"], "Accept": "application/graphql-response+json"},
    )
    plain_with_modern_tag = get(persisted_only, params, **{"If-None-Match": modern.headers["etag"]})
    assert modern_again.status_code == 304
    assert plain_with_modern_tag.status_code == 200
    assert apollo.json() == first.json()
    assert emulator.calls(*seeded) == 1


def test_get_refuses_a_raw_query_and_an_unknown_id(
    persisted: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = json.dumps({"vc": seeded[0], "ps": seeded[1]})
    with no_upstream_call(emulator):
        raw = get(persisted, {"query": NAME, "variables": variables})
        unknown = get(persisted, {"documentId": sha256(ADHOC), "variables": variables})
        bad = get(persisted, {"documentId": sha256(NAME), "variables": "{not json"})

    assert raw.status_code == 405
    assert raw.headers["allow"] == "POST"
    assert unknown.status_code == 400
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_an_answer_with_errors_is_not_kept(persisted: Gateway, key: tuple[str, str]) -> None:
    params = {"documentId": sha256(NAME), "variables": json.dumps({"vc": key[0], "ps": key[1]})}

    reply = get(persisted, params, Accept="application/graphql-response+json")

    assert reply.status_code == 200
    assert reply.headers["cache-control"] == "no-store"
    assert "etag" not in reply.headers
    assert reply.headers["content-type"].startswith("application/graphql-response+json")
    assert reply.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
