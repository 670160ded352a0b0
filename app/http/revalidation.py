"""Whether a request asks the gateway to revalidate instead of answering from the cache."""

from __future__ import annotations


def wants_revalidation(cache_control: str | None, pragma: str | None = None) -> bool:
    """True for `Cache-Control: no-cache` or `max-age=0`, or the HTTP/1.0 `Pragma: no-cache`."""
    if cache_control:
        directives = {d.strip().lower() for d in cache_control.split(",")}
        if "no-cache" in directives or "max-age=0" in directives:
            return True
    return pragma is not None and "no-cache" in pragma.lower()
