"""Whatever people type is shown as text: markup never runs, only http(s) addresses become links."""

from urllib.parse import urlencode

from playwright.async_api import Dialog, expect

from hubbub.client import ChatClient
from tests.browser.conftest import (
    BROWSER,
    NewPage,
    Relay,
    Server,
    connect_client,
    expect_connected,
    messages,
    open_chat,
    open_relayed_chat,
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


HEBREW_A, HEBREW_B = "\u05e9\u05dc\u05d5\u05dd", "\u05d3\u05d5\u05d3"
"""Two right-to-left names: side by side in one line, without isolates, they swap."""

LEFT_OF = """([first, second]) => {
  // Where each of two substrings of the element's text is drawn, by walking its text nodes.
  const box = document.querySelector('#typing');
  const place = (wanted) => {
    const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.data.indexOf(wanted);
      if (at < 0) continue;
      const range = document.createRange();
      range.setStart(node, at);
      range.setEnd(node, at + wanted.length);
      return range.getBoundingClientRect().left;
    }
    return null;
  };
  return place(first) < place(second);
}"""


async def test_names_and_messages_are_bidi_isolates(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("bidi")
    reader = await open_chat(new_page, server, "reader", room)
    typers = [await connect_client(clients, server, room, name) for name in (HEBREW_A, HEBREW_B)]
    typers.append(await connect_client(clients, server, room, "carol"))
    for typer in typers:
        await typer.send({"type": "typing", "room": room})
    typing = reader.locator("#typing")
    await expect(typing).to_have_text(f"{HEBREW_A}, {HEBREW_B} and carol are typing…")
    assert await reader.evaluate(LEFT_OF, [HEBREW_A, HEBREW_B]), "the names keep their order"

    await typers[0].say("download \u202eexe.live now", room=room)
    row = messages(reader, "download \u202eexe.live now")
    await expect(row).to_have_count(1)
    isolated = [
        row.locator(".msg-text"),
        row.locator(".msg-from"),
        reader.locator("#me-name"),
        reader.locator(".member-name").first,
        typing.locator("bdi").first,
    ]
    for element in isolated:
        assert await element.evaluate("e => getComputedStyle(e).unicodeBidi") == "isolate"
    await expect(row.locator(".msg-text")).to_have_attribute("dir", "auto")


async def test_control_characters_in_old_messages_show_as_symbols(
    new_page: NewPage, server: Server
) -> None:
    """The server refuses them now; messages stored before may still hold them."""
    room = unique_room("controls")
    relay = Relay()
    page = await open_relayed_chat(new_page, server, relay, "reader", room)
    relay.to_page(
        {
            "type": "message",
            "room": room,
            "id": 10**6,
            "from": "old",
            "content": "ring\u0007 \u001b[31mred\u001b[0m",
            "timestamp": "2026-01-01T00:00:00.000Z",
        }
    )
    await expect(messages(page, "ring\u2407 \u241b[31mred\u241b[0m")).to_have_count(1)


async def test_a_messages_data_is_rendered_nowhere(new_page: NewPage, server: Server) -> None:
    """`data` (protocol 1.1) is for programs: the page shows `content` and ignores `data`,
    markup in it included."""
    room = unique_room("xss-data")
    reader = await open_chat(new_page, server, "reader", room)
    poster = await ChatClient.connect(server.ws_url)
    try:
        await poster.join(room, "poster")
        await poster.request(
            {
                "type": "message",
                "room": room,
                "content": "quote",
                "data": {"html": PAYLOAD, "list": [PAYLOAD], "n": 1},
            }
        )
    finally:
        await poster.close()
    await expect(messages(reader, "quote")).to_have_count(1)
    assert PAYLOAD not in await reader.locator("#app").inner_text()
    assert await reader.locator("#app img, #app script, #app b").count() == 0
