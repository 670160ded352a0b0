"""Where the gateway reaches into a library's private names, and how it knows it still can.

Each such reach (a seam) is declared beside the code that makes it, as a `Seam` that can
say which of the names it needs the installed library lacks. The gateway checks every seam
it will use when it is built (`require`), so a library release that moved one stops it at
start with one line naming the seam, the names and how to run without it, instead of
failing on some request later. docs/performance.md lists every seam in one table (a test
holds the table to the code).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Seam:
    """One reach into a library's private names."""

    name: str
    """The seam's row in the table of docs/performance.md."""
    library: str
    without: str
    """How to run the gateway without the seam."""
    missing: Callable[[], Iterable[str]]
    """The names the seam needs that the installed library lacks (none: all there)."""


class SeamChanged(RuntimeError):
    """A library no longer has what a seam needs."""


def require(seams: Iterable[Seam]) -> None:
    """Check `seams`; raise SeamChanged naming the first whose library changed."""
    for seam in seams:
        missing = sorted(seam.missing())
        if missing:
            raise SeamChanged(
                f"{seam.library} changed under the seam {seam.name!r}: it lacks"
                f" {', '.join(missing)}; {seam.without}"
            )


def lacking(owner: object, names: Iterable[str]) -> list[str]:
    """The names in `names` that `owner` (a class or module) has no attribute for."""
    label = getattr(owner, "__qualname__", getattr(owner, "__name__", repr(owner)))
    return [f"{label}.{name}" for name in names if not hasattr(owner, name)]
