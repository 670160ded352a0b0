"""Per-document limits, checked at validation before anything executes: depth, fan-out,
field selections, introspection.

Depth counts fields on the longest path, a top-level field being 1:
`{ proxySession { participants { phoneNumber } } }` has depth 3. Fan-out counts every
`proxySession` (or `node`) selection the executed operation would make, aliases and fragment spreads
included (a fragment with two of them spread three times counts six). Field selections
count every field the executed operation selects the same way, `__typename` included.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    SKIP,
    ASTValidationRule,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    Node,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VisitorAction,
    get_named_type,
    is_introspection_type,
)
from graphql.validation import MaxIntrospectionDepthRule
from graphql.validation.validate import ValidationAbortedError

from app.settings import Settings

PROXY_SESSION = "proxySession"
FETCHING = frozenset({PROXY_SESSION, "node"})
"""The fields that fetch a session: `node` counts as a `proxySession` field."""


# A ValidationAbortedError, so that a rule raising one stops graphql-core's validation with
# this error as the result: the costlier rules never run on a refused document.
class Refusal(ValidationAbortedError):
    """A document refused by a limit; `limit` names it for the metrics."""

    def __init__(self, limit: str, message: str, nodes: Node | list[Node] | None = None) -> None:
        super().__init__(message, nodes)
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Limits:
    """The per-document limits (defaults: the settings' defaults)."""

    max_depth: int = 6
    max_aliases: int = 20
    max_tokens: int = 2000
    max_fields: int = 500

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits the settings set."""
        return cls(
            max_depth=settings.graphql_max_depth,
            max_aliases=settings.graphql_max_aliases,
            max_tokens=settings.graphql_max_tokens,
            max_fields=settings.graphql_max_fields,
        )


@dataclass(frozen=True, slots=True)
class Extent:
    """How deep the deepest operation goes, how many `proxySession` fields the widest makes,
    and how many field selections the largest makes (fragments expanded)."""

    depth: int
    proxy_sessions: int
    fields: int = 0


_Scanned = tuple[int, int, int, list[tuple[str, int]]]


def _scan(selection_set: SelectionSetNode) -> _Scanned:
    # Depth, proxySession fields, all fields, and the spreads made, each with the fields
    # above it.
    depth = proxy_sessions = fields = 0
    spreads: list[tuple[str, int]] = []
    stack = [(selection_set, 1)]
    while stack:
        current, level = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                depth = max(depth, level)
                fields += 1
                name = selection.name.value
                proxy_sessions += name in FETCHING
                # Introspection has rules of its own (refused, or graphql-core's depth rule):
                # GraphiQL's own introspection query is deeper than any depth limit here.
                if selection.selection_set is not None and not name.startswith("__"):
                    stack.append((selection.selection_set, level + 1))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level))
            elif isinstance(selection, FragmentSpreadNode):
                spreads.append((selection.name.value, level - 1))
    return depth, proxy_sessions, fields, spreads


def _expand(scanned: _Scanned, totals: dict[str, tuple[int, int, int]]) -> tuple[int, int, int]:
    depth, proxy_sessions, fields, spreads = scanned
    for name, above in spreads:
        # An unknown fragment or one closing a cycle adds nothing; other rules report both.
        fragment_depth, fragment_proxy_sessions, fragment_fields = totals.get(name, (0, 0, 0))
        depth = max(depth, above + fragment_depth)
        proxy_sessions += fragment_proxy_sessions
        fields += fragment_fields
    return depth, proxy_sessions, fields


def measure(document: DocumentNode) -> Extent:
    """The extent of `document`'s operations, fragments expanded, in time linear in its size."""
    fragments = {
        definition.name.value: _scan(definition.selection_set)
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    # Each fragment is totalled once, after the fragments it spreads: walking every spread
    # instead is exponential (each fragment spreading the next twice), and an explicit
    # stack because a chain of fragments can be longer than Python's recursion limit.
    totals: dict[str, tuple[int, int, int]] = {}
    for root in fragments:
        if root in totals:
            continue
        path: list[tuple[str, Iterator[tuple[str, int]]]] = [(root, iter(fragments[root][3]))]
        on_path = {root}
        while path:
            name, pending = path[-1]
            for spread, _above in pending:
                if spread in fragments and spread not in totals and spread not in on_path:
                    path.append((spread, iter(fragments[spread][3])))
                    on_path.add(spread)
                    break
            else:
                path.pop()
                on_path.discard(name)
                totals[name] = _expand(fragments[name], totals)
    depth = proxy_sessions = fields = 0
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            # One operation executes per request: the largest one bounds it.
            operation_depth, operation_proxy_sessions, operation_fields = _expand(
                _scan(definition.selection_set), totals
            )
            depth = max(depth, operation_depth)
            proxy_sessions = max(proxy_sessions, operation_proxy_sessions)
            fields = max(fields, operation_fields)
    return Extent(depth, proxy_sessions, fields)


def document_limits_rule(limits: Limits) -> type[ValidationRule]:
    """A validation rule refusing documents deeper, wider or larger than `limits` allow."""

    class DocumentLimitsRule(ValidationRule):
        """Refuses a document over the depth, `proxySession` or field limit, then stops
        validation."""

        def enter_document(self, node: DocumentNode, *_args: Any) -> None:
            extent = measure(node)
            refusals = []
            if extent.depth > limits.max_depth:
                refusals.append(
                    Refusal(
                        "depth",
                        f"Query depth {extent.depth} exceeds the maximum of {limits.max_depth}.",
                    )
                )
            if extent.proxy_sessions > limits.max_aliases:
                refusals.append(
                    Refusal(
                        "aliases",
                        f"Document has {extent.proxy_sessions} {PROXY_SESSION} fields;"
                        f" the maximum is {limits.max_aliases}.",
                    )
                )
            if extent.fields > limits.max_fields:
                refusals.append(
                    Refusal(
                        "fields",
                        f"Document selects {extent.fields} fields;"
                        f" the maximum is {limits.max_fields}.",
                    )
                )
            if refusals:
                *reported, last = refusals
                for refusal in reported:
                    self.report_error(refusal)
                raise last

    return DocumentLimitsRule


class IntrospectionDisabledRule(ValidationRule):
    """Refuses `__schema` and `__type` (`__typename` stays allowed)."""

    def enter_field(self, node: FieldNode, *_args: Any) -> VisitorAction:
        named = get_named_type(self.context.get_type())
        if named is not None and is_introspection_type(named):
            self.report_error(
                Refusal(
                    "introspection",
                    f"Introspection is disabled on this gateway (field '{node.name.value}').",
                    node,
                )
            )
            return SKIP  # one error per introspection field asked, not one per nested field
        return None


class IntrospectionDepthRule(MaxIntrospectionDepthRule):
    """graphql-core's guard against introspection nested to multiply its output, counted."""

    def report_error(self, error: GraphQLError) -> None:
        """Report graphql-core's error as a refusal, so that the metrics see it."""
        super().report_error(Refusal("introspection_depth", error.message, error.nodes))


def validation_rules(limits: Limits, *, introspection: bool) -> list[type[ASTValidationRule]]:
    """The gateway's rules, built once per schema (the validation cache keys on them)."""
    introspection_rule = IntrospectionDepthRule if introspection else IntrospectionDisabledRule
    return [document_limits_rule(limits), introspection_rule]
