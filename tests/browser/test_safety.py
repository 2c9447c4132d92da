"""Whatever people type is shown as text: markup never runs, only http(s) addresses become links."""

from urllib.parse import urlencode

from playwright.async_api import Dialog, expect

from tests.browser.conftest import (
    BROWSER,
    NewPage,
    Server,
    expect_connected,
    messages,
    open_chat,
    send,
    unique_room,
)

pytestmark = BROWSER

NAME = "<img src=x onerror=alert(1)>"
PAYLOAD = '<script>alert(2)</script><img src=x onerror="alert(3)"><b>bold?</b>'


async def test_markup_in_names_and_messages_is_shown_as_text(
    new_page: NewPage, server: Server
) -> None:
    room = unique_room("xss")
    dialogs: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    reader = await open_chat(new_page, server, "reader", room)
    reader.on("dialog", on_dialog)
    mallory = await new_page()
    mallory.on("dialog", on_dialog)
    await mallory.goto(f"{server.url}/?{urlencode({'username': NAME, 'room': room})}")
    await expect_connected(mallory)
    await expect(mallory.locator("#me-name")).to_have_text(NAME)

    await mallory.keyboard.type("typing ")
    await expect(reader.locator("#typing")).to_have_text(f"{NAME} is typing…")
    await send(mallory, PAYLOAD)
    for page in (reader, mallory):
        row = messages(page, PAYLOAD)
        await expect(row).to_have_attribute("data-state", "sent")
        await expect(row.locator(".msg-from")).to_have_text(NAME)
        await expect(page.locator("#member-list")).to_contain_text(NAME)
        assert await page.locator("#app img, #app script, #app b").count() == 0
    await expect(reader.locator("#announcer")).to_have_text(f"{NAME}: {PAYLOAD}")
    assert await reader.evaluate("document.title") == f"#{room} · Hubbub"
    assert dialogs == []


async def test_only_web_addresses_become_links_and_open_safely(
    new_page: NewPage, server: Server
) -> None:
    room = unique_room("links")
    text = (
        "docs at https://example.com/a_(b)?q=1&r=2, not javascript:alert(4) "
        "nor data:text/html,hi; see http://example.org."
    )
    page = await open_chat(new_page, server, "linker", room)
    await send(page, text)
    row = messages(page, text)
    await expect(row).to_have_attribute("data-state", "sent")
    links = row.locator("a")
    await expect(links).to_have_text(["https://example.com/a_(b)?q=1&r=2", "http://example.org"])
    hrefs = await links.evaluate_all("links => links.map(link => link.href)")
    assert hrefs == ["https://example.com/a_(b)?q=1&r=2", "http://example.org/"]
    for index in range(2):
        await expect(links.nth(index)).to_have_attribute("rel", "noopener noreferrer")
        await expect(links.nth(index)).to_have_attribute("target", "_blank")
