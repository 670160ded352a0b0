"""Phone-number masking: keep the last four digits (`+*******1234`)."""

from __future__ import annotations

VISIBLE_DIGITS = 4


def mask_phone(number: str) -> str:
    """`+12065551234` -> `+*******1234`; anything shorter than five characters is all stars."""
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus) :]
    if len(digits) <= VISIBLE_DIGITS:
        return plus + "*" * len(digits)
    return plus + "*" * (len(digits) - VISIBLE_DIGITS) + digits[-VISIBLE_DIGITS:]
