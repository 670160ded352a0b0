"""A small Dockerfile reader, so the tests can check the image recipe and replay its steps."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Instruction:
    """One Dockerfile instruction: its keyword (upper-case) and raw arguments."""

    keyword: str
    args: str


@dataclass
class Stage:
    """One build stage: its base image, name and instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        """The arguments of every instruction with this keyword."""
        return [i.args for i in self.instructions if i.keyword == keyword]

    def args(self, global_args: dict[str, str]) -> dict[str, str]:
        """The build arguments visible in the stage, with their default values.

        As Docker has it: an `ARG NAME=value` in the stage sets its own default, a bare
        `ARG NAME` brings in the value declared before the first FROM, and an argument the
        stage does not declare is not visible in it at all.
        """
        out: dict[str, str] = {}
        for args in self.all("ARG"):
            key, sep, value = args.partition("=")
            out[key] = value if sep else global_args.get(key, "")
        return out

    def labels(self, global_args: dict[str, str]) -> dict[str, str]:
        """The stage's LABEL values, with its build arguments expanded (undeclared: empty)."""
        visible = self.args(global_args)
        out: dict[str, str] = {}
        for args in self.all("LABEL"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = _expand(value, visible, missing="")
        return out

    def env(self) -> dict[str, str]:
        """The stage's ENV assignments, in order (`KEY=value` form only)."""
        out: dict[str, str] = {}
        for args in self.all("ENV"):
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                out[key] = value
        return out


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of the Dockerfile at `path`."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            base = _expand(words[0], args)
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages and keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        elif stages:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return args, stages


def exec_form(args: str) -> list[str] | None:
    """The JSON array of an exec-form CMD/ENTRYPOINT, or None for shell form."""
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return None
    return [str(v) for v in value] if isinstance(value, list) else None


def _expand(value: str, args: dict[str, str], missing: str | None = None) -> str:
    """`value` with `$NAME`/`${NAME}` replaced; an unknown name is kept, or set to `missing`."""
    return re.sub(
        r"\$\{(\w+)\}|\$(\w+)",
        lambda m: args.get(m[1] or m[2], m[0] if missing is None else missing),
        value,
    )
