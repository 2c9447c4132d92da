"""The page under its security headers in Chromium: everything it does is allowed, and
its API can be read from the sites `--allowed-origins` names, and only from them."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from playwright.async_api import ConsoleMessage, Page, expect

from tests.browser.conftest import (
    BROWSER,
    NewPage,
    Server,
    expect_connected,
    messages,
    send,
    unique_room,
)
from tests.conftest import free_port

pytestmark = BROWSER

WATCH_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(`${event.effectiveDirective} ${event.blockedURI}`);
});
"""


async def violations(page: Page) -> list[str]:
    found: list[str] = await page.evaluate("window.cspViolations")
    return found


async def test_using_the_page_breaks_no_rule_of_its_policy(
    new_page: NewPage, server: Server
) -> None:
    room = unique_room("csp")
    page = await new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.add_init_script(WATCH_VIOLATIONS)
    response = await page.goto(f"{server.url}/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]

    await page.locator("#welcome-name").fill("ann")
    await page.locator("#welcome-room").fill(room)
    await page.locator("#welcome-room").press("Enter")
    await expect_connected(page)
    await send(page, "hello https://example.com")
    await expect(messages(page, "hello https://example.com")).to_have_attribute(
        "data-state", "sent"
    )
    await page.locator("#composer-input").fill("typing…")
    other = unique_room("csp-other")
    await page.locator("#join-room").fill(other)
    await page.locator("#join-room").press("Enter")
    await expect(page.locator("#room-title")).to_contain_text(other)
    await page.reload()
    await expect_connected(page)

    assert await violations(page) == []
    assert [text for text in console if "Content Security Policy" in text] == []

    # The watch does see a breach: an inline style attribute, which the policy forbids.
    await page.evaluate("document.body.setAttribute('style', 'color: red')")
    await page.wait_for_function("window.cspViolations.length > 0")
    assert await violations(page) == ["style-src-attr inline"]


async def test_no_other_site_can_frame_the_page(new_page: NewPage, server: Server) -> None:
    page = await new_page()
    refused = asyncio.Event()

    def on_console(message: ConsoleMessage) -> None:
        if "frame-ancestors" in message.text:
            refused.set()

    page.on("console", on_console)
    await page.set_content(f'<iframe src="{server.url}/"></iframe>')
    async with asyncio.timeout(5):
        await refused.wait()
    assert await page.frames[1].locator("#welcome-form").count() == 0


APP_PORT = free_port()
APP_ORIGIN = f"http://localhost:{APP_PORT}"
OTHER_ORIGIN = f"http://127.0.0.1:{APP_PORT}"
"""Another site's pages, on the loopback address like the server, as Chromium lets only
pages of loopback addresses reach a loopback server."""


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("cors"), "--allowed-origins", APP_ORIGIN)
    running.start()
    yield running
    running.stop()


async def blank(request: web.Request) -> web.Response:
    return web.Response(text="<!doctype html><title>another site</title>", content_type="text/html")


@contextlib.asynccontextmanager
async def another_site() -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_get("/", blank)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", APP_PORT).start()
    try:
        yield
    finally:
        await runner.cleanup()


FETCH = """async (url) => {
  try {
    const response = await fetch(url, {headers: {Authorization: "Bearer none"}});
    return {status: response.status, body: await response.json()};
  } catch (error) {
    return {error: String(error)};
  }
}"""


async def test_the_api_is_readable_from_allowed_origins_only(
    new_page: NewPage, cors_server: Server
) -> None:
    """With an Authorization header the browser sends a preflight first."""
    url = f"{cors_server.url}/rooms/general/messages"
    async with another_site():
        allowed = await new_page()
        await allowed.goto(f"{APP_ORIGIN}/")
        answer: dict[str, Any] = await allowed.evaluate(FETCH, url)
        assert answer == {
            "status": 200,
            "body": {"room": "general", "messages": [], "has_more": False},
        }
        other = await new_page()
        await other.goto(f"{OTHER_ORIGIN}/")
        refused: dict[str, Any] = await other.evaluate(FETCH, url)
        assert refused == {"error": "TypeError: Failed to fetch"}
