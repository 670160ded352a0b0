"""Fault specifications injected through the admin API, and the table that hands them out."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

Key = tuple[str, str]

MAX_DELAY_SECONDS = 300.0
MAX_PAD_BYTES = 256 * 1024 * 1024
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,127}")


class FaultSpecError(ValueError):
    """A fault specification the emulator cannot honour."""


@dataclass(slots=True)
class Fault:
    """What to do instead of (or before) a normal answer."""

    error: str | None = None
    status: int | None = None
    message: str | None = None
    delay: float = 0.0
    reset: bool = False
    malformed: bool = False
    raw_body: str | None = None
    raw_status: int | None = None
    # Answer with a redirect to this URL (Location), status `redirect_status`.
    redirect: str | None = None
    redirect_status: int = 307
    # Answer with the session under other ids than the request's.
    foreign_ids: bool = False
    # Pad the normal answer with this many bytes of JSON whitespace.
    pad_bytes: int = 0
    # Send the normal answer chunked, with no Content-Length.
    chunked: bool = False
    times: int | None = None


_FIELDS = frozenset(field.name for field in fields(Fault))


def _opt_str(spec: dict[str, object], name: str) -> str | None:
    value = spec.get(name)
    if value is None or isinstance(value, str):
        return value
    raise FaultSpecError(f"{name} must be a string or null")


def _opt_int(spec: dict[str, object], name: str, low: int, high: int) -> int | None:
    value = spec.get(name)
    if value is None:
        return None
    # bool is an int subclass, and true must not mean 1.
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FaultSpecError(f"{name} must be an integer in [{low}, {high}] or null")
    return value


def _flag(spec: dict[str, object], name: str) -> bool:
    value = spec.get(name, False)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise FaultSpecError(f"{name} must be a boolean")


def _delay(spec: dict[str, object]) -> float:
    value = spec.get("delay")
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError("delay must be a number of seconds")
    delay = float(value)
    if not math.isfinite(delay) or not 0.0 <= delay <= MAX_DELAY_SECONDS:
        raise FaultSpecError(f"delay must be between 0 and {MAX_DELAY_SECONDS} seconds")
    return delay


def _redirect(spec: dict[str, object]) -> str | None:
    url = _opt_str(spec, "redirect")
    # The URL goes into a response header, so it must stay on one line.
    if url is not None and (
        not url.startswith(("http://", "https://")) or any(c in url for c in "\r\n")
    ):
        raise FaultSpecError("redirect must be an http(s) URL")
    return url


def parse_fault(spec: object) -> Fault:
    """Validate a decoded JSON fault specification."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault must be a JSON object")
    unknown = sorted(set(spec) - _FIELDS)
    if unknown:
        raise FaultSpecError(f"unknown fault fields: {', '.join(map(str, unknown))}")
    error = _opt_str(spec, "error")
    # The code goes into a response header, so it must stay a plain token.
    if error is not None and not _CODE.fullmatch(error):
        raise FaultSpecError("error must be an exception name such as NotFoundException")
    if error is None and (spec.get("status") is not None or spec.get("message") is not None):
        raise FaultSpecError("status and message only apply together with error")
    return Fault(
        error=error,
        status=_opt_int(spec, "status", 200, 599),
        message=_opt_str(spec, "message"),
        delay=_delay(spec),
        reset=_flag(spec, "reset"),
        malformed=_flag(spec, "malformed"),
        raw_body=_opt_str(spec, "raw_body"),
        raw_status=_opt_int(spec, "raw_status", 200, 599),
        redirect=_redirect(spec),
        redirect_status=_opt_int(spec, "redirect_status", 300, 399) or 307,
        foreign_ids=_flag(spec, "foreign_ids"),
        pad_bytes=_opt_int(spec, "pad_bytes", 0, MAX_PAD_BYTES) or 0,
        chunked=_flag(spec, "chunked"),
        times=_opt_int(spec, "times", 1, 1_000_000_000),
    )


class FaultTable:
    """Faults per key plus one wildcard fault; a key's own fault wins over the wildcard."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._by_key: dict[Key, Fault] = {}
        self._wildcard: Fault | None = None

    def put(self, key: Key | None, fault: Fault) -> None:
        """Install a fault for a key, or for every key when key is None."""
        if key is None:
            self._wildcard = fault
            return
        if key not in self._by_key and len(self._by_key) >= self._limit:
            raise FaultSpecError(f"too many faults (limit {self._limit})")
        self._by_key[key] = fault

    def remove(self, key: Key | None) -> None:
        """Remove a key's fault, or every fault when key is None."""
        if key is None:
            self.clear()
        else:
            self._by_key.pop(key, None)

    def clear(self) -> None:
        """Remove every fault."""
        self._by_key.clear()
        self._wildcard = None

    def take(self, key: Key) -> Fault | None:
        """Return the fault for this request, using up one of its remaining times."""
        fault = self._by_key.get(key)
        from_wildcard = fault is None
        if fault is None:
            fault = self._wildcard
            if fault is None:
                return None
        if fault.times is not None:
            fault.times -= 1
            if fault.times <= 0:
                if from_wildcard:
                    self._wildcard = None
                else:
                    del self._by_key[key]
        return fault
