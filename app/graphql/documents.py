"""Parsed and validated documents, cached by query text; the token limit applies while parsing."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import strawberry
import strawberry.schema.schema as strawberry_schema
from cachetools import LRUCache
from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    parse,
)
from graphql.error import GraphQLSyntaxError
from graphql.validation import OverlappingFieldsCanBeMergedRule
from strawberry.extensions import SchemaExtension
from strawberry.schema import BaseSchema
from strawberry.schema.schema import validate_document

from app.graphql.limits import Refusal
from app.graphql.merging import MergeableFieldsRule
from app.graphql.persisted import Manifest, ManifestError
from app.seams import Seam

# A parsed document keeps its tokens for error locations: about 400 bytes a token
# (measured with tracemalloc). The cache is bounded by that estimate, not by a count of
# documents, so that distinct documents at the token limit cannot fill the memory.
TOKEN_BYTES = 400
CACHE_BYTES = 32 * 1024 * 1024


@dataclass(slots=True)
class Document:
    """A parsed document and, once validated, its validation errors and the rules used."""

    ast: DocumentNode
    size: int
    operations: int = 1
    rules: tuple[type[ASTValidationRule], ...] | None = None
    errors: list[GraphQLError] | None = None


class Documents:
    """Documents by query text for one schema, with the token limit applied."""

    def __init__(self, max_tokens: int, cache_bytes: int = CACHE_BYTES) -> None:
        self.max_tokens = max_tokens
        # graphql-core says so in this exact message, both in its lexer and its parser.
        self._too_many = (
            f"Syntax Error: Document contains more than {max_tokens} tokens. Parsing aborted."
        )
        self._cache: LRUCache[str, Document] = LRUCache(cache_bytes, getsizeof=_size)
        # The manifest's trusted documents, parsed and validated at start, never evicted.
        self._trusted: dict[str, Document] = {}

    def trust(
        self,
        schema: GraphQLSchema,
        manifest: Manifest,
        rules: tuple[type[ASTValidationRule], ...],
    ) -> None:
        """Keep the manifest's documents parsed and validated under `rules` (the rules a
        request runs with); ManifestError naming the first that does not validate."""
        for persisted in manifest.by_id.values():
            operations = sum(
                isinstance(d, OperationDefinitionNode) for d in persisted.ast.definitions
            )
            document = Document(persisted.ast, len(persisted.text), operations)
            errors = self.validate(schema, document, rules)
            if errors:
                raise ManifestError(
                    f"document {persisted.id} ({persisted.label}) does not validate:"
                    f" {errors[0].message}"
                )
            self._trusted[persisted.text] = document

    def parse(self, query: str) -> Document:
        """The document for `query`; raises Refusal past the token limit, before the full parse."""
        document = self._trusted.get(query) or self._cache.get(query)
        if document is not None:
            return document
        try:
            ast = parse(query, max_tokens=self.max_tokens)
        except GraphQLSyntaxError as error:
            if error.message == self._too_many:
                raise Refusal(
                    "tokens", f"Document exceeds the maximum of {self.max_tokens} tokens."
                ) from None
            raise
        # Comments count as tokens too (`max_tokens`, unlike `max_lexical_tokens`).
        tokens: int = getattr(ast, "token_count", self.max_tokens)
        operations = sum(isinstance(d, OperationDefinitionNode) for d in ast.definitions)
        document = Document(ast, len(query) + TOKEN_BYTES * tokens, operations)
        if document.size <= self._cache.maxsize:
            self._cache[query] = document
        return document

    def validate(
        self, schema: GraphQLSchema, document: Document, rules: tuple[type[ASTValidationRule], ...]
    ) -> list[GraphQLError]:
        """The validation errors of `document` under `rules`, computed once per document."""
        if document.errors is None or document.rules != rules:
            document.errors = validate_document(schema, document.ast, _bounded(rules))
            document.rules = rules
        return document.errors


def _bounded(rules: tuple[type[ASTValidationRule], ...]) -> tuple[type[ASTValidationRule], ...]:
    """`rules` with graphql-core's field-merging rule replaced by the bounded one, last: the
    limits refuse an oversized document before it is compared."""
    if OverlappingFieldsCanBeMergedRule not in rules:
        return rules
    kept = tuple(rule for rule in rules if rule is not OverlappingFieldsCanBeMergedRule)
    return (*kept, MergeableFieldsRule)


def _size(document: Document) -> int:
    return document.size


class DocumentCache(SchemaExtension):
    """Parses and validates through the schema's `Documents` (strawberry's caches replaced)."""

    def __init__(self, documents: Documents) -> None:
        super().__init__()
        self._documents = documents
        self._document: Document | None = None

    def on_parse(self) -> Iterator[None]:
        """Set the parsed document, or raise the token refusal, or refuse a document of
        several operations that does not name the one to run."""
        context = self.execution_context
        if context.query:  # strawberry refuses a missing query before parsing
            self._document = self._documents.parse(context.query)
            if self._document.operations > 1 and not context.operation_name:
                raise Refusal(
                    "operation_name",
                    "Document has several operations: operationName must name the one to run.",
                )
            context.graphql_document = self._document.ast
        yield

    def on_validate(self) -> Iterator[None]:
        """Set the validation errors, which also keeps strawberry from validating again."""
        context = self.execution_context
        if self._document is not None:
            context.pre_execution_errors = self._documents.validate(
                graphql_schema(context.schema), self._document, context.validation_rules
            )
        yield


def graphql_schema(schema: BaseSchema) -> GraphQLSchema:
    """The graphql-core schema a strawberry schema executes with (a private attribute)."""
    built: GraphQLSchema = schema._schema  # type: ignore[attr-defined]
    return built


@strawberry.type
class _Probe:
    ok: bool


def _missing_from_strawberry() -> list[str]:
    """What this module needs of strawberry that the installed one lacks."""
    missing = []
    if not isinstance(getattr(strawberry.Schema(query=_Probe), "_schema", None), GraphQLSchema):
        missing.append("Schema._schema")
    validate = getattr(strawberry_schema, "validate_document", None)
    if validate is None or list(inspect.signature(validate).parameters) != [
        "schema",
        "document",
        "validation_rules",
    ]:
        missing.append("strawberry.schema.schema.validate_document(schema, document, rules)")
    return missing


def _missing_from_graphql_core() -> list[str]:
    """Whether graphql-core still words the token limit as `Documents` expects and counts
    a document's tokens."""
    missing = []
    try:
        parse("{ a b }", max_tokens=2)
    except GraphQLSyntaxError as error:
        if error.message != Documents(2)._too_many:
            missing.append("its token-limit message")
    else:
        missing.append("the token limit of parse()")
    if not isinstance(getattr(parse("{ a }"), "token_count", None), int):
        missing.append("DocumentNode.token_count")
    return missing


STRAWBERRY_SEAM = Seam(
    name="strawberry's schema and validation",
    library="strawberry-graphql",
    without="set GATEWAY_GRAPHQL_TUNING=off, or pin strawberry-graphql to the locked release",
    missing=_missing_from_strawberry,
)
"""`DocumentCache` and `Documents.trust` validate with strawberry's own rules and schema."""

TOKENS_SEAM = Seam(
    name="graphql-core's token limit",
    library="graphql-core",
    without="set GATEWAY_GRAPHQL_TUNING=off, or pin graphql-core to the locked release",
    missing=_missing_from_graphql_core,
)
"""`Documents.parse` tells the token limit's refusal by graphql-core's words."""
