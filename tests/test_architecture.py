"""The layering STYLE.md describes, checked on the imports themselves."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import app

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: Path) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p) for p in folder.rglob("*.py")}


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def test_only_the_upstream_module_knows_aws_sdks() -> None:
    users = {
        m
        for m, names in _modules(APP).items()
        if _top(names) & {"aioboto3", "aiobotocore", "botocore", "boto3"}
    }

    assert users == {"app/upstream/client.py", "app/upstream/tuning.py"}


def test_the_doors_never_import_each_other() -> None:
    modules = _modules(APP)

    assert not [
        m
        for m, n in modules.items()
        if m.startswith("app/rest/") and any(x.startswith("app.graphql") for x in n)
    ]
    assert not [
        m
        for m, n in modules.items()
        if m.startswith("app/graphql/") and any(x.startswith("app.rest") for x in n)
    ]


def test_the_cache_knows_no_http_and_no_aws() -> None:
    for module in ("app/cache.py", "app/singleflight.py"):
        names = _top(_modules(APP)[module])
        assert names <= {
            "__future__",
            "asyncio",
            "collections",
            "dataclasses",
            "time",
            "typing",
            "cachetools",
        }, module


def test_the_service_knows_no_http() -> None:
    names = _top(_modules(APP)["app/service.py"])

    assert not names & {"fastapi", "starlette", "strawberry", "aioboto3", "botocore"}


def test_app_and_emulator_never_import_each_other() -> None:
    assert not [m for m, n in _modules(APP).items() if _top(n) & {"emulator", "tests", "scripts"}]
    assert not [m for m, n in _modules(ROOT / "emulator").items() if _top(n) & {"app", "tests"}]


def test_every_module_uses_postponed_annotations() -> None:
    for folder in ("app", "emulator", "tests", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "def " in text or "class " in text:
                assert "from __future__ import annotations" in text, path


def test_package_version_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert project["version"] == app.__version__
