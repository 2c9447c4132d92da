"""The connection as the page lives it: visible states, reconnecting, catching up exactly once."""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from playwright.async_api import expect

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


@pytest_asyncio.fixture(loop_scope="session")
async def own_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server for one test, which may stop and start it."""
    running = Server(tmp_path)
    await asyncio.to_thread(running.start)
    yield running
    await asyncio.to_thread(running.stop)


async def test_connection_state_is_shown_and_recovers(
    new_page: NewPage, own_server: Server
) -> None:
    room = unique_room("state")
    page = await open_chat(new_page, own_server, "sam", room)
    status, text = page.locator("#status"), page.locator("#status-text")
    await expect(text).to_have_text("Connected")

    await asyncio.to_thread(own_server.stop)
    await expect(status).to_have_attribute("data-state", "reconnecting")
    await expect(text).to_have_text(re.compile(r"^Reconnecting in \d+ s$"))
    await expect(page.locator("#reconnect")).to_be_visible()

    await page.context.set_offline(True)
    await expect(text).to_have_text("Offline")
    await asyncio.to_thread(own_server.start)
    # Back online, the page connects at once rather than at the end of its backoff.
    await page.context.set_offline(False)
    await expect(text).to_have_text("Connected")
    await send(page, "back again")
    await expect(messages(page, "back again")).to_have_attribute("data-state", "sent")


async def test_page_catches_up_after_a_lost_connection_exactly_once(
    new_page: NewPage, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("catchup")
    bob = await connect_client(clients, server, room, "bob")
    relay = Relay()
    alice = await open_relayed_chat(new_page, server, relay, "alice", room)
    last_seen = await bob.say("before the drop", room=room)
    await expect(messages(alice, "before the drop")).to_have_count(1)

    await expect(alice.locator("#member-list .member")).to_have_count(2)
    relay.open.clear()
    await relay.cut()
    await expect(alice.locator("#status")).to_have_attribute("data-state", "reconnecting")
    # Who is online is unknown while disconnected: no stale list.
    await expect(alice.locator("#member-list .member")).to_have_count(0)
    await expect(alice.locator("#members-count")).to_have_text("\u2013unknown")
    await expect(alice.locator("#members-more")).to_contain_text("Not connected")
    await send(alice, "written while away")
    away = messages(alice, "written while away")
    await expect(away).to_have_attribute("data-state", "pending")
    await expect(away.locator(".msg-status")).to_have_text("Waiting for connection…")
    missed = [f"missed {number}" for number in range(1, 4)]
    for text in missed:
        await bob.say(text, room=room)

    relay.open.set()
    await expect_connected(alice)
    await expect(away).to_have_attribute("data-state", "sent")
    await expect(alice.locator("#member-list .member-name")).to_have_text(["alice", "bob"])
    texts = await messages(alice).locator(".msg-text").all_text_contents()
    assert texts == ["before the drop", *missed, "written while away"]
    rejoin = relay.sent_of("join")[-1]
    assert rejoin["since"] == last_seen
    ack = await relay.wait_received(lambda event: event.get("ref") == rejoin["ref"])
    assert ack == {"type": "ack", "ref": rejoin["ref"], "replayed": 3, "truncated": False}
    await bob.expect("message", content="written while away")


async def test_page_shows_what_was_posted_while_the_server_restarted_exactly_once(
    new_page: NewPage, own_server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("restart")
    bob = await connect_client(clients, own_server, room, "bob")
    relay = Relay()
    alice = await open_relayed_chat(new_page, own_server, relay, "alice", room)
    await bob.say("before the restart", room=room)
    await expect(messages(alice, "before the restart")).to_have_count(1)

    # The page may not come back before the messages it should catch up on are posted.
    relay.open.clear()
    await asyncio.to_thread(own_server.stop)
    await expect(alice.locator("#status")).to_have_attribute("data-state", "reconnecting")
    await asyncio.to_thread(own_server.start)
    carol = await connect_client(clients, own_server, room, "carol")
    posted = [f"after the restart {number}" for number in range(1, 4)]
    for text in posted:
        await carol.say(text, room=room)

    relay.open.set()
    await expect_connected(alice)
    await expect(messages(alice, posted[-1])).to_have_count(1)
    texts = await messages(alice).locator(".msg-text").all_text_contents()
    assert texts == ["before the restart", *posted]
    ids = await messages(alice).evaluate_all("rows => rows.map(row => Number(row.dataset.id))")
    assert ids == sorted(set(ids)), "ids survive the restart, increasing"


async def test_page_forgets_a_reset_rooms_messages_and_shows_what_follows(
    new_page: NewPage, memory_server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("reset")
    alice = await open_chat(new_page, memory_server, "alice", room)
    bob = await ChatClient.connect(memory_server.ws_url)
    clients.append(bob)
    await bob.join(room, "bob")
    for number in range(1, 4):
        await bob.say(f"before the restart {number}", room=room)
    await expect(messages(alice)).to_have_count(3)

    await asyncio.to_thread(memory_server.stop)
    await asyncio.to_thread(memory_server.start)
    carol = await ChatClient.connect(memory_server.ws_url)
    clients.append(carol)
    await carol.join(room, "carol")
    # Ids start over: the page's "since 3" is beyond the room's newest id.
    assert await carol.say("posted before alice is back", room=room) == 1
    await expect_connected(alice)
    await expect(alice.locator("#toasts")).to_contain_text(f"history of #{room} changed")
    await expect(messages(alice)).to_have_count(1)
    await carol.say("posted after alice is back", room=room)
    await expect(messages(alice, "posted after alice is back")).to_have_attribute("data-id", "2")
    texts = await messages(alice).locator(".msg-text").all_text_contents()
    assert texts == ["posted before alice is back", "posted after alice is back"]
