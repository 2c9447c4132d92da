"""The page against a server with --auth-secret: it says why it cannot connect, and the
token's name is the one it shows everywhere."""

import re
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from playwright.async_api import Page, expect

from hubbub.core.auth import issue_token
from tests.browser.conftest import (
    BROWSER,
    SMALL_PHONE,
    NewPage,
    Server,
    expect_connected,
    messages,
    send,
    unique_room,
)

pytestmark = BROWSER

SECRET = "s" * 40


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("auth"), "--auth-secret", SECRET)
    running.start()
    yield running
    running.stop()


def token_for(name: str, expires_in: int = 600) -> str:
    return issue_token(SECRET, name, None, int(time.time()) + expires_in)


async def open_page(new_page: NewPage, server: Server, **query: str) -> Page:
    page = await new_page(viewport=SMALL_PHONE)
    await page.goto(f"{server.url}/?{urlencode(query)}")
    return page


async def expect_refused(page: Page, title: str, said: str) -> None:
    """Not "Reconnecting in N s" forever: the page says why, and stops trying."""
    await expect(page.locator("#status")).to_have_attribute("data-state", "refused")
    await expect(page.locator("#status-text")).to_have_text("Not connected")
    problem = page.locator("#problem")
    await expect(problem).to_have_attribute("role", "alert")
    await expect(page.locator("#problem-title")).to_have_text(title)
    await expect(page.locator("#problem-detail")).to_have_text(f"The server said: “{said}”.")
    await expect(page.locator("#problem-advice")).not_to_be_empty()
    await expect(page.get_by_role("button", name="Try again")).to_be_visible()
    assert await page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")


async def test_without_a_token_the_page_says_the_server_needs_a_sign_in_link(
    new_page: NewPage, auth_server: Server
) -> None:
    page = await open_page(new_page, auth_server, username="una", room=unique_room("no-token"))
    await expect_refused(
        page,
        "This server needs a sign-in link.",
        "a token is required (query parameter 'token')",
    )


async def test_with_an_expired_token_the_page_says_so_and_tries_again_on_request(
    new_page: NewPage, auth_server: Server
) -> None:
    expired = token_for("vic", expires_in=-60)
    page = await open_page(new_page, auth_server, token=expired, room=unique_room("expired"))
    await expect_refused(page, "The server did not accept your sign-in link.", "token expired")
    # A token does not get better by itself: only the button tries again, and asks again why.
    async with page.expect_request(lambda request: "/ws?" in request.url) as probe:
        await page.get_by_role("button", name="Try again").click()
    assert (await probe.value).resource_type == "fetch"
    await expect_refused(page, "The server did not accept your sign-in link.", "token expired")


async def test_the_tokens_name_wins_over_the_links_everywhere(
    new_page: NewPage, auth_server: Server
) -> None:
    room = unique_room("signed")
    page = await new_page()
    query = {"token": token_for("alice"), "username": "mallory", "room": room}
    await page.goto(f"{auth_server.url}/?{urlencode(query)}")
    await expect_connected(page)
    await expect(page.locator("#problem")).to_be_hidden()
    await expect(page.locator("#me-name")).to_have_text("alice")
    await expect(page.locator("#rename")).to_be_hidden()
    await expect(page.locator(".member--me .member-name")).to_have_text("alice")
    await expect(page.locator("#member-list")).not_to_contain_text("mallory")
    await send(page, "who am I?")
    row = messages(page, "who am I?")
    await expect(row).to_have_attribute("data-state", "sent")
    await expect(row.locator(".msg-from")).to_have_text("alice")
    await expect(row).to_have_class(re.compile(r"\bmsg--own\b"))
