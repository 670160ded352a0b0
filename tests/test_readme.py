"""The README stays the manual: every setting and every error code is documented."""

from __future__ import annotations

from pathlib import Path

import app.domain.errors
from app.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_settings_table() -> None:
    for name, field in Settings.model_fields.items():
        if field.validation_alias is None:
            assert f"`GATEWAY_{name.upper()}`" in README, name


def test_every_error_code_is_in_the_error_table() -> None:
    codes = {
        cls.code
        for cls in vars(app.domain.errors).values()
        if isinstance(cls, type) and issubclass(cls, app.domain.errors.GatewayError)
    }
    for code in codes:
        assert f"| `{code}` |" in README, code


def test_both_commands_are_there() -> None:
    assert "make run" in README
    assert "make test" in README
