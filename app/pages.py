"""The developer pages, which load nothing from a CDN: `/docs` is Swagger UI with its assets
served by the gateway (from the `fastapi-offline` package), under a Content-Security-Policy
that allows exactly what the page loads: the gateway's own scripts, styles and images (and
the inline styles Swagger UI sets on its elements), and `/openapi.json`."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Response
from fastapi.responses import FileResponse, HTMLResponse

from app.domain.errors import NotFound

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_PATH = "/docs/assets"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

DOCS_HTML = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Proxy-session gateway - API</title>
<link rel="stylesheet" href="{ASSET_PATH}/swagger-ui.css">
<link rel="icon" href="{ASSET_PATH}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{ASSET_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSET_PATH}/init.js"></script>
</body>
</html>
"""

# The page's own script: a file, not inline, so that the policy needs no hash or nonce.
INIT_JS = """SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""

router = APIRouter(include_in_schema=False)


@router.get("/docs")
async def docs() -> Response:
    """Swagger UI for the REST door, entirely from the gateway."""
    return HTMLResponse(DOCS_HTML, headers={"content-security-policy": DOCS_CSP})


@router.get(ASSET_PATH + "/{name}")
async def asset(name: str) -> Response:
    """One of Swagger UI's assets, or the page's init script."""
    if name == "init.js":
        return Response(INIT_JS, media_type="text/javascript")
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("No such asset.")
    return FileResponse(ASSETS / name, media_type=media_type)
