"""A real browser: Debian's headless Chromium driven by Playwright for Python (no browser
download: `executable_path`), pages served from loopback origins, screenshots written to
`test-output/browser/`."""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from harness.network import LOOPBACK
from tests.support.servers import ROOT

PAGES = Path(__file__).parent / "pages"
SCREENSHOTS = ROOT / "test-output" / "browser"
# What a closed network needs: no background fetches, no sandbox as root, no QUIC.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, which `asyncio.run` in later tests must not meet.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium is not None, "chromium is missing: `make test` installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context: its own HTTP cache."""
    context = browser.new_context()
    yield context.new_page()
    context.close()


def serve_pages() -> tuple[str, ThreadingHTTPServer]:
    """The test pages on a loopback origin of their own (`http://127.0.0.1:<port>`)."""
    handler = functools.partial(_Quiet, directory=str(PAGES))
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://{LOOPBACK}:{server.server_address[1]}", server


@pytest.fixture(scope="module")
def origins() -> Iterator[tuple[str, str]]:
    """Two origins serving the pages: the first is allowed by the gateway, not the second."""
    allowed, first = serve_pages()
    other, second = serve_pages()
    yield allowed, other
    for server in (first, second):
        server.shutdown()
        server.server_close()


def screenshot(page: Page, name: str) -> Path:
    """Write the page as the browser shows it to test-output/browser/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
