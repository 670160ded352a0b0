"""Trusted documents (persisted operations): the manifest a frontend build emits, loaded and
checked once at start.

The manifest (`GATEWAY_GRAPHQL_PERSISTED_DOCUMENTS_FILE`) is JSON, in either form the
ecosystem's tools write:

- a map of document ids to texts, `{"<sha256 hex>": "<document>", ...}` (GraphQL Codegen's
  client preset, `persistedDocuments`; a key may carry a `sha256:` prefix);
- Apollo's `generate-persisted-query-manifest` output, `{"format":
  "apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "name", "type",
  "body"}, ...]}`.

Every id must be the SHA-256 of its document's text, and every document must parse and
validate against the schema under the gateway's rules: a manifest that breaks either stops
the process, naming the document. A request then names a document by `documentId` or by
Apollo's `extensions.persistedQuery.sha256Hash`, and its parsed, validated form is used as
is: a persisted request costs no parsing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from graphql import DocumentNode, GraphQLError, OperationDefinitionNode, parse

from app.domain.errors import PersistedQueryNotFound, PersistedQueryOnly

ADHOC = "adhoc"
"""The `document` metrics label of a document not in the manifest."""
MAX_LABEL = 64


class ManifestError(ValueError):
    """A manifest the gateway cannot use (the process stops with this message)."""


@dataclass(frozen=True, slots=True)
class PersistedDocument:
    """One trusted document: its id (SHA-256 hex), text, metrics label and parsed form."""

    id: str
    text: str
    label: str
    ast: DocumentNode


def _operation_name(ast: DocumentNode) -> str | None:
    names = [
        d.name.value
        for d in ast.definitions
        if isinstance(d, OperationDefinitionNode) and d.name is not None
    ]
    return names[0] if len(names) == 1 else None


def _id(key: str) -> str:
    return key.removeprefix("sha256:").lower()


def _entries(manifest: Any) -> list[tuple[str, str, str | None]]:
    """(id, text, name) for each document of either manifest form."""
    if isinstance(manifest, dict) and manifest.get("format") == "apollo-persisted-query-manifest":
        operations = manifest.get("operations")
        if not isinstance(operations, list):
            raise ManifestError("an Apollo manifest needs a list of operations")
        entries = []
        for operation in operations:
            if not isinstance(operation, dict) or not all(
                isinstance(operation.get(field), str) for field in ("id", "body")
            ):
                raise ManifestError("each Apollo operation needs a string id and body")
            name = operation.get("name")
            entries.append(
                (operation["id"], operation["body"], name if isinstance(name, str) else None)
            )
        return entries
    if isinstance(manifest, dict) and all(
        isinstance(key, str) and isinstance(text, str) for key, text in manifest.items()
    ):
        return [(key, text, None) for key, text in manifest.items()]
    raise ManifestError("expected a JSON object of document ids to document texts")


def named_document(request: dict[str, Any]) -> object:
    """The trusted document id a request names: `documentId`, else Apollo's
    `extensions.persistedQuery.sha256Hash`; None when it names none."""
    if request.get("documentId") is not None:
        return request["documentId"]
    extensions = request.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    return persisted.get("sha256Hash") if isinstance(persisted, dict) else None


class Manifest:
    """The trusted documents by id and by text; `persisted_only` refuses any other text."""

    def __init__(self, documents: list[PersistedDocument], *, persisted_only: bool) -> None:
        self.persisted_only = persisted_only
        self.by_id = {document.id: document for document in documents}
        self.by_text = {document.text: document for document in documents}

    @classmethod
    def empty(cls) -> Manifest:
        """No trusted documents (no manifest configured)."""
        return cls([], persisted_only=False)

    @classmethod
    def load(cls, path: Path, *, persisted_only: bool) -> Manifest:
        """The manifest at `path`; ManifestError saying what is wrong (ids checked here,
        documents by `Documents.trust`)."""
        try:
            raw = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise ManifestError(f"{path} is not JSON: {exc}") from None
        documents: list[PersistedDocument] = []
        labels: set[str] = set()
        for key, text, name in _entries(raw):
            document_id = _id(key)
            if hashlib.sha256(text.encode()).hexdigest() != document_id:
                raise ManifestError(f"document {key} is not the SHA-256 of its text")
            try:
                ast = parse(text)
            except GraphQLError as exc:
                raise ManifestError(f"document {key} does not parse: {exc.message}") from None
            label = (name or _operation_name(ast) or document_id[:16])[:MAX_LABEL]
            if label in labels:  # labels are metrics label values: one per document
                label = document_id[:16]
            labels.add(label)
            documents.append(PersistedDocument(document_id, text, label, ast))
        return cls(documents, persisted_only=persisted_only)

    def resolve(self, body: dict[str, Any]) -> None:
        """Put the trusted document a request names into its `query`, in place; refuse an
        unknown id, and (persisted only) a text the manifest does not hold."""
        document_id = named_document(body)
        if document_id is not None:
            document = self._by_id(document_id)
            if document is None:
                raise PersistedQueryNotFound("No trusted document has this id.")
            query = body.get("query")
            if query is not None and query != document.text:
                raise PersistedQueryNotFound("The query sent is not the document of this id.")
            body["query"] = document.text
            body.pop("documentId", None)
            return
        if self.persisted_only:
            query = body.get("query")
            if not isinstance(query, str) or query not in self.by_text:
                raise PersistedQueryOnly(
                    "Only trusted documents run here: send a documentId from the manifest."
                )

    def text_of(self, document_id: object) -> str | None:
        """The text of the trusted document with this id (with or without `sha256:`)."""
        document = self._by_id(document_id)
        return None if document is None else document.text

    def _by_id(self, document_id: object) -> PersistedDocument | None:
        """The trusted document a request's id names (with or without `sha256:`), if any."""
        return self.by_id.get(_id(document_id)) if isinstance(document_id, str) else None

    def label(self, query: str | None) -> str:
        """The `document` metrics label for a query text (bounded by the manifest)."""
        if query is None:
            return ADHOC
        document = self.by_text.get(query)
        return ADHOC if document is None else document.label
