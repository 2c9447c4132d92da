"""Keyboard-only use, announcements for screen readers, and the page at phone width."""

import re
from pathlib import Path

from playwright.async_api import Page, expect

from hubbub.client import ChatClient
from tests.browser.conftest import (
    BROWSER,
    PHONE,
    NewPage,
    Server,
    connect_client,
    expect_connected,
    messages,
    open_chat,
    unique_room,
)

pytestmark = BROWSER

MAX_TAB_STOPS = 40


async def shift_tab_to(page: Page, selector: str) -> None:
    """Moves the focus backwards with Shift+Tab alone until it reaches `selector`."""
    target = page.locator(selector)
    for _ in range(MAX_TAB_STOPS):
        if await target.evaluate("element => element === document.activeElement"):
            return
        await page.keyboard.press("Shift+Tab")
    raise AssertionError(f"{selector} is not reachable with the keyboard")


async def test_join_and_send_with_the_keyboard_only(new_page: NewPage, server: Server) -> None:
    first, second = unique_room("keys"), unique_room("more")
    page = await new_page()
    await page.goto(f"{server.url}/")
    await expect(page.get_by_label("Your name")).to_be_focused()
    # The skip link jumps to the message box, which the welcome screen does not have.
    await expect(page.locator(".skip-link")).to_be_hidden()
    await page.keyboard.type("kim")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Room", exact=True)).to_be_focused()
    await page.keyboard.press("ControlOrMeta+A")
    await page.keyboard.type(first)
    await page.keyboard.press("Enter")

    composer = page.get_by_label(f"Message #{first}")
    await expect(composer).to_be_focused()
    await expect_connected(page)
    await page.keyboard.type("typed with the keys only")
    await page.keyboard.press("Enter")
    await expect(messages(page, "typed with the keys only")).to_have_attribute("data-state", "sent")
    await expect(composer).to_have_value("")

    await shift_tab_to(page, "#join-room")
    await page.keyboard.type(second)
    await page.keyboard.press("Enter")
    await expect(page.get_by_label(f"Message #{second}")).to_be_focused()
    await page.keyboard.press("Alt+ArrowUp")
    await expect(page.locator("#room-title")).to_have_text(f"# {first}")
    await expect(composer).to_be_focused()

    await shift_tab_to(page, ".skip-link")
    await expect(page.locator(".skip-link")).to_be_in_viewport()
    await page.keyboard.press("Enter")
    await expect(composer).to_be_focused()


async def test_new_messages_are_announced(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    room, elsewhere = unique_room("live"), unique_room("elsewhere")
    page = await open_chat(new_page, server, "reader", room)
    announcer = page.locator("#announcer")
    await expect(announcer).to_have_attribute("aria-live", "polite")
    bob = await connect_client(clients, server, room, "bob")
    await bob.say("can you hear me?", room=room)
    await expect(announcer).to_have_text("bob: can you hear me?")

    await page.locator("#join-room").fill(elsewhere)
    await page.locator("#join-room").press("Enter")
    await expect(page.locator("#room-title")).to_have_text(f"# {elsewhere}")
    await bob.say("over here", room=room)
    await expect(announcer).to_have_text(f"bob in #{room}: over here")


async def test_phone_width(
    new_page: NewPage, server: Server, clients: list[ChatClient], tmp_path: Path
) -> None:
    room = unique_room("phone")
    bob = await connect_client(clients, server, room, "bob")
    await bob.say("Morning! Notes are at https://example.com/notes/2026/standup", room=room)
    await bob.say("x" * 300, room=room)
    page = await new_page(viewport=PHONE, dark=True)
    await page.goto(f"{server.url}/?username=pat&room={room}")
    await expect_connected(page)
    background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
    red, green, blue = map(int, re.findall(r"\d+", background)[:3])
    assert red + green + blue < 150, f"a dark page for a dark system theme, not {background}"
    await page.keyboard.type("On my way")
    await page.keyboard.press("Enter")
    await expect(messages(page)).to_have_count(3)

    # Nothing is wider than the screen: long words wrap, the panels are drawers.
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert await page.locator("#log").evaluate("log => log.scrollWidth <= log.clientWidth")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(page.locator("#members")).to_be_hidden()
    await expect(page.locator("#composer-input")).to_be_in_viewport()

    toggle = page.get_by_role("button", name="Rooms", exact=True)
    await toggle.click()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    await expect(page.locator("#sidebar")).to_be_visible()
    await expect(page.locator("#sidebar")).to_contain_text(f"# {room}")
    await page.keyboard.press("Escape")
    await expect(page.locator("#sidebar")).to_be_hidden()
    await expect(toggle).to_be_focused()

    shot = tmp_path / "phone.png"
    await page.screenshot(path=shot)
    assert shot.read_bytes().startswith(b"\x89PNG")
