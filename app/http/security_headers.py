"""The security headers every response carries, and what CORS allows on `/graphql`."""

from __future__ import annotations

from starlette.types import Scope

from app.http.asgi import GRAPHQL_PATH

# An API answers JSON: nothing in it may be sniffed, framed, or load anything.
HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# The developer pages set a Content-Security-Policy of their own, allowing what each loads
# (app/pages.py, app/graphql/ide.py).
PAGES = frozenset({"/docs", GRAPHQL_PATH})


STRICT = (*HEADERS, API_CSP)


def security_headers(scope: Scope) -> tuple[tuple[bytes, bytes], ...]:
    """The headers every response to this request carries (the strict CSP but on pages,
    which carry their own).

    The edge (`app.http.edge`) appends them to every response start.
    """
    if scope["method"] == "GET" and scope["path"] in PAGES:
        return HEADERS
    return STRICT


CORS_ALLOW_HEADERS = ("authorization", "content-type", "x-request-id", "cache-control")
"""Request headers a browser may send to `/graphql` cross-origin (POST, and GET for
trusted documents)."""
