"""The GraphiQL page (when `GATEWAY_GRAPHIQL=true`): strawberry's, which loads GraphiQL from
unpkg.com (no maintained Python package ships its assets), made to say so.

Until GraphiQL renders, the page shows what it needs: its scripts from unpkg.com, so a
browser without internet access (or behind a proxy that blocks unpkg.com) sees that the
scripts could not be fetched, not an endless "Loading...". Its Content-Security-Policy
allows exactly what it loads: unpkg.com's scripts and styles, its own inline script (by
hash), inline styles, and requests to the gateway itself.
"""

from __future__ import annotations

import base64
import hashlib
import re

CDN = "https://unpkg.com"
LOADING = '<div id="graphiql" class="graphiql-container">Loading...</div>'
NEEDS = (
    '<div id="graphiql" class="graphiql-container">'
    '<p id="graphiql-needs" style="font: 16px sans-serif; margin: 2em">'
    "GraphiQL loads its scripts from https://unpkg.com. If this message stays, this browser"
    " could not fetch them (no internet access, or a proxy blocks unpkg.com): send queries"
    " with any GraphQL client to POST /graphql instead.</p></div>"
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _hash(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def page(html: str) -> tuple[str, str]:
    """The page (strawberry's `html`, saying what it needs) and its Content-Security-Policy."""
    html = html.replace(LOADING, NEEDS)
    inline = " ".join(_hash(script) for script in _INLINE_SCRIPT.findall(html))
    policy = (
        f"default-src 'none'; script-src {CDN} {inline}; style-src {CDN} 'unsafe-inline'; "
        f"img-src 'self' data:; font-src {CDN} data:; connect-src 'self'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    return html, policy
