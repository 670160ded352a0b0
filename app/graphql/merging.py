"""The field-merging check (graphql-core's `OverlappingFieldsCanBeMergedRule`), at a cost
bounded for any document the other limits admit.

The check compares every pair of selections that share a response name: quadratic in the
selections. Two things bound it here:

- Repeats are dropped before comparing: a field selected again exactly as before (same
  alias, same name, no arguments, no directives, no sub-selection), or a fragment spread
  again, merges with the first by definition, so `{ __typename __typename … }` costs one
  selection, not a pair per two.
- What is left gets graphql-core's own comparison budget, set lower than its default
  (which allows about 200 ms of comparisons here): a document that spends it is refused
  (`GRAPHQL_VALIDATION_FAILED`), never checked for longer.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, cast

from graphql import (
    SKIP,
    DocumentNode,
    FieldNode,
    FragmentSpreadNode,
    Node,
    SelectionNode,
    SelectionSetNode,
    TypeInfo,
    TypeInfoVisitor,
    ValidationContext,
    VisitorAction,
    visit,
)
from graphql.validation import OverlappingFieldsCanBeMergedRule
from graphql.validation.rules import overlapping_fields_can_be_merged
from graphql.validation.validate import ValidationAbortedError

from app.graphql.limits import Refusal
from app.seams import Seam

COMPARISON_BUDGET = 5_000
"""graphql-core's units (about two per pair of fields compared, more for sub-selections);
its default is 500,000. Measured here, 40,000 units cost at most a few milliseconds."""

_REFUSED = (
    "Document has too many selections sharing a response name to check that they merge;"
    " give them distinct aliases."
)

Selections = tuple[SelectionNode, ...]


def _repeat_key(selection: SelectionNode) -> tuple[str | None, str] | None:
    """What makes `selection` a repeat of an earlier one, or None when it is never one."""
    if isinstance(selection, FieldNode):
        if selection.arguments or selection.directives or selection.selection_set:
            return None
        return (selection.alias.value if selection.alias else None, selection.name.value)
    if isinstance(selection, FragmentSpreadNode) and not selection.directives:
        if getattr(selection, "arguments", None):  # fragment arguments (experimental)
            return None
        return ("...", selection.name.value)
    return None


def _lean(node: Node) -> Node:
    """`node` with repeats dropped from its selection set at every level (itself when
    there are none, or when it has no selection set)."""
    selection_set = getattr(node, "selection_set", None)
    if not isinstance(selection_set, SelectionSetNode):
        return node
    kept: list[SelectionNode] = []
    seen: set[tuple[str | None, str]] = set()
    for selection in selection_set.selections:
        key = _repeat_key(selection)
        if key is None:
            kept.append(cast(SelectionNode, _lean(selection)))
        elif key not in seen:
            seen.add(key)
            kept.append(selection)
    if len(kept) == len(selection_set.selections) and all(
        new is old for new, old in zip(kept, selection_set.selections, strict=True)
    ):
        return node
    lean = dataclasses.replace(selection_set, selections=tuple(kept))
    return dataclasses.replace(node, selection_set=lean)  # type: ignore[call-arg]


def without_repeats(document: DocumentNode) -> DocumentNode:
    """`document` with repeated selections dropped (itself when there are none)."""
    definitions = tuple(_lean(definition) for definition in document.definitions)
    if all(new is old for new, old in zip(definitions, document.definitions, strict=True)):
        return document
    return dataclasses.replace(document, definitions=definitions)  # type: ignore[arg-type]


class MergeableFieldsRule(OverlappingFieldsCanBeMergedRule):
    """graphql-core's field-merging rule, without repeats and within `COMPARISON_BUDGET`."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.rule_context.remaining_complexity_budget = COMPARISON_BUDGET

    def enter_document(self, node: DocumentNode, *_args: Any) -> VisitorAction:
        """Check a document with repeats in a walk of its own, without them; else go on
        with the shared walk, selection set by selection set."""
        lean = without_repeats(node)
        if lean is node:
            return None
        schema = self.context.schema
        type_info = TypeInfo(schema)
        context = ValidationContext(schema, lean, type_info, self.report_error)
        rule = MergeableFieldsRule(context)
        try:
            visit(lean, TypeInfoVisitor(type_info, rule))
        except Refusal:
            raise
        except ValidationAbortedError:
            raise Refusal("merging", _REFUSED) from None
        return SKIP

    def enter_selection_set(
        self, selection_set: SelectionSetNode, key: Any, parent: Any, *args: Any
    ) -> None:
        """graphql-core's check of one selection set; a spent budget is a refusal."""
        try:
            super().enter_selection_set(selection_set, key, parent, *args)
        except Refusal:
            raise
        except ValidationAbortedError:
            raise Refusal("merging", _REFUSED) from None


def _missing_from_graphql_core() -> list[str]:
    """Whether graphql-core's field-merging rule still keeps its budget where this sets it."""
    rule_context = getattr(overlapping_fields_can_be_merged, "RuleContext", None)
    slots = getattr(rule_context, "__slots__", ())
    source = inspect.getsource(OverlappingFieldsCanBeMergedRule.__init__)
    missing = []
    if "remaining_complexity_budget" not in slots:
        missing.append("RuleContext.remaining_complexity_budget")
    if "self.rule_context =" not in source:
        missing.append("OverlappingFieldsCanBeMergedRule.rule_context")
    return missing


SEAM = Seam(
    name="graphql-core's field-merging budget",
    library="graphql-core",
    without="set GATEWAY_GRAPHQL_TUNING=off, or pin graphql-core to the locked release",
    missing=_missing_from_graphql_core,
)
"""`MergeableFieldsRule` sets the budget of graphql-core's rule (a public-looking attribute
of an undocumented class)."""
