"""The documentation stays true: its tables restate the code exactly, its links lead
somewhere, and nothing in the repository points outside it."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from app.domain.errors import MethodNotAllowed, Unauthenticated, error_table
from app.main import SEAMS
from app.observability.metrics import Metrics
from app.settings import Settings

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
DOCUMENTS = [
    README,
    *sorted(DOCS.glob("*.md")),
    ROOT / "bench" / "README.md",
    ROOT / "deploy" / "helm" / "proxy-session-gateway" / "README.md",
]

Row = dict[str, str]

_FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"`([^`]+)`")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_SEPARATOR = re.compile(r"\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?")


def _prose(path: Path) -> str:
    """The markdown of `path` without its fenced code blocks."""
    return _FENCE.sub("", path.read_text(encoding="utf-8"))


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in _CELL_SPLIT.split(line.strip().strip("|"))]


def _tables(path: Path) -> Iterator[tuple[list[str], list[Row]]]:
    """Every pipe table of `path`: its header cells and its rows by header."""
    lines = _prose(path).splitlines()
    for index, line in enumerate(lines[:-1]):
        if not line.lstrip().startswith("|") or not _SEPARATOR.fullmatch(lines[index + 1].strip()):
            continue
        if index > 0 and lines[index - 1].lstrip().startswith("|"):
            continue  # not the first line of its table
        header = _cells(line)
        rows = []
        for body in lines[index + 2 :]:
            if not body.lstrip().startswith("|"):
                break
            cells = _cells(body)
            assert len(cells) == len(header), f"{path.name}: {body!r} has {len(cells)} cells"
            rows.append(dict(zip(header, cells, strict=True)))
        yield header, rows


def _table(path: Path, *header: str) -> list[Row]:
    """The one table of `path` with exactly these column headers."""
    found = [rows for cells, rows in _tables(path) if cells == list(header)]
    assert len(found) == 1, f"{path.name} should have one table headed {' | '.join(header)}"
    return found[0]


def _spans(cell: str) -> list[str]:
    """The code spans of a cell, in order."""
    return _CODE_SPAN.findall(cell)


def _only_span(cell: str) -> str:
    spans = _spans(cell)
    assert [f"`{span}`" for span in spans] == [cell], f"one code span per cell: {cell!r}"
    return spans[0]


def _differences(documented: set[str], actual: set[str]) -> dict[str, list[str]]:
    return {
        "documented but not in the code": sorted(documented - actual),
        "in the code but not documented": sorted(actual - documented),
    }


# Settings


UNSET = "unset"


def _gateway_settings() -> dict[str, FieldInfo]:
    prefix = Settings.model_config.get("env_prefix")
    assert prefix == "GATEWAY_"
    return {
        f"{prefix}{name.upper()}": field
        for name, field in Settings.model_fields.items()
        if field.validation_alias is None
    }


def _aws_variables() -> set[str]:
    """The variables of the settings that AWS names (a `validation_alias`), not the gateway."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
        elif isinstance(alias, str):
            names.add(alias)
    return names


def _matches(documented: str, default: object) -> bool:
    """Whether a default cell (`unset`, or a code span first) says `default`."""
    if default is None or default == "" or default == ():
        return documented == UNSET
    spans = _spans(documented)
    if not spans or not documented.startswith(f"`{spans[0]}`"):
        return False
    shown = spans[0]
    if isinstance(default, bool):
        return shown == str(default).lower()
    if isinstance(default, int | float):
        try:
            return float(shown) == float(default)
        except ValueError:
            return False
    return shown == str(default)


SETTINGS_TABLE = _table(DOCS / "configuration.md", "variable", "meaning", "values", "default")


def test_the_settings_table_lists_exactly_the_settings() -> None:
    documented = [_only_span(row["variable"]) for row in SETTINGS_TABLE]

    assert len(documented) == len(set(documented)), "a variable is listed twice"
    assert set(documented) == set(_gateway_settings()), _differences(
        set(documented), set(_gateway_settings())
    )


def test_the_settings_table_gives_each_default_as_the_settings_class_has_it() -> None:
    settings = _gateway_settings()
    wrong: dict[str, tuple[str, object]] = {}
    for row in SETTINGS_TABLE:
        name = _only_span(row["variable"])
        if name in settings and not _matches(row["default"], settings[name].default):
            wrong[name] = (row["default"], settings[name].default)

    assert wrong == {}


def test_the_aws_variables_the_settings_read_are_documented_as_aws_ones() -> None:
    rows = _table(DOCS / "configuration.md", "variable", "meaning")
    documented = {span for row in rows for span in _spans(row["variable"])}

    assert _aws_variables() <= documented
    assert not {name for name in documented if name.startswith("GATEWAY_")}


# Errors


ERROR_TABLE = _table(DOCS / "errors.md", "code", "status", "cause", "notes")


def test_the_error_table_lists_exactly_the_error_classes_with_their_status() -> None:
    documented = sorted((_only_span(row["code"]), int(row["status"])) for row in ERROR_TABLE)
    actual = sorted((cls.code, cls.status) for cls in error_table())

    assert documented == actual


def test_the_error_table_names_the_headers_each_error_carries() -> None:
    notes = {_only_span(row["code"]): row["notes"] for row in ERROR_TABLE}
    for cls in error_table():
        if cls.retry_after is not None:
            assert "Retry-After" in notes[cls.code], cls.code
        if issubclass(cls, Unauthenticated):
            assert "WWW-Authenticate" in notes[cls.code], cls.code
        if issubclass(cls, MethodNotAllowed):
            assert "Allow" in notes[cls.code], cls.code


# Metrics


def _exposed(name: str, kind: str) -> str:
    """A family's name as a scrape shows it: prometheus_client keeps counters without `_total`."""
    return f"{name}_total" if kind == "counter" else name


def _families() -> dict[str, tuple[str, frozenset[str]]]:
    """Every family the gateway's registry exposes: its type and label names."""
    registry = Metrics(fleet=True).registry
    families: dict[str, tuple[str, frozenset[str]]] = {}
    # prometheus_client keeps label names on the collectors only, not on collected families.
    for collector in registry._collector_to_names:
        labels = frozenset(getattr(collector, "_labelnames", ()))
        for family in collector.collect():
            families[_exposed(family.name, family.type)] = (family.type, labels)
    collected = {_exposed(family.name, family.type) for family in registry.collect()}
    assert set(families) == collected
    return families


METRICS_TABLE = _table(DOCS / "operations.md", "metric", "type", "labels", "meaning")


def test_the_metrics_table_lists_exactly_the_registered_families() -> None:
    documented = {_only_span(row["metric"]) for row in METRICS_TABLE}
    actual = set(_families())

    assert len(documented) == len(METRICS_TABLE), "a metric is listed twice"
    assert documented == actual, _differences(documented, actual)


def test_the_metrics_table_gives_each_family_its_type_and_labels() -> None:
    families = _families()
    wrong: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for row in METRICS_TABLE:
        name = _only_span(row["metric"])
        documented = (row["type"], frozenset(_spans(row["labels"])))
        if name in families and documented != families[name]:
            kind, labels = families[name]
            wrong[name] = {
                "documented": (documented[0], sorted(documented[1])),
                "registered": (kind, sorted(labels)),
            }

    assert wrong == {}


# Links and references


_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*:", re.IGNORECASE)
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


# Seams

SEAM_COLUMNS = (
    "seam",
    "library",
    "private names",
    "what it buys",
    "guard tests",
    "start-up check",
    "how to run without it",
)
BOTOCORE_ROW = "botocore's per-call shortcuts"


def test_the_seam_table_lists_exactly_the_seams_with_their_checks() -> None:
    rows = _table(DOCS / "performance.md", *SEAM_COLUMNS)
    by_name = {row["seam"]: row for row in rows}

    assert _differences(set(by_name), {seam.name for seam in SEAMS} | {BOTOCORE_ROW}) == {
        "documented but not in the code": [],
        "in the code but not documented": [],
    }
    for seam in SEAMS:
        row = by_name[seam.name]
        [check] = _spans(row["start-up check"])
        module, _, attribute = check.rpartition(".")
        assert getattr(importlib.import_module(module), attribute) is seam, check
        assert row["library"] == seam.library
        if "GATEWAY_" in seam.without:
            assert all(name in seam.without for name in _spans(row["how to run without it"]))
    for row in rows:
        tests = _spans(row["guard tests"])
        assert tests, row["seam"]
        assert all((ROOT / test).is_file() for test in tests), row["guard tests"]


def _anchor(heading: str) -> str:
    """The anchor a heading gets when the markdown is rendered (GitHub's rule)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_anchor(heading) for heading in _HEADING.findall(_prose(path))}


def _relative_links(path: Path) -> Iterator[str]:
    prose = _CODE_SPAN.sub("", _prose(path))
    for target in _LINK.findall(prose):
        if not _SCHEME.match(target):
            yield target


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(document: Path) -> None:
    broken = []
    for target in _relative_links(document):
        file_part, _, anchor = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        inside = linked.exists() and linked.is_relative_to(ROOT)
        heading_found = not anchor or linked.suffix != ".md" or anchor in _anchors(linked)
        if not (inside and heading_found):
            broken.append(target)

    assert broken == []


def test_the_readme_links_every_docs_page_and_the_benchmark() -> None:
    prose = _prose(README)
    for page in sorted(DOCS.glob("*.md")):
        assert f"(docs/{page.name})" in prose, page.name
    assert "(bench/README.md)" in prose


# Built up, so that this file does not hold what it looks for.
OUTSIDE_REFERENCES = ("../" + "shared", "contract" + ".md", "issue" + " 5")
NOT_THE_REPOSITORY = {
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    ".schemathesis",
    "htmlcov",
    "node_modules",
}


def _repository_files() -> Iterator[Path]:
    for folder, dirnames, filenames in os.walk(ROOT):
        here = Path(folder)
        dirnames[:] = [
            name
            for name in dirnames
            if name not in NOT_THE_REPOSITORY and here / name != ROOT / "bench" / "results"
        ]
        for name in filenames:
            if name not in NOT_THE_REPOSITORY and not name.startswith(".coverage"):
                yield here / name


def test_nothing_in_the_repository_points_outside_it() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {reference}"
        for path in _repository_files()
        for reference in OUTSIDE_REFERENCES
        if reference.encode() in path.read_bytes().lower()
    ]

    assert found == []


def test_the_readme_names_the_two_commands() -> None:
    prose = README.read_text(encoding="utf-8")

    assert "make run" in prose
    assert "make test" in prose
