"""The per-document limits, over HTTP against real gateways: depth, proxySession fields,
tokens and introspection, each refused before anything executes or goes upstream."""

from __future__ import annotations

import time

import pytest
from graphql import (
    GraphQLError,
    Lexer,
    Source,
    TokenKind,
    get_introspection_query,
    parse,
    specified_rules,
)

from app.graphql.documents import Documents
from app.graphql.limits import Extent, Limits, measure, validation_rules
from app.graphql.schema import build_schema
from app.settings import Settings
from tests.conftest import GatewayFactory
from tests.graphql.refusals import (
    SESSION_ARGS,
    VALIDATION_FAILED,
    VARIABLES,
    no_upstream_call,
    refusal,
    refused_total,
)
from tests.support.servers import Emulator, Gateway


@pytest.fixture
def limited(gateway_factory: GatewayFactory) -> Gateway:
    """A gateway with limits lower than the defaults."""
    return gateway_factory(
        graphql_max_depth=3, graphql_max_aliases=2, graphql_max_tokens=50, graphql_max_fields=10
    )


def tokens(document: str) -> int:
    """Lexer tokens in a document without comments, counted as graphql-core counts them."""
    lexer, count = Lexer(Source(document)), 0
    while lexer.advance().kind != TokenKind.EOF:
        count += 1
    return count


def padded(vc: str, ps: str, total: int) -> str:
    """A valid document asking one session's name, padded to exactly `total` tokens with
    comments (which count as tokens), so that the field limit is not what refuses it."""
    head = f'{{ p: proxySession(voiceConnectorId: "{vc}", proxySessionId: "{ps}") {{ name }} '
    room = total - tokens(head + "}")
    document = f"{head}{chr(10).join('#' for _ in range(room))}\n}}"
    assert tokens(document) + room == total
    return document


def aliases(count: int, selection: str = "name") -> str:
    """`count` aliased proxySession fields on the variables $vc and $ps."""
    return " ".join(f"a{i}: proxySession({SESSION_ARGS}) {{ {selection} }}" for i in range(count))


def nested(depth: int) -> str:
    """A proxySession selection `depth` fields deep (past 3 the fields do not exist)."""
    names = [f"proxySession({SESSION_ARGS})", "participants", "phoneNumber"]
    names += [f"f{level}" for level in range(4, depth + 1)]
    selection = names[depth - 1]
    for name in reversed(names[: depth - 1]):
        selection = f"{name} {{ {selection} }}"
    return selection


def test_nested_builds_the_depth_it_says() -> None:
    for depth in (3, 4, 6, 7):
        document = f"{VARIABLES} {{ {nested(depth)} }}"

        assert measure(parse(document)) == Extent(depth, 1, depth)


# Depth


def test_depth_at_the_default_limit_is_not_refused_for_depth(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    before = refused_total(gateway, "depth")

    with no_upstream_call(emulator):
        body = gateway.graphql(f"{VARIABLES} {{ {nested(6)} }}", variables).json()

    # Nothing this deep exists in the schema: it fails on its fields, not on its depth.
    assert body["errors"][0]["extensions"]["code"] == VALIDATION_FAILED
    assert not any("depth" in error["message"] for error in body["errors"])
    assert refused_total(gateway, "depth") == before


@pytest.mark.parametrize(
    "document",
    [
        f"{VARIABLES} {{ {nested(7)} }}",
        f"{VARIABLES} {{ ...Q }} fragment Q on Query {{ {nested(7)} }}",
        f"{VARIABLES} {{ proxySession({SESSION_ARGS}) {{ ...P }} }}"
        " fragment P on ProxySession { participants { ... on Participant {"
        " phoneNumber { a { b { c { d } } } } } } }",
    ],
    ids=["fields", "fragment", "fragment-and-inline-fragment"],
)
def test_depth_past_the_default_limit_is_refused(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str], document: str
) -> None:
    before = refused_total(gateway, "depth")

    with no_upstream_call(emulator):
        reply = gateway.graphql(document, {"vc": seeded[0], "ps": seeded[1]})

    assert refusal(reply) == "Query depth 7 exceeds the maximum of 6."
    assert len(reply.json()["errors"]) == 1  # validation stopped at the limit
    assert refused_total(gateway, "depth") == before + 1


def test_a_lower_depth_limit_is_honoured(
    limited: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}

    ok = limited.graphql(f"{VARIABLES} {{ {nested(3)} }}", variables).json()
    with no_upstream_call(emulator):
        refused = limited.graphql(f"{VARIABLES} {{ {nested(4)} }}", variables)

    assert ok["data"]["proxySession"]["participants"][0] == {"phoneNumber": "+12065550100"}
    assert refusal(refused) == "Query depth 4 exceeds the maximum of 3."


def test_a_valid_document_over_the_depth_limit_is_never_executed(
    gateway_factory: GatewayFactory, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    shallow = gateway_factory(graphql_max_depth=2)

    with no_upstream_call(emulator):
        reply = shallow.graphql(
            f"{VARIABLES} {{ {nested(3)} }}", {"vc": seeded[0], "ps": seeded[1]}
        )

    assert refusal(reply) == "Query depth 3 exceeds the maximum of 2."


# proxySession fields (the upstream fan-out)


def test_twenty_proxy_session_fields_are_served(gateway: Gateway, seeded: tuple[str, str]) -> None:
    reply = gateway.graphql(f"{VARIABLES} {{ {aliases(20)} }}", {"vc": seeded[0], "ps": seeded[1]})

    assert reply.json() == {"data": {f"a{i}": {"name": "order-1234"} for i in range(20)}}


FRAGMENT_7 = f"fragment F on Query {{ {aliases(7)} }}"


PS = f"proxySession({SESSION_ARGS}) {{ name }}"


@pytest.mark.parametrize(
    ("document", "count"),
    [
        (f"{VARIABLES} {{ {aliases(21)} }}", 21),
        (f"{VARIABLES} {{ {' '.join([PS] * 21)} }}", 21),  # merged when executed, still counted
        (f"{VARIABLES} {{ ...F ...F ...F }} {FRAGMENT_7}", 21),
        (f"{VARIABLES} {{ {' '.join(f'... on Query {{ i{i}: {PS} }}' for i in range(21))} }}", 21),
        (
            f"{VARIABLES} {{ ...A ...A ...A }} fragment A on Query {{ ...B ...B }}"
            f" fragment B on Query {{ b1: {PS} b2: {PS} ... on Query {{ b3: {PS} b4: {PS} }} }}",
            24,
        ),
    ],
    ids=["aliases", "unaliased", "fragment-3x7", "inline-fragments", "nested-3x2x4"],
)
def test_past_twenty_proxy_session_fields_is_refused(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str], document: str, count: int
) -> None:
    before = refused_total(gateway, "aliases")

    with no_upstream_call(emulator):
        reply = gateway.graphql(document, {"vc": seeded[0], "ps": seeded[1]})

    assert refusal(reply) == f"Document has {count} proxySession fields; the maximum is 20."
    assert refused_total(gateway, "aliases") == before + 1


def test_any_operation_over_the_limit_refuses_the_document(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    # Validation (and its cache) is per document: whichever operation is named, none over.
    document = f"{VARIABLES} {{ {aliases(1)} }} query R($vc: ID!, $ps: ID!) {{ {aliases(21)} }}"
    variables = {"vc": seeded[0], "ps": seeded[1]}

    with no_upstream_call(emulator):
        reply = gateway.client.post(
            "/graphql", json={"query": document, "variables": variables, "operationName": "Q"}
        )

    assert refusal(reply) == "Document has 21 proxySession fields; the maximum is 20."


def test_fragments_spread_several_times_count_each_time(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    document = f"{VARIABLES} {{ ...F ...F ...F ...F }} fragment F on Query {{ {aliases(5)} }}"

    reply = gateway.graphql(document, {"vc": seeded[0], "ps": seeded[1]})

    assert reply.json() == {"data": {f"a{i}": {"name": "order-1234"} for i in range(5)}}


def test_operations_are_limited_one_by_one_not_summed(
    gateway: Gateway, seeded: tuple[str, str]
) -> None:
    document = (
        f"{VARIABLES} {{ {aliases(20)} }} query R($vc: ID!, $ps: ID!) {{ {aliases(20, 'status')} }}"
    )

    reply = gateway.client.post(
        "/graphql",
        json={
            "query": document,
            "variables": {"vc": seeded[0], "ps": seeded[1]},
            "operationName": "R",
        },
    )

    assert reply.json() == {"data": {f"a{i}": {"status": "OPEN"} for i in range(20)}}


def test_a_lower_proxy_session_limit_is_honoured(
    limited: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    fragment = f"fragment F on Query {{ {PS} }}"

    ok = limited.graphql(f"{VARIABLES} {{ ...F ...F }} {fragment}", variables).json()
    with no_upstream_call(emulator):
        refused = limited.graphql(f"{VARIABLES} {{ ...F ...F ...F }} {fragment}", variables)

    assert ok == {"data": {"proxySession": {"name": "order-1234"}}}
    assert refusal(refused) == "Document has 3 proxySession fields; the maximum is 2."


def test_a_fragment_bomb_is_refused_at_once(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    # Each fragment spreads the next twice: 2**60 fields. A walk that follows every spread
    # (strawberry's limiters up to at least 0.341.2) would never finish.
    chain = " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(60))
    document = f"{VARIABLES} {{ ...F0 }} {chain} fragment F60 on Query {{ {PS} }}"

    started = time.monotonic()
    with no_upstream_call(emulator):
        reply = gateway.graphql(document, {"vc": seeded[0], "ps": seeded[1]})

    assert refusal(reply) == f"Document has {2**60} proxySession fields; the maximum is 20."
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
            "Cannot spread fragment 'A' within itself via 'B'.",
        ),
        ("{ ...Missing }", "Unknown fragment 'Missing'."),
    ],
    ids=["cycle", "unknown"],
)
def test_broken_fragments_are_validation_errors(
    gateway: Gateway, document: str, message: str
) -> None:
    assert refusal(gateway.graphql(document)) == message


# Tokens


def test_tokens_up_to_the_limit_are_served_and_past_it_refused(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    before = refused_total(gateway, "tokens")

    with no_upstream_call(emulator):
        refused = gateway.graphql(padded(*seeded, 2001))
    served = gateway.graphql(padded(*seeded, 2000)).json()

    assert refusal(refused) == "Document exceeds the maximum of 2000 tokens."
    assert served["data"]["p"] == {"name": "order-1234"}
    assert refused_total(gateway, "tokens") == before + 1


def test_comments_count_as_tokens(gateway: Gateway, emulator: Emulator) -> None:
    with no_upstream_call(emulator):
        reply = gateway.graphql("{ __typename }" + "\n#" * 2000)

    assert refusal(reply) == "Document exceeds the maximum of 2000 tokens."


def test_a_lower_token_limit_is_honoured(
    limited: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    with no_upstream_call(emulator):
        refused = limited.graphql(padded(*seeded, 51))
    served = limited.graphql(padded(*seeded, 50)).json()

    assert refusal(refused) == "Document exceeds the maximum of 50 tokens."
    assert served["data"]["p"] == {"name": "order-1234"}


# Field selections


def test_field_selections_up_to_the_limit_are_served_and_past_it_refused(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    before = refused_total(gateway, "fields")
    # One proxySession with its name is two fields; __typename counts like any field.
    head = f'{{ p: proxySession(voiceConnectorId: "{seeded[0]}", proxySessionId: "{seeded[1]}")'
    at_limit = f"{head} {{ name }} {'__typename ' * 498}}}"
    over = f"{head} {{ name }} {'__typename ' * 499}}}"

    with no_upstream_call(emulator):
        refused = gateway.graphql(over)
    served = gateway.graphql(at_limit).json()

    assert refusal(refused) == "Document selects 501 fields; the maximum is 500."
    assert served["data"]["p"] == {"name": "order-1234"}
    assert refused_total(gateway, "fields") == before + 1


def test_fragments_count_their_fields_each_time_they_are_spread(
    limited: Gateway, emulator: Emulator
) -> None:
    document = "{ ...F ...F ...F ...F } fragment F on Query { __typename t: __typename ...G }"
    document += " fragment G on Query { __typename }"

    with no_upstream_call(emulator):
        message = refusal(limited.graphql(document))

    assert message == "Document selects 12 fields; the maximum is 10."


# Field merging


def test_repeated_selections_merge_into_one_answer(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    head = f'proxySession(voiceConnectorId: "{seeded[0]}", proxySessionId: "{seeded[1]}")'
    document = f"{{ {'__typename ' * 250} p: {head} {{ {'name ' * 200} n: name ...F ...F }} }}"
    document += " fragment F on ProxySession { name }"

    reply = gateway.graphql(document).json()

    assert reply == {
        "data": {"__typename": "Query", "p": {"name": "order-1234", "n": "order-1234"}}
    }


def test_conflicts_are_found_among_repeated_selections() -> None:
    # The repeats are dropped before comparing: the conflict with the third `a` remains.
    document = f"{{ a: __typename a: __typename a: proxySession({SESSION_ARGS}) {{ name }} }}"
    errors = _validate(f"{VARIABLES} {document}")

    assert [error.message for error in errors] == [
        "Fields 'a' conflict because '__typename' and 'proxySession' are different fields."
        " Use different aliases on the fields to fetch both if this was intentional."
    ]
    assert len(errors[0].locations or []) == 2  # the first `a` and the third


def test_selections_too_many_to_compare_are_refused(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    # Same response name, distinct sub-selections: each pair would be compared.
    shared = " ".join(f"a: participants {{ p{n}: phoneNumber }}" for n in range(200))
    head = f'proxySession(voiceConnectorId: "{seeded[0]}", proxySessionId: "{seeded[1]}")'
    before = refused_total(gateway, "merging")

    with no_upstream_call(emulator):
        message = refusal(gateway.graphql(f"{{ {head} {{ {shared} }} }}"))
    few = " ".join(f"a: participants {{ p{n}: phoneNumber }}" for n in range(3))
    served = gateway.graphql(f"{{ {head} {{ {few} }} }}").json()

    assert message == (
        "Document has too many selections sharing a response name to check that they"
        " merge; give them distinct aliases."
    )
    assert refused_total(gateway, "merging") == before + 1
    assert served["data"]["proxySession"]["a"][0].keys() == {"p0", "p1", "p2"}


def _validate(document: str) -> list[GraphQLError]:
    """The gateway's validation errors for `document`, with the default limits."""
    limits = Limits()
    documents = Documents(limits.max_tokens)
    rules = (*specified_rules, *validation_rules(limits, introspection=True))
    return documents.validate(build_schema()._schema, documents.parse(document), rules)


# Several operations


def test_several_operations_without_an_operation_name_are_refused(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str]
) -> None:
    document = f"{VARIABLES} {{ proxySession({SESSION_ARGS}) {{ name }} }} query R {{ __typename }}"
    variables = {"vc": seeded[0], "ps": seeded[1]}
    before = refused_total(gateway, "operation_name")

    with no_upstream_call(emulator):
        refused = gateway.graphql(document, variables)
        refused_again = gateway.graphql(document, variables)
    named = gateway.client.post(
        "/graphql", json={"query": document, "variables": variables, "operationName": "Q"}
    ).json()

    expected = "Document has several operations: operationName must name the one to run."
    assert refusal(refused) == refusal(refused_again) == expected
    assert named["data"] == {"proxySession": {"name": "order-1234"}}
    assert refused_total(gateway, "operation_name") == before + 2


# Introspection


def test_introspection_is_refused_by_default_but_typename_works(
    gateway: Gateway, emulator: Emulator
) -> None:
    before = refused_total(gateway, "introspection")

    with no_upstream_call(emulator):
        refused = gateway.graphql('{ __type(name: "ProxySession") { name } }')
    typename = gateway.graphql("{ __typename }").json()

    assert refusal(refused) == "Introspection is disabled on this gateway (field '__type')."
    assert typename == {"data": {"__typename": "Query"}}
    assert refused_total(gateway, "introspection") == before + 1


def test_graphiqls_introspection_works_when_turned_on(introspective: Gateway) -> None:
    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )

    body = introspective.graphql(query).json()

    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


def test_introspection_nested_to_multiply_is_refused_when_turned_on(
    introspective: Gateway,
) -> None:
    document = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    before = refused_total(introspective, "introspection_depth")

    assert refusal(introspective.graphql(document)) == "Maximum introspection depth exceeded"
    assert refused_total(introspective, "introspection_depth") == before + 1


# The same document, refused every time


@pytest.mark.parametrize(
    ("limit", "document"),
    [
        ("depth", f"{VARIABLES} {{ {nested(7)} }}"),
        ("aliases", f"{VARIABLES} {{ {aliases(21)} }}"),
        ("tokens", "{ " + "__typename " * 2001 + "}"),
        ("introspection", "{ __schema { queryType { name } } }"),
    ],
)
def test_a_refused_document_is_refused_again(
    gateway: Gateway, emulator: Emulator, seeded: tuple[str, str], limit: str, document: str
) -> None:
    variables = {"vc": seeded[0], "ps": seeded[1]}
    before = refused_total(gateway, limit)

    with no_upstream_call(emulator):
        first = refusal(gateway.graphql(document, variables))
        second = refusal(gateway.graphql(document, variables))

    assert first == second
    assert refused_total(gateway, limit) == before + 2


# The limit walk itself


def test_the_default_limits_are_the_settings_defaults() -> None:
    fields = Settings.model_fields

    assert Limits() == Limits(
        max_depth=fields["graphql_max_depth"].default,
        max_aliases=fields["graphql_max_aliases"].default,
        max_tokens=fields["graphql_max_tokens"].default,
        max_fields=fields["graphql_max_fields"].default,
    )


@pytest.mark.parametrize(
    ("document", "extent"),
    [
        ("{ __typename }", Extent(1, 0, 1)),
        (
            "{ a: proxySession { b: name } proxySession { participants { phoneNumber } } }",
            Extent(3, 2, 5),
        ),
        (
            "{ ...F ...F } fragment F on Query { proxySession { ...G } }"
            " fragment G on X { a { b } }",
            Extent(3, 2, 6),
        ),
        ("{ __schema { types { fields { type { ofType { name } } } } } }", Extent(1, 0, 1)),
        ("query A { proxySession { a } } query B { x { y { z } } }", Extent(3, 1, 3)),
        (
            "{ ...A } fragment A on Query { proxySession ...B } fragment B on Query { ...A }",
            Extent(1, 1, 1),
        ),
        ("{ ...Missing proxySession }", Extent(1, 1, 1)),
        ("fragment Unused on Query { proxySession { a { b { c } } } }", Extent(0, 0, 0)),
        ("{ ... on Query { __typename t: __typename } __typename }", Extent(1, 0, 3)),
    ],
)
def test_measure(document: str, extent: Extent) -> None:
    assert measure(parse(document)) == extent


def test_measure_walks_a_chain_longer_than_the_stack() -> None:
    chain = " ".join(f"fragment F{i} on Query {{ a {{ ...F{i + 1} }} }}" for i in range(3000))
    document = parse(f"{{ ...F0 }} {chain} fragment F3000 on Query {{ proxySession }}")

    assert measure(document) == Extent(3001, 1, 3001)
