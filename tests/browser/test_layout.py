"""The page at phone and desktop widths with everything long in it: nothing pushes the
header's controls off the screen, and the page never scrolls sideways."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from playwright.async_api import Page, ViewportSize, expect

from tests.browser.conftest import (
    BROWSER,
    DESKTOP,
    PHONE,
    SMALL_PHONE,
    NewPage,
    Server,
    expect_connected,
    send,
)

pytestmark = BROWSER

LONG_ROOM = "a-room-whose-name-is-as-long-as-room-names-may-be-sixty-four-chs"
LONG_NAME = "W" * 32
WIDTHS: list[ViewportSize] = [SMALL_PHONE, PHONE, DESKTOP]
DEEP_CODE = " " * 64 + "return " + "a_long_identifier_" * 12 + "\n\t\t\t\tdone()" + " " * 300 + "\n"
"""A pasted code block, shown with its whitespace: a deep indent, a long line, trailing spaces."""


@pytest_asyncio.fixture(loop_scope="session")
async def own_server(tmp_path: Path) -> AsyncIterator[Server]:
    running = Server(tmp_path)
    await asyncio.to_thread(running.start)
    yield running
    await asyncio.to_thread(running.stop)


async def fits(page: Page) -> None:
    width = await page.evaluate("innerWidth")
    assert await page.evaluate("document.scrollingElement.scrollWidth") <= width
    log = page.locator("#log")
    assert await log.evaluate("e => e.scrollWidth <= e.clientWidth"), "the log scrolls sideways"
    for selector in ("#leave-room", "#composer .send"):
        await expect(page.locator(selector)).to_be_in_viewport(ratio=1)
    if width < 1100:
        await expect(page.locator("#toggle-members")).to_be_in_viewport(ratio=1)
    else:
        await expect(page.locator("#members")).to_be_in_viewport()
    long_ones = [page.locator("#room-title"), page.locator(".msg-from").first]
    for element in long_ones:
        assert await element.evaluate("e => getComputedStyle(e).textOverflow") == "ellipsis"
    cut_short = long_ones if width < 1100 else long_ones[:1]
    for element in cut_short:
        assert await element.evaluate("e => e.scrollWidth > e.clientWidth"), "cut short"


async def test_long_names_and_the_reconnecting_badge_fit_at_every_width(
    new_page: NewPage, own_server: Server, tmp_path: Path
) -> None:
    assert len(LONG_ROOM) == 64
    pages: list[Page] = []
    for viewport in WIDTHS:
        page = await new_page(viewport=viewport)
        await page.goto(f"{own_server.url}/?username={LONG_NAME}&room={LONG_ROOM}")
        await expect_connected(page)
        pages.append(page)
    await send(pages[0], "x" * 500)
    await send(pages[0], DEEP_CODE)
    for page in pages:
        code = page.locator("#messages .msg-text").nth(1)
        assert await code.evaluate("e => e.innerText") == DEEP_CODE
        await fits(page)

    await asyncio.to_thread(own_server.stop)
    for page in pages:
        await expect(page.locator("#status-text")).to_contain_text("Reconnecting in")
        await expect(page.get_by_role("button", name="Retry now")).to_be_visible()
        await fits(page)
    shot = tmp_path / "reconnecting-390.png"
    await pages[1].screenshot(path=shot)
    assert shot.read_bytes().startswith(b"\x89PNG")
