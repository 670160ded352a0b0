"""`python -m app`: the production entry point (also the image's command)."""

from __future__ import annotations

import sys

import uvicorn
from pydantic import ValidationError

from app.main import create_app
from app.observability import logs
from app.settings import Settings


def _settings_or_exit() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = field.upper() if field.isupper() else f"GATEWAY_{field.upper()}"
        shown = "" if "TOKEN" in name else f"={first.get('input')!r}"
        print(f"invalid setting {name}{shown}: {first['msg']}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    """Read the settings, set up JSON logs, and serve the app with uvicorn."""
    settings = _settings_or_exit()
    logs.configure(settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


if __name__ == "__main__":
    main()
