"""The costliest GraphQL documents the default limits admit, found by validating candidates
with the gateway's own schema and rules in this process (not guessed).

Two shapes are the expensive ones:

- `wide`: as many distinct root selections as the field limit allows (the work of parsing
  and validating is linear in them; `__typename` needs no session, so no AWS call);
- `merging`: as many selections sharing one response name with distinct sub-selections as
  the field-merging budget admits (their pairs are compared), the rest of the field limit
  spent as in `wide`;
- `fragments`: as many one-field fragments, each spread once, as the token limit and the
  field-merging budget admit (fragments are checked pairwise, and each by several rules).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from graphql import GraphQLError, specified_rules

from app.graphql.documents import Documents
from app.graphql.limits import Limits, validation_rules
from app.graphql.schema import build_schema

ROOT = 'proxySession(voiceConnectorId: "vc", proxySessionId: "ps")'


def wide(fields: int) -> str:
    """`fields` distinct root selections."""
    return "query Worst { " + " ".join(f"f{n}: __typename" for n in range(fields)) + " }"


def merging(pairs: int, fields: int) -> str:
    """`pairs` selections named `a` with distinct sub-selections, padded to `fields`."""
    shared = " ".join(f"a: participants {{ p{n}: phoneNumber }}" for n in range(pairs))
    padding = " ".join(f"f{n}: __typename" for n in range(fields - 2 * pairs - 1))
    return f"query Worst {{ {ROOT} {{ {shared} }} {padding} }}"


def fragments(count: int) -> str:
    """`count` fragments selecting `__typename`, each spread once."""
    spreads = " ".join(f"...F{n}" for n in range(count))
    definitions = " ".join(f"fragment F{n} on Query {{ __typename }}" for n in range(count))
    return f"query Worst {{ {spreads} }} {definitions}"


def _errors(query: str, limits: Limits) -> list[GraphQLError]:
    schema = build_schema(limits=limits)._schema
    documents = Documents(limits.max_tokens)
    rules = (*specified_rules, *validation_rules(limits, introspection=True))
    return documents.validate(schema, documents.parse(query), rules)


def _cpu_ms(query: str, limits: Limits, rounds: int = 3) -> float:
    """The least CPU time parsing and validating `query` took, a fresh cache each time."""
    best = float("inf")
    for _ in range(rounds):
        began = time.process_time()
        _errors(query, limits)
        best = min(best, (time.process_time() - began) * 1000)
    return best


def _most(shape: Callable[[int], str], high: int, limits: Limits) -> int:
    """The largest `n` (at most `high`) whose `shape(n)` the limits admit: bisected."""
    low = 1
    while low < high:
        middle = (low + high + 1) // 2
        try:
            refused = bool(_errors(shape(middle), limits))
        except GraphQLError:  # the token limit, while parsing
            refused = True
        if refused:
            high = middle - 1
        else:
            low = middle
    return low


def costliest(limits: Limits) -> tuple[str, str]:
    """The name and text of the admitted document that costs the most to parse and validate."""
    fields = limits.max_fields
    pairs = _most(lambda n: merging(n, fields), (fields - 1) // 2, limits)
    spread = _most(fragments, fields, limits)
    candidates = {
        "wide": wide(fields),
        f"merging ({pairs} pairs)": merging(pairs, fields),
        f"fragments ({spread})": fragments(spread),
    }
    for name, query in candidates.items():
        if _errors(query, limits):
            raise RuntimeError(f"the {name} document is refused: {_errors(query, limits)}")
    name = max(candidates, key=lambda name: _cpu_ms(candidates[name], limits))
    return name, candidates[name]
