"""`python -m app.export`: write openapi.json and schema.graphql at the repository root."""

from __future__ import annotations

import json
from pathlib import Path

from app.graphql.schema import build_schema
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OPENAPI = ROOT / "openapi.json"
SCHEMA = ROOT / "schema.graphql"


def openapi_text() -> str:
    """The OpenAPI document as committed (settings do not change it)."""
    document = create_app(Settings()).openapi()
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def schema_text() -> str:
    """The GraphQL SDL as committed."""
    return build_schema().as_str() + "\n"


def main() -> None:
    """Regenerate both files."""
    OPENAPI.write_text(openapi_text(), encoding="utf-8")
    SCHEMA.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {OPENAPI.name} and {SCHEMA.name}")


if __name__ == "__main__":
    main()
