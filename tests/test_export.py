"""openapi.json and schema.graphql are what `make openapi` would write now."""

from __future__ import annotations

import json

from app.domain.errors import GRAPHQL_ONLY, UnsupportedMediaType, error_table
from app.domain.model import ID_PATTERN
from app.export import OPENAPI, SCHEMA, openapi_text, schema_text


def test_openapi_json_is_current() -> None:
    assert OPENAPI.read_text(encoding="utf-8") == openapi_text(), "run `make openapi`"


def test_schema_graphql_is_current() -> None:
    assert SCHEMA.read_text(encoding="utf-8") == schema_text(), "run `make openapi`"


def test_openapi_documents_every_error_as_a_problem_and_no_422() -> None:
    document = json.loads(openapi_text())
    operation = document["paths"][
        "/v1/voice-connectors/{voiceConnectorId}/proxy-sessions/{proxySessionId}"
    ]["get"]

    assert operation["operationId"] == "getProxySession"
    responses = operation["responses"]
    rest_errors = [
        cls for cls in error_table() if cls not in GRAPHQL_ONLY and cls is not UnsupportedMediaType
    ]
    assert set(responses) == {"200", "304"} | {str(cls.status) for cls in rest_errors}
    for cls in rest_errors:
        assert f"`{cls.code}`" in responses[str(cls.status)]["description"], cls.code
    for status, response in responses.items():
        if status[0] in "45":
            assert list(response["content"]) == ["application/problem+json"], status
    assert "Retry-After" in responses["429"]["headers"]
    assert "Retry-After" in responses["503"]["headers"]
    assert "WWW-Authenticate" in responses["401"]["headers"]
    assert "Allow" in responses["405"]["headers"]
    assert {"ETag", "Cache-Control", "Cache-Status", "X-Request-ID"} <= responses["200"][
        "headers"
    ].keys()
    for parameter in operation["parameters"][:2]:
        assert parameter["schema"]["pattern"] == ID_PATTERN
        assert (parameter["schema"]["minLength"], parameter["schema"]["maxLength"]) == (1, 128)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_operation_ids_are_stable() -> None:
    document = json.loads(openapi_text())
    ids = sorted(op["operationId"] for path in document["paths"].values() for op in path.values())

    assert ids == ["getProxySession", "healthz", "metrics", "readyz"]
