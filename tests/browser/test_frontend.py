"""The browser path, in a real browser: a page on an allowed origin calls /graphql with a
bearer token (CORS preflight, then the query), a page on another origin is blocked by the
browser, and a persisted query by GET is answered from the browser's cache."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlencode

import orjson
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import screenshot
from tests.conftest import GatewayFactory
from tests.support.servers import Emulator, Gateway

TOKEN = "browser-test-token-0123456789"
PERSISTED = (
    "query SessionName($vc: ID!, $ps: ID!) {"
    " proxySession(voiceConnectorId: $vc, proxySessionId: $ps) { id name } }"
)
DOCUMENT_ID = hashlib.sha256(PERSISTED.encode()).hexdigest()


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "persisted-documents.json"
    path.write_text(json.dumps({f"sha256:{DOCUMENT_ID}": PERSISTED}), encoding="utf-8")
    return path


@pytest.fixture
def frontend_gateway(
    gateway_factory: GatewayFactory, origins: tuple[str, str], manifest: Path
) -> Gateway:
    allowed, _ = origins
    return gateway_factory(
        auth_tokens=TOKEN,
        cors_origins=allowed,
        graphql_persisted_documents_file=manifest,
    )


def page_url(origin: str, page: str, gateway: Gateway, key: tuple[str, str], **more: str) -> str:
    query = {"gateway": gateway.url, "token": TOKEN, "vc": key[0], "ps": key[1], **more}
    return f"{origin}/{page}?{urlencode(query)}"


def settled(page: Page) -> str:
    page.wait_for_function("document.getElementById('status').textContent !== 'loading'")
    return page.inner_text("#status")


def graphql_requests(gateway: Gateway, method: str) -> list[dict[str, object]]:
    """The access lines of `/graphql` requests by `method`, once every line logged so far
    is written (they reach the log in batches)."""
    lines = gateway.settled_log_lines()
    return [
        record
        for record in (orjson.loads(line) for line in lines if line.strip())
        if record.get("logger") == "app.access"
        and record.get("route") == "/graphql"
        and record.get("method") == method
    ]


def test_an_allowed_origin_queries_with_a_token(
    page: Page, frontend_gateway: Gateway, origins: tuple[str, str], seeded: tuple[str, str]
) -> None:
    allowed, _ = origins
    preflights = len(graphql_requests(frontend_gateway, "OPTIONS"))

    page.goto(page_url(allowed, "query.html", frontend_gateway, seeded))
    status = settled(page)
    shot = screenshot(page, "allowed-origin")

    assert status == "answered 200"
    assert page.inner_text("#name") == "order-1234"
    assert len(graphql_requests(frontend_gateway, "OPTIONS")) == preflights + 1
    assert shot.stat().st_size > 0


def test_another_origin_is_blocked_by_the_browser(
    page: Page, frontend_gateway: Gateway, origins: tuple[str, str], seeded: tuple[str, str]
) -> None:
    _, other = origins
    posts = len(graphql_requests(frontend_gateway, "POST"))

    page.goto(page_url(other, "query.html", frontend_gateway, seeded))
    status = settled(page)
    screenshot(page, "other-origin-blocked")

    assert status == "blocked"
    assert "Failed to fetch" in page.inner_text("#detail")
    assert page.inner_text("#name") == "-"
    # The preflight failed: the query itself was never sent.
    assert len(graphql_requests(frontend_gateway, "POST")) == posts


def test_a_persisted_query_by_get_comes_from_the_browsers_cache(
    page: Page,
    frontend_gateway: Gateway,
    origins: tuple[str, str],
    seeded: tuple[str, str],
    emulator: Emulator,
) -> None:
    allowed, _ = origins
    url = page_url(allowed, "persisted.html", frontend_gateway, seeded, documentId=DOCUMENT_ID)

    page.goto(url)
    first = settled(page)
    gets = graphql_requests(frontend_gateway, "GET")
    page.goto(url + "&again=1")  # a second load: the same GET, from the browser's cache
    second = settled(page)
    screenshot(page, "persisted-get-cached")
    after_cached = graphql_requests(frontend_gateway, "GET")
    calls_after_cached = emulator.calls(*seeded)
    page.goto(url + "&cache=no-cache")  # revalidated: If-None-Match, 304
    third = settled(page)
    screenshot(page, "persisted-get-revalidated")
    after_revalidation = frontend_gateway.wait_for_records(
        lambda r: r.get("route") == "/graphql" and r.get("method") == "GET",
        count=len(gets) + 1,
    )

    assert (first, second, third) == ("answered 200",) * 3
    assert page.inner_text("#name") == "order-1234"
    assert len(after_cached) == len(gets)  # the second load never reached the gateway
    assert calls_after_cached == 1
    # The browser revalidated (If-None-Match, and Cache-Control: max-age=0, which the
    # gateway honours by asking AWS again): the same answer, so a 304.
    assert after_revalidation[-1]["status"] == 304
