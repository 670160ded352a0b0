"""The developer pages in a real browser, on a machine without internet access: `/docs`
renders Swagger UI from the gateway's own assets, and GraphiQL says what it needs instead of
hanging; each under a Content-Security-Policy the browser enforces without complaint."""

from __future__ import annotations

from playwright.sync_api import ConsoleMessage, Page, Request

from tests.browser.conftest import screenshot
from tests.conftest import GatewayFactory
from tests.support.servers import Gateway


def watch(page: Page) -> tuple[list[str], list[str]]:
    """The URLs the page requests, and its console messages, as they come."""
    requested: list[str] = []
    console: list[str] = []

    def on_request(request: Request) -> None:
        requested.append(request.url)

    def on_console(message: ConsoleMessage) -> None:
        console.append(message.text)

    page.on("request", on_request)
    page.on("console", on_console)
    return requested, console


def test_docs_render_from_the_gateway_alone(page: Page, gateway: Gateway) -> None:
    requested, console = watch(page)

    reply = page.goto(f"{gateway.url}/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=15_000)
    page.wait_for_selector(".opblock", timeout=15_000)
    screenshot(page, "docs")

    assert reply is not None
    policy = reply.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "Proxy-session gateway" in page.inner_text(".swagger-ui .info .title")
    assert requested
    assert all(url.startswith(gateway.url) for url in requested), requested
    assert not [line for line in console if "Content Security Policy" in line], console


def test_graphiql_says_what_it_needs_without_internet(
    page: Page, gateway_factory: GatewayFactory
) -> None:
    gateway = gateway_factory(graphiql=True)
    requested, console = watch(page)

    reply = page.goto(f"{gateway.url}/graphql", wait_until="domcontentloaded")
    page.wait_for_load_state("load", timeout=30_000)
    needs = page.wait_for_selector("#graphiql-needs", state="visible", timeout=15_000)
    screenshot(page, "graphiql-without-internet")

    assert reply is not None
    policy = reply.headers["content-security-policy"]
    assert "script-src https://unpkg.com 'sha256-" in policy
    assert "connect-src 'self'" in policy
    assert needs is not None
    assert "could not fetch them" in needs.inner_text()
    # It asked unpkg.com for its scripts, and nothing else was refused by the policy.
    assert any(url.startswith("https://unpkg.com/") for url in requested)
    assert not [line for line in console if "Content Security Policy" in line], console
