"""The layering the README's architecture sketch describes, checked on the imports themselves."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

import pytest

import app

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "app"


def _imports(path: Path) -> set[str]:
    """The modules `path` imports, relative imports resolved (`from . import x` as the
    package's `x` when it is a module, else the package)."""
    return _imports_of(ast.parse(path.read_text(encoding="utf-8")), _package_of(path))


def _imports_of(tree: ast.AST, package: list[str]) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            if node.level and node.module is None:  # from . import x: x may be a module
                names.update(_submodule_or(module, alias.name) for alias in node.names)
            else:
                names.add(module)
    return names


def _package_of(path: Path) -> list[str]:
    """The package a module file is in, as parts (`app/http/edge.py` is in app.http)."""
    return list(path.relative_to(ROOT).parent.parts)


def _absolute(node: ast.ImportFrom, package: list[str]) -> str:
    """The absolute module an ImportFrom names."""
    if not node.level:
        return node.module or ""
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _submodule_or(package: str, name: str) -> str:
    folder = ROOT.joinpath(*package.split("."))
    if (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file():
        return f"{package}.{name}"
    return package


def _modules(folder: Path) -> dict[str, set[str]]:
    return {str(p.relative_to(ROOT)): _imports(p) for p in folder.rglob("*.py")}


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


LAYERS: tuple[tuple[str, ...], ...] = (
    ("app.__main__", "app.export"),
    ("app.main",),
    ("app.rest", "app.graphql", "app.ops", "app.pages"),
    ("app.http",),
    ("app.auth",),
    ("app.observability",),
    ("app.service",),
    ("app.cache", "app.upstream", "app.shared"),
    ("app.domain",),
    ("app.settings",),
    ("app.redis_target", "app.runtime", "app"),
)
"""The house, top floor first: a module imports only from its own floor's package or below.

Packages on one floor are neighbours that never import each other (the doors; the cache,
the upstream client and the shared layer)."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package(module: str) -> tuple[int, str]:
    """The floor and the package of an app module (the longest prefix listed)."""
    best: tuple[int, str] | None = None
    for floor, packages in enumerate(LAYERS):
        for package in packages:
            if (module == package or module.startswith(package + ".")) and (
                best is None or len(package) > len(best[1])
            ):
                best = (floor, package)
    assert best is not None, f"{module} is on no floor of LAYERS"
    return best


def _app_imports() -> dict[str, set[str]]:
    return {
        _module_name(path): {n for n in _imports(path) if n == "app" or n.startswith("app.")}
        for path in APP.rglob("*.py")
    }


def test_every_app_module_is_on_a_floor() -> None:
    for module in _app_imports():
        _package(module)


def test_imports_only_go_down_the_layers() -> None:
    upward = []
    for module, names in _app_imports().items():
        floor, package = _package(module)
        for name in names:
            target_floor, target = _package(name)
            if target_floor < floor or (target_floor == floor and target != package):
                upward.append(f"{module} imports {name}")

    assert upward == []


def test_only_the_upstream_package_knows_aws_sdks() -> None:
    users = {
        m
        for m, names in _modules(APP).items()
        if _top(names) & {"aioboto3", "aiobotocore", "botocore", "boto3"}
    }

    assert users == {"app/upstream/client.py", "app/upstream/tuning.py"}


def test_the_cache_knows_no_http_and_no_aws() -> None:
    for module, names in _modules(APP / "cache").items():
        assert _top(names) <= {
            "__future__",
            "asyncio",
            "collections",
            "dataclasses",
            "time",
            "typing",
            "cachetools",
        }, module


HTTP_LIBRARIES = {"fastapi", "starlette", "strawberry", "uvicorn", "httpx", "aioboto3", "botocore"}
# What HTTP looks like in code: header names, RFC 9211 parameters, status-code words.
HTTP_WORDS = re.compile(
    r"cache-status|cache-control|max-age|retry-after|www-authenticate|content-type|"
    r"fwd=|ttl=|fwd-status|stored|proxy-gateway|http|header|status_code|\.status\b",
    re.IGNORECASE,
)


def test_the_service_speaks_no_http() -> None:
    for path in (APP / "service").rglob("*.py"):
        assert not _top(_imports(path)) & HTTP_LIBRARIES, path
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
        }
        words = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and HTTP_WORDS.search(node.value)
        ]
        identifiers = [name for name in _identifiers(tree) if HTTP_IDENTIFIERS.fullmatch(name)]
        assert words == [], path
        assert identifiers == [], path


# What HTTP looks like as a name: `status=404`, `headers`, `etag`, `http_…`.
HTTP_IDENTIFIERS = re.compile(
    r"status(_code)?|\w*headers?|http\w*|cache_control|retry_after|www_authenticate|"
    r"content_type|etag|request|response",
    re.IGNORECASE,
)


def _identifiers(tree: ast.AST) -> list[str]:
    """Every name a module binds or uses: variables, attributes, arguments, keywords,
    functions and classes."""
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.append(node.id)
        elif isinstance(node, ast.Attribute):
            names.append(node.attr)
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            names.append(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
    return names


def test_the_name_check_sees_keywords_and_relative_imports() -> None:
    tree = ast.parse("from ..domain import outcome\noutcome.CacheOutcome(status=404)\n")

    assert "status" in _identifiers(tree)
    assert _imports_of(tree, ["app", "service"]) == {"app.domain"}


# The libraries each package may import besides the standard library (and the app itself).
LIBRARIES: dict[str, set[str]] = {
    "app.__main__": {"pydantic", "uvicorn"},
    "app.auth": {"aiohttp", "cachetools", "jwt", "orjson"},
    "app.cache": {"cachetools"},
    "app.domain": {"orjson"},
    "app.graphql": {
        "cachetools",
        "cross_web",
        "fastapi",
        "graphql",
        "orjson",
        "starlette",
        "strawberry",
    },
    "app.http": {"fastapi", "httptools", "opentelemetry", "orjson", "starlette", "uvicorn"},
    "app.main": {"fastapi", "starlette"},
    "app.observability": {"opentelemetry", "orjson", "prometheus_client"},
    "app.ops": {"fastapi", "prometheus_client"},
    "app.pages": {"fastapi", "fastapi_offline"},
    "app.rest": {"fastapi", "pydantic", "starlette"},
    "app.settings": {"pydantic", "pydantic_settings"},
    "app.shared": {"cryptography", "opentelemetry", "orjson", "redis"},
    "app.upstream": {"aioboto3", "aiobotocore", "aiohttp", "botocore", "opentelemetry"},
}


def test_each_package_imports_only_its_libraries() -> None:
    standard = set(sys.stdlib_module_names) | {"__future__"}
    beyond: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        module = _module_name(path)
        package = ".".join(module.split(".")[:2])
        used = _top(_imports(path)) - standard - {"app"}
        extra = used - LIBRARIES.get(package, set())
        if extra:
            beyond.setdefault(module, set()).update(extra)

    assert beyond == {}


def test_uvicorn_s_internals_are_used_by_the_protocol_module_only() -> None:
    users = {
        module
        for module, names in _modules(APP).items()
        if any(name.startswith("uvicorn.") for name in names)
    }

    assert users == {"app/http/protocol.py"}


def test_no_private_name_of_fastapi_or_starlette_is_used() -> None:
    private = []
    for path in APP.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and _top({node.module or ""}) & {
                "fastapi",
                "starlette",
            }:
                parts = (node.module or "").split(".")
                names = [alias.name for alias in node.names]
                if any(part.startswith("_") for part in parts) or any(
                    name.startswith("_") for name in names
                ):
                    private.append(f"{path.name}: from {node.module} import {', '.join(names)}")

    assert private == []


def test_app_and_emulator_never_import_each_other() -> None:
    development = {"emulator", "tests", "scripts", "bench", "harness"}
    assert not [m for m, n in _modules(APP).items() if _top(n) & development]
    emulator = _modules(ROOT / "emulator")
    assert not [m for m, n in emulator.items() if _top(n) & {"app", "tests", "harness"}]


def test_the_harness_starts_programs_but_imports_none() -> None:
    harness = _modules(ROOT / "harness")
    assert not [m for m, n in harness.items() if _top(n) & {"app", "emulator", "tests"}]


def test_only_the_tests_import_the_tests() -> None:
    for folder in ("scripts", "bench", "harness"):
        assert not [m for m, n in _modules(ROOT / folder).items() if "tests" in _top(n)], folder


def test_every_module_uses_postponed_annotations() -> None:
    for folder in ("app", "emulator", "tests", "scripts", "bench", "harness"):
        for path in (ROOT / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            if "def " in text or "class " in text:
                assert "from __future__ import annotations" in text, path


def test_package_version_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    assert project["version"] == app.__version__


def test_the_readme_pictures_the_floors_in_order() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Architecture", 1)[1]
    picture = section.split("```", 2)[1]
    floors = []
    for line in picture.splitlines():
        paths = re.split(r"\s{2,}", line.strip())[0]
        for path in re.findall(r"\bapp/[\w/.]*", paths if paths.startswith("app/") else ""):
            module = path.removesuffix("/").removesuffix(".py").replace("/", ".")
            floors.append(_package(module))

    assert [floor for floor, _ in floors] == sorted(floor for floor, _ in floors)
    pictured = {package for _, package in floors}
    assert pictured == {package for packages in LAYERS for package in packages}


def test_telemetry_knows_no_upstream_policy() -> None:
    """Metrics, logs and traces describe what happened: the breaker's states, like every
    other fact they report, come from the domain, not from the upstream client."""
    users = [
        module
        for module, names in _app_imports().items()
        if module.startswith("app.observability")
        and any(n.startswith("app.upstream") for n in names)
    ]

    assert users == []
