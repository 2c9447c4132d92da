"""Chatting through the page: both ways, own messages pending then confirmed, typing, rooms."""

import asyncio
import json
import re
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest_asyncio
from playwright.async_api import Page, expect

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


async def test_two_pages_chat_both_ways(new_page: NewPage, server: Server) -> None:
    room = unique_room("both")
    alice = await open_chat(new_page, server, "alice", room)
    bob = await open_chat(new_page, server, "bob", room)
    await expect(alice.locator("#member-list")).to_contain_text("bob")

    # The link focused the message box: typing then Enter sends.
    await alice.keyboard.type("Hi Bob")
    await alice.keyboard.press("Enter")
    await expect(messages(bob, "Hi Bob").locator(".msg-from")).to_have_text("alice")

    await send(bob, "Hello Alice")
    await send(bob, "How are you?")
    await expect(messages(alice, "How are you?")).to_have_count(1)
    # Grouped by sender: only the first of bob's two messages starts a group.
    await expect(messages(alice, "Hello Alice")).to_have_class(re.compile(r"\bmsg--first\b"))
    await expect(messages(alice, "How are you?")).not_to_have_class(re.compile(r"\bmsg--first\b"))
    for page in (alice, bob):
        texts = await messages(page).locator(".msg-text").all_text_contents()
        assert texts == ["Hi Bob", "Hello Alice", "How are you?"]


async def test_own_message_is_pending_until_its_ack(new_page: NewPage, server: Server) -> None:
    room = unique_room("pending")
    relay = Relay()
    relay.hold = lambda event: event["type"] == "message"
    alice = await open_relayed_chat(new_page, server, relay, "alice", room)

    await send(alice, "on its way")
    row = messages(alice, "on its way")
    await expect(row).to_have_attribute("data-state", "pending")
    await expect(row.locator(".msg-status")).to_have_text("Sending…")
    assert relay.held, "the page sent the message"

    relay.release()
    await expect(row).to_have_attribute("data-state", "sent")
    await expect(row).to_have_attribute("data-id", re.compile(r"^\d+$"))
    await expect(row.locator(".msg-status")).to_be_hidden()


async def test_refused_message_says_why_and_can_be_retried(
    new_page: NewPage, server: Server
) -> None:
    room = unique_room("refused")
    relay = Relay()
    relay.hold = lambda event: event["type"] == "message"
    alice = await open_relayed_chat(new_page, server, relay, "alice", room)
    await send(alice, "try me")
    sent = await relay.wait_sent(lambda event: event["type"] == "message")
    relay.to_page({"type": "error", "code": "invalid_field", "message": "no", "ref": sent["ref"]})
    row = messages(alice, "try me")
    await expect(row).to_have_attribute("data-state", "failed")
    await expect(row.locator(".msg-status")).to_contain_text("Not sent: no")

    relay.hold = lambda event: False
    await row.get_by_role("button", name="Retry").press("Enter")
    await expect(row).to_have_attribute("data-state", "sent")
    assert [event["ref"] for event in relay.sent_of("message")] == [sent["ref"]] * 2


async def test_message_is_resent_with_its_ref_after_a_drop_and_shown_once(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("resend")
    bob = await connect_client(clients, server, room, "bob")
    relay = Relay()
    # The server stores and broadcasts the message, but the link dies before the page hears.
    relay.cut_before = lambda event: event["type"] == "message" and event["from"] == "alice"
    alice = await open_relayed_chat(new_page, server, relay, "alice", room)

    await send(alice, "said once")
    row = messages(alice, "said once")
    await expect(row).to_have_attribute("data-state", "sent")
    await expect(row).to_have_count(1)
    posted = await bob.expect("message", content="said once")
    await expect(row).to_have_attribute("data-id", str(posted["id"]))

    refs = [event["ref"] for event in relay.sent_of("message")]
    assert len(refs) == 2, "sent, then re-sent after reconnecting"
    assert refs[0] == refs[1]
    retry_ack = await relay.wait_received(lambda event: event.get("ref") == refs[0])
    assert retry_ack == {"type": "ack", "ref": refs[0], "id": posted["id"]}
    rejoin = relay.sent_of("join")[-1]
    assert rejoin["since"] < posted["id"]
    assert bob.pending("message") == [], "the retry was not stored twice"


async def test_typing_is_throttled_shown_to_others_and_expires(
    new_page: NewPage, server: Server
) -> None:
    room = unique_room("typing")
    relay = Relay()
    alice = await new_page()
    await relay.install(alice)
    await alice.goto(f"{server.url}/?username=alice&room={room}")
    bob = await new_page()
    await bob.clock.install()
    await bob.goto(f"{server.url}/?username=bob&room={room}")
    await expect_connected(bob)
    await expect(alice.locator("#member-list")).to_contain_text("bob")

    await alice.keyboard.type("hello there, bob")
    typing = bob.locator("#typing")
    await expect(typing).to_have_text("alice is typing…")
    await expect(alice.locator("#typing")).to_have_text("")

    await bob.clock.fast_forward(4_000)
    await expect(typing).to_have_text("alice is typing…")
    await bob.clock.fast_forward(1_500)
    await expect(typing).to_have_text("")

    # Once the message is through, every keystroke before it has been through as well.
    await alice.keyboard.press("Enter")
    await expect(messages(bob, "hello there, bob")).to_have_count(1)
    assert len(relay.sent_of("typing")) == 1, "16 keystrokes in well under 2 s: one typing event"


async def test_rooms_side_by_side_with_unread_counts(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    lobby, side, busy = unique_room("lobby"), unique_room("side"), unique_room("busy")
    await connect_client(clients, server, busy, "carol")
    bob = await connect_client(clients, server, side, "bob")
    alice = await open_chat(new_page, server, "alice", lobby)

    # Active rooms come from GET /rooms, with their counts; a click joins.
    listed = alice.locator(f'#active-rooms [data-join="{busy}"]')
    await expect(listed).to_contain_text("1")

    await alice.locator("#join-room").fill(side)
    await alice.locator("#join-room").press("Enter")
    await expect(alice.locator("#room-title")).to_have_text(f"# {side}")
    await expect(alice.locator("#composer-input")).to_be_focused()
    await expect(alice.locator("#member-list")).to_contain_text("bob")

    await alice.locator(f'#joined-rooms [data-room="{lobby}"]').click()
    await expect(alice.locator("#room-title")).to_have_text(f"# {lobby}")
    await bob.say("psst", room=side)
    await bob.say("still there?", room=side)
    badge = alice.locator(f'#joined-rooms [data-room="{side}"] .badge')
    await expect(badge).to_have_text("2 unread")
    await expect(alice).to_have_title(f"(2) #{lobby} · Hubbub")

    await alice.locator(f'#joined-rooms [data-room="{side}"]').click()
    await expect(messages(alice, "still there?")).to_be_visible()
    await expect(badge).to_be_hidden()
    await expect(alice).to_have_title(f"#{side} · Hubbub")

    await listed.click()
    await expect(alice.locator("#room-title")).to_have_text(f"# {busy}")
    await expect(alice.locator("#joined-rooms .room-link")).to_have_count(3)

    await alice.get_by_role("button", name=f"Leave #{side}").click()
    await expect(alice.locator("#joined-rooms .room-link")).to_have_count(2)
    await bob.expect("user_left", username="alice", room=side)
    # Bob is still in it: it is listed among the active rooms again.
    await expect(alice.locator(f'#active-rooms [data-join="{side}"]')).to_be_visible()


async def test_scrolling_back_loads_older_messages_in_order(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("history")
    archivist = await connect_client(clients, server, room, "archivist")
    for number in range(1, 121):
        await archivist.say(f"note {number}", room=room)
    reader = await open_chat(new_page, server, "reader", room)
    await expect(messages(reader, "note 120")).to_be_in_viewport()
    await expect(messages(reader)).to_have_count(50)

    log = reader.locator("#log")
    await log.evaluate("log => { log.scrollTop = 0 }")
    await expect(messages(reader)).to_have_count(100)
    # The reader stays where they were: the older page arrived above, out of sight.
    await expect(messages(reader, "note 71")).to_be_in_viewport()
    await expect(messages(reader, "note 51")).not_to_be_in_viewport()

    await log.evaluate("log => { log.scrollTop = 0 }")
    await expect(messages(reader)).to_have_count(120)
    await expect(reader.locator(".log-start")).to_be_visible()
    await expect(reader.locator("#load-older")).to_be_hidden()
    texts = await messages(reader).locator(".msg-text").all_text_contents()
    assert texts == [f"note {number}" for number in range(1, 121)]


async def test_username_and_rooms_are_remembered(new_page: NewPage, server: Server) -> None:
    first, second = unique_room("first"), unique_room("second")
    page = await open_chat(new_page, server, "dora", first)
    assert "username" not in page.url, "the link's parameters are dropped once used"
    await page.locator("#join-room").fill(second)
    await page.locator("#join-room").press("Enter")
    await expect(page.locator("#room-title")).to_have_text(f"# {second}")

    await page.goto(f"{server.url}/")
    await expect_connected(page)
    await expect(page.locator("#me-name")).to_have_text("dora")
    await expect(page.locator("#room-title")).to_have_text(f"# {second}")
    await expect(page.locator("#joined-rooms .room-name")).to_have_text(
        [f"# {first}", f"# {second}"]
    )
    await expect(page.locator("#member-list")).to_contain_text("dora")


@pytest_asyncio.fixture(loop_scope="session")
async def slow_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server that takes 5 events a second from a connection."""
    running = Server(tmp_path, "--rate", "5", "--rate-burst", "5")
    await asyncio.to_thread(running.start)
    yield running
    await asyncio.to_thread(running.stop)


async def test_a_burst_waits_for_retry_after_and_arrives_in_order(
    new_page: NewPage, slow_server: Server
) -> None:
    room = unique_room("burst")
    relay = Relay()
    page = await open_relayed_chat(new_page, slow_server, relay, "quick", room)
    texts = [f"quick {number}" for number in range(8)]
    for text in texts:
        await send(page, text)
    for text in texts:
        await expect(messages(page, text)).to_have_attribute("data-state", "sent")
    assert await messages(page).locator(".msg-text").all_text_contents() == texts
    await expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert len(relay.sent_of("join")) == 1, "never closed, never reconnected"

    message_refs = {event["ref"] for event in relay.sent_of("message")}
    refusals = [
        (event, at)
        for event, at in zip(relay.received, relay.received_at, strict=True)
        if event.get("code") == "rate_limited" and event.get("ref") in message_refs
    ]
    assert refusals, "the burst went past the rate limit"
    for refusal, refused_at in refusals:
        resent_at = next(
            at
            for event, at in zip(relay.sent, relay.sent_at, strict=True)
            if event.get("ref") == refusal["ref"] and at > refused_at
        )
        waited = resent_at - refused_at
        assert refusal["retry_after"] <= waited < refusal["retry_after"] + 1.2


async def test_the_message_box_counts_an_emoji_as_one_of_4000(
    new_page: NewPage, server: Server
) -> None:
    room = unique_room("long")
    page = await open_chat(new_page, server, "emma", room)
    box, counter = page.locator("#composer-input"), page.locator("#composer-count")
    await page.keyboard.insert_text("\U0001f600" * 100)
    await expect(counter).to_be_hidden()

    await box.fill("")
    await page.keyboard.insert_text("\U0001f600" * 4000)
    await expect(counter).to_have_text("4000 / 4000")
    await expect(box).not_to_have_attribute("aria-invalid", "true")
    await box.press("Enter")
    await expect(messages(page, "\U0001f600" * 4000)).to_have_attribute("data-state", "sent")

    await page.keyboard.insert_text("\U0001f600" * 4001)
    await expect(counter).to_have_text("4001 / 4000")
    await expect(counter).to_have_class(re.compile(r"\bcomposer-count--over\b"))
    await expect(box).to_have_attribute("aria-invalid", "true")
    await box.press("Enter")
    toast = "Too long to send: 1 character over the limit of 4000."
    await expect(page.locator("#toasts")).to_contain_text(toast)
    await expect(box).to_have_value("\U0001f600" * 4001)
    await expect(messages(page)).to_have_count(1)


CODE_BLOCK = "    def greet(name):\n\tif name:  \n        return f'hi {name}'\n\n"
"""Leading spaces and a tab, trailing spaces, a blank line, a trailing newline."""


async def paste(page: Page, text: str) -> None:
    """Puts `text` on the clipboard and pastes it into the message box, as a user would."""
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.evaluate("text => navigator.clipboard.writeText(text)", text)
    await page.locator("#composer-input").press("ControlOrMeta+V")


def history(server: Server, room: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{server.url}/rooms/{room}/messages", timeout=5) as response:
        body: dict[str, Any] = json.load(response)
    return list(body["messages"])


async def test_a_pasted_code_block_is_sent_and_shown_exactly_as_typed(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("code")
    watcher = await connect_client(clients, server, room, "watcher")
    alice = await open_chat(new_page, server, "alice", room)
    bob = await open_chat(new_page, server, "bob", room)
    box = alice.locator("#composer-input")
    await paste(alice, CODE_BLOCK)
    await expect(box).to_have_value(CODE_BLOCK)
    await box.press("Enter")

    received = await watcher.expect("message", room=room)
    assert received["content"] == CODE_BLOCK
    assert [message["content"] for message in await asyncio.to_thread(history, server, room)] == [
        CODE_BLOCK
    ]
    await expect(messages(alice)).to_have_attribute("data-state", "sent")
    await expect(messages(bob)).to_have_count(1)
    for page in (alice, bob):
        shown = page.locator("#messages .msg-text")
        assert await shown.evaluate("e => e.innerText") == CODE_BLOCK
