"""The GraphQL-over-HTTP response media types, negotiated from `Accept`.

`application/graphql-response+json` when the client prefers it (by `q`, or on a tie, as
the specification asks of servers once clients send both): then HTTP statuses say what
happened (200 with `data`; 400 without, for a document that does not parse, validate or
coerce its variables). `application/json` otherwise, for legacy clients, always 200 with
`data` present. No `Accept`, or only wildcards: `application/json`.
"""

from __future__ import annotations

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
GRAPHQL_RESPONSE_TYPE = b"application/graphql-response+json; charset=utf-8"


def _quality(parameters: list[str]) -> float:
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 0.0
    return 1.0


def prefers_graphql_response(accept: str | bytes | None) -> bool:
    """Whether `Accept` prefers `application/graphql-response+json` to `application/json`."""
    if not accept:
        return False
    if isinstance(accept, bytes):
        accept = accept.decode("latin-1")
    accept = accept.lower()  # media types are case-insensitive
    if "graphql-response" not in accept:  # what nearly every legacy client sends
        return False
    graphql_response = json = 0.0
    for item in accept.split(","):
        media_type, *parameters = item.split(";")
        media_type = media_type.strip()
        if media_type == GRAPHQL_RESPONSE:
            graphql_response = max(graphql_response, _quality(parameters))
        elif media_type == JSON:
            json = max(json, _quality(parameters))
    return graphql_response > 0 and graphql_response >= json
