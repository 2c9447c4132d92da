"""client.js, the browser client other front-ends build on, imported from /client.js in
Chromium and run against a real server: acks, refusals, reconnecting, replay, resending,
rate limits, resets, and the fields of protocol 1.1 it passes through."""

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page

from hubbub.client import ChatClient
from hubbub.core.auth import issue_token
from tests.browser.conftest import (
    BROWSER,
    NewPage,
    Relay,
    Server,
    connect_client,
    unique_room,
)
from tests.browser.test_headers import APP_ORIGIN, OTHER_ORIGIN, another_site

pytestmark = BROWSER

WAIT_MS = 10_000

SETUP = """async ([url, options]) => {
  const { HubbubClient } = await import(url);
  window.events = [];
  const plain = (value) => value instanceof Error
    ? {name: value.name, code: value.code, message: value.message, room: value.room,
       request: value.request, ref: value.ref}
    : value;
  window.outcome = (promise) => promise.then(
    (value) => ({ok: value}), (error) => ({error: plain(error)}));
  window.client = new HubbubClient(undefined, options);
  for (const type of ["message", "state", "reset", "joined", "error", "online_users",
                      "user_joined", "user_left"]) {
    client.on(type, (payload) => events.push({type, at: Date.now(), ...plain(payload)}));
  }
}"""


async def start(
    page: Page, server: Server, options: dict[str, Any], *, connect: bool = True
) -> None:
    """A client in `page` (a page of the server's origin), recording its events in `events`."""
    await page.goto(f"{server.url}/static/style.css")
    await page.evaluate(SETUP, ["/client.js", options])
    if connect:
        await page.evaluate("client.connect()")
        await wait_for(page, "client.connected")


async def wait_for(page: Page, condition: str) -> None:
    await page.wait_for_function(f"() => {condition}", timeout=WAIT_MS)


async def settled(page: Page, promise: str) -> Any:
    """The outcome of a promise kept in the page: {"ok": value} or {"error": {...}}."""
    async with asyncio.timeout(WAIT_MS / 1000):
        return await page.evaluate(f"outcome({promise})")


async def events(page: Page, kind: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(
        "kind => events.filter(event => event.type === kind)", kind
    )
    return found


async def contents(page: Page, room: str) -> list[str]:
    return [event["content"] for event in await events(page, "message") if event["room"] == room]


@pytest_asyncio.fixture(loop_scope="session")
async def page(new_page: NewPage) -> Page:
    return await new_page()


async def test_join_and_send_resolve_with_the_servers_acks(
    page: Page, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("acks")
    bob = await connect_client(clients, server, room, "bob")
    await start(page, server, {"username": "alice"})

    joined = await settled(page, f"client.join({room!r})")
    assert joined == {"ok": {"type": "ack", "ref": joined["ok"]["ref"]}}
    sent = await settled(page, f"client.send({room!r}, 'hello bob')")
    ack = sent["ok"]
    assert ack["type"] == "ack"
    assert isinstance(ack["id"], int)

    heard = await bob.expect("message", content="hello bob")
    assert heard["id"] == ack["id"]
    assert heard["from"] == "alice"
    await wait_for(page, "events.some(event => event.type === 'message')")
    assert await contents(page, room) == ["hello bob"]
    assert await page.evaluate(f"client.position({room!r})") == ack["id"]
    await bob.say("hello alice", room=room)
    await wait_for(page, "events.filter(e => e.type === 'message').length === 2")
    assert await contents(page, room) == ["hello bob", "hello alice"]
    assert await events(page, "error") == []


async def test_refusals_reject_and_leave_the_client_usable(
    page: Page, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("refusals")
    bob = await connect_client(clients, server, room, "bob")
    await start(page, server, {"username": "carl"})
    await settled(page, f"client.join({room!r})")

    bad_room = await settled(page, "client.join('no spaces allowed')")
    assert bad_room["error"]["code"] == "invalid_field"
    assert bad_room["error"]["request"] == "join"
    assert await page.evaluate("client.rooms") == [room], "a refused join is forgotten"
    too_long = await settled(page, f"client.send({room!r}, 'x'.repeat(4001))")
    assert too_long["error"]["name"] == "HubbubError"
    assert too_long["error"]["code"] == "invalid_field"
    assert too_long["error"]["room"] == room
    elsewhere = await settled(page, "client.send('not-joined', 'hi')")
    assert elsewhere["error"]["code"] == "not_in_room"

    sent = await settled(page, f"client.send({room!r}, 'still here')")
    assert (await bob.expect("message"))["id"] == sent["ok"]["id"]
    assert bob.pending("message") == [], "only the valid message reached the room"
    assert await events(page, "error") == [], "refusals are the promises' to report"


async def test_history_pages_and_leaving(
    page: Page, server: Server, clients: list[ChatClient]
) -> None:
    room, other = unique_room("history"), unique_room("other")
    bob = await connect_client(clients, server, room, "bob")
    await bob.join(other)
    ids = [await bob.say(f"old {number}", room=room) for number in range(3)]
    await start(page, server, {"username": "dana"})
    await settled(page, f"client.join({room!r})")
    await settled(page, f"client.join({other!r})")

    page_of_two = await settled(page, f"client.history({room!r}, {{limit: 2}})")
    assert [message["id"] for message in page_of_two["ok"]["messages"]] == ids[1:]
    assert page_of_two["ok"]["has_more"] is True
    assert await page.evaluate(f"client.position({room!r})") == ids[-1]

    left = await settled(page, f"client.leave({room!r})")
    assert left["ok"]["type"] == "ack"
    await bob.say("after she left", room=room)
    await bob.say("in the other room", room=other)
    await wait_for(page, "events.some(event => event.type === 'message')")
    assert await contents(page, room) == []
    assert await contents(page, other) == ["in the other room"]


@pytest_asyncio.fixture(loop_scope="session")
async def own_server(tmp_path: Path) -> AsyncIterator[Server]:
    """A server for one test, which may stop and start it."""
    running = Server(tmp_path)
    await asyncio.to_thread(running.start)
    yield running
    await asyncio.to_thread(running.stop)


async def test_reconnects_with_backoff_and_replays_what_it_missed_once_in_order(
    page: Page, own_server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("replay")
    bob = await connect_client(clients, own_server, room, "bob")
    relay = Relay()
    await relay.install(page)
    await start(page, own_server, {"username": "erin"})
    await settled(page, f"client.join({room!r})")
    before = await bob.say("before the restart", room=room)
    await wait_for(page, "events.some(event => event.type === 'message')")

    await asyncio.to_thread(own_server.stop)
    retrying = "events.filter(e => e.type === 'state' && e.retryAt !== null)"
    await wait_for(page, f"{retrying}.length >= 3")
    waits = await page.evaluate(f"{retrying}.map(e => e.retryAt - e.at)")
    # Doubling from 500 ms, with only the upper half of each delay fixed.
    for attempt, waited in enumerate(waits[:3]):
        ceiling = 500 * 2**attempt
        assert ceiling / 2 - 5 <= waited <= ceiling, (attempt, waits)
    # The client may not come back before the messages it should catch up on are posted.
    relay.open.clear()
    await asyncio.to_thread(own_server.start)
    carol = await connect_client(clients, own_server, room, "carol")
    missed = [f"missed {number}" for number in range(1, 4)]
    for text in missed:
        await carol.say(text, room=room)

    relay.open.set()
    await page.evaluate("client.reconnect()")  # rather than wait out the backoff
    await wait_for(page, "client.connected")
    await wait_for(page, "events.filter(e => e.type === 'message').length >= 4")
    await carol.say("live again", room=room)
    await wait_for(page, "events.filter(e => e.type === 'message').length >= 5")
    assert await contents(page, room) == ["before the restart", *missed, "live again"]
    ids = [event["id"] for event in await events(page, "message")]
    assert ids == sorted(set(ids))
    rejoin = relay.sent_of("join")[-1]
    assert rejoin["since"] == before
    assert [(e["replayed"], e["rejoin"]) for e in await events(page, "joined")] == [
        (0, False),
        (3, True),
    ]


async def test_a_message_whose_ack_was_lost_is_resent_with_its_ref_and_stored_once(
    page: Page, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("resend")
    bob = await connect_client(clients, server, room, "bob")
    relay = Relay()
    # The server stores and broadcasts the message, but the link dies before the page hears.
    relay.cut_before = lambda event: event["type"] == "message" and event["from"] == "fay"
    await relay.install(page)
    await start(page, server, {"username": "fay"})
    await settled(page, f"client.join({room!r})")

    sent = await settled(page, f"client.send({room!r}, 'said once', {{ref: 'fay-1'}})")
    posted = await bob.expect("message", content="said once")
    assert sent == {"ok": {"type": "ack", "ref": "fay-1", "id": posted["id"]}}
    assert [event["ref"] for event in relay.sent_of("message")] == ["fay-1", "fay-1"]
    assert relay.sent_of("join")[-1]["since"] < posted["id"]
    await wait_for(page, "events.some(event => event.type === 'message')")
    assert await contents(page, room) == ["said once"], "replayed once, not repeated"
    await bob.say("after", room=room)
    await wait_for(page, "events.filter(e => e.type === 'message').length === 2")
    await bob.expect("message", content="after")
    assert bob.pending("message") == [], "the retry was not stored twice"


async def test_messages_sent_while_disconnected_go_out_in_order_on_reconnection(
    page: Page, server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("outbox")
    bob = await connect_client(clients, server, room, "bob")
    relay = Relay()
    await relay.install(page)
    await start(page, server, {"username": "gil"})
    await settled(page, f"client.join({room!r})")

    relay.open.clear()
    await relay.cut()
    await wait_for(page, "!client.connected")
    texts = [f"queued {number}" for number in range(4)]
    await page.evaluate(
        "([room, texts]) => { window.queued = texts.map(text => client.send(room, text)); }",
        [room, texts],
    )
    relay.open.set()
    outcome = await settled(page, "Promise.all(queued)")
    ids = [ack["id"] for ack in outcome["ok"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(texts)
    heard = [await bob.expect("message") for _ in texts]
    assert [event["content"] for event in heard] == texts
    assert [event["id"] for event in heard] == ids


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that takes 5 events a second from a connection."""
    running = Server(tmp_path_factory.mktemp("slow"), "--rate", "5", "--rate-burst", "5")
    running.start()
    yield running
    running.stop()


async def test_a_burst_waits_for_retry_after_and_every_send_resolves_in_order(
    page: Page, slow_server: Server
) -> None:
    room = unique_room("burst")
    relay = Relay()
    await relay.install(page)
    await start(page, slow_server, {"username": "hal"})
    await settled(page, f"client.join({room!r})")
    texts = [f"quick {number}" for number in range(8)]
    outcome = await settled(
        page, f"Promise.all({json.dumps(texts)}.map(text => client.send({room!r}, text)))"
    )
    ids = [ack["id"] for ack in outcome["ok"]]
    assert ids == sorted(ids)
    assert await contents(page, room) == texts
    refusals = [event for event in relay.received if event.get("code") == "rate_limited"]
    assert refusals, "the burst went past the rate limit"
    assert all(event["retry_after"] > 0 for event in refusals)
    assert len(relay.sent_of("join")) == 1, "never closed for abuse, never reconnected"
    assert await events(page, "error") == []


async def test_a_reset_forgets_the_rooms_ids_and_says_so(
    page: Page, memory_server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("reset")
    relay = Relay()
    await relay.install(page)
    await start(page, memory_server, {"username": "ida"})
    await settled(page, f"client.join({room!r})")
    bob = await connect_client(clients, memory_server, room, "bob")
    for number in range(1, 4):
        await bob.say(f"before {number}", room=room)
    await wait_for(page, "events.filter(e => e.type === 'message').length === 3")

    relay.open.clear()
    await asyncio.to_thread(memory_server.stop)
    await asyncio.to_thread(memory_server.start)
    carol = await connect_client(clients, memory_server, room, "carol")
    # Ids start over: the client's "since 3" is beyond the room's newest id.
    assert await carol.say("while ida is away", room=room) == 1
    relay.open.set()
    await wait_for(page, "events.some(event => event.type === 'reset')")
    assert relay.sent_of("join")[-1]["since"] == 3
    # Not 3 any more: the room's newest id, which the client asks for after a reset.
    await wait_for(page, f"client.position({room!r}) === 1")
    await carol.say("after the reset", room=room)
    await wait_for(page, "events.filter(e => e.type === 'message').length === 4")

    kinds = [(event["type"], event.get("room")) for event in await page.evaluate("events")]
    relevant = [kind for kind in kinds if kind[0] in ("reset", "message")]
    assert relevant[-2:] == [("reset", room), ("message", room)]
    assert (await events(page, "message"))[-1]["id"] == 2, "a lower id than before, emitted"
    joined = (await events(page, "joined"))[-1]
    assert joined["reset"] is True
    assert joined["rejoin"] is True


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("small"), "--max-message-size", "2048")
    running.start()
    yield running
    running.stop()


async def test_a_message_the_server_closes_the_connection_over_is_not_sent_again(
    page: Page, small_server: Server, clients: list[ChatClient]
) -> None:
    room = unique_room("big")
    bob = await connect_client(clients, small_server, room, "bob")
    await start(page, small_server, {"username": "jo"})
    await settled(page, f"client.join({room!r})")

    too_big = await settled(page, f"client.send({room!r}, 'x'.repeat(3000))")
    assert too_big["error"]["code"] == "too_big"
    closed = "events.filter(e => e.type === 'state' && e.state === 'reconnecting')"
    assert 1009 in await page.evaluate(f"{closed}.map(e => e.closeCode)")
    await wait_for(page, "client.connections === 2 && client.connected")
    sent = await settled(page, f"client.send({room!r}, 'small enough')")
    heard = await bob.expect("message")
    assert (heard["content"], heard["id"]) == ("small enough", sent["ok"]["id"])


SECRET = "s" * 40


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("auth"), "--auth-secret", SECRET)
    running.start()
    yield running
    running.stop()


async def test_a_refused_token_stops_the_client_and_a_token_function_is_asked_each_time(
    new_page: NewPage, auth_server: Server
) -> None:
    room = unique_room("signed")
    expired = issue_token(SECRET, "kim", None, int(time.time()) - 60)
    refused = await new_page()
    await start(refused, auth_server, {"token": expired}, connect=False)
    await refused.evaluate("client.connect()")
    await wait_for(refused, "client.status.state === 'refused'")
    status = await refused.evaluate("client.status")
    assert status["refusal"] == {"status": 401, "reason": "token expired", "repeats": 1}
    states = [event["state"] for event in await events(refused, "state")]
    assert states == ["connecting", "reconnecting", "refused"], "one try, then it stopped"

    fresh = issue_token(SECRET, "kim", None, int(time.time()) + 600)
    signed = await new_page()
    await start(signed, auth_server, {"username": "mallory"}, connect=False)
    await signed.evaluate(
        "token => { window.asked = 0; client.token = async () => { asked += 1; return token; }; }",
        fresh,
    )
    await signed.evaluate("client.connect()")
    await settled(signed, f"client.join({room!r})")
    sent = await settled(signed, f"client.send({room!r}, 'who am I?')")
    assert isinstance(sent["ok"]["id"], int)
    await wait_for(signed, "events.some(event => event.type === 'message')")
    assert (await events(signed, "message"))[0]["from"] == "kim", "the token's name"
    assert await signed.evaluate("asked") == 1


async def test_data_and_watch_are_passed_through(page: Page, server: Server) -> None:
    """What the server does with them is protocol 1.1's business: this is the client's part."""
    room, watched = unique_room("data"), unique_room("watch")
    relay = Relay()
    await relay.install(page)
    await start(page, server, {"username": "lee"})
    await settled(page, f"client.join({room!r})")
    await settled(page, f"client.join({watched!r}, {{watch: true}})")
    data = {"symbol": "AAPL", "price": 191.2, "tags": ["a", None, True], "nested": {"n": [1]}}
    sent = await settled(
        page, f"client.send({room!r}, 'AAPL 191.20', {{data: {json.dumps(data)}}})"
    )
    assert isinstance(sent["ok"]["id"], int)
    assert relay.sent_of("message")[-1]["data"] == data
    await settled(page, f"client.send({room!r}, 'no data')")
    assert "data" not in relay.sent_of("message")[-1]

    await relay.cut()
    await wait_for(page, "client.connections === 2 && client.connected")
    joins = {(event["room"], "since" in event): event for event in relay.sent_of("join")}
    assert joins[(watched, False)]["watch"] is True
    assert joins[(watched, True)]["watch"] is True, "rejoined as a watcher"
    assert "watch" not in joins[(room, True)]

    delivered = {
        "type": "message",
        "room": room,
        "id": 10**6,
        "from": "ticker",
        "content": "AAPL 191.30",
        "timestamp": "2026-01-01T00:00:00.000Z",
        "data": data,
    }
    relay.to_page(delivered)
    # A repeat of an id already seen in the room (or an older one) is not emitted again.
    relay.to_page(delivered)
    relay.to_page({**delivered, "id": 10**6 - 1})
    relay.to_page({**delivered, "id": 10**6 + 1, "content": "AAPL 191.40"})
    await wait_for(page, "events.some(e => e.type === 'message' && e.content === 'AAPL 191.40')")
    ticks = [event for event in await events(page, "message") if event["from"] == "ticker"]
    assert [event["id"] for event in ticks] == [10**6, 10**6 + 1]
    assert {key: ticks[0][key] for key in delivered} == delivered


async def test_served_like_the_other_static_files_and_importable_from_allowed_origins(
    new_page: NewPage, server: Server, cors_server: Server
) -> None:
    page = await new_page()
    await page.goto(f"{server.url}/static/style.css")
    response = await page.request.get(f"{server.url}/client.js")
    static = await page.request.get(f"{server.url}/static/client.js")
    assert response.ok
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "javascript" in static.headers["content-type"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert await response.body() == await static.body()
    for header in ("etag", "last-modified"):
        assert response.headers[header] == static.headers[header]
    assert ("cache-control" in response.headers) == ("cache-control" in static.headers)

    room = unique_room("cors")
    module = f"{cors_server.url}/client.js"
    async with another_site():
        allowed = await new_page()
        await allowed.goto(f"{APP_ORIGIN}/")
        # The client's default address is the server it was imported from.
        await allowed.evaluate(SETUP, [module, {"username": "mo"}])
        assert await allowed.evaluate("client.url.href") == cors_server.ws_url
        await allowed.evaluate("client.connect()")
        await settled(allowed, f"client.join({room!r})")
        sent = await settled(allowed, f"client.send({room!r}, 'from another site')")
        assert isinstance(sent["ok"]["id"], int)

        other = await new_page()
        await other.goto(f"{OTHER_ORIGIN}/")
        failed = await other.evaluate(
            "url => import(url).then(() => 'imported', error => error.name)", module
        )
        assert failed == "TypeError"


@pytest.fixture(scope="module")
def cors_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("cors"), "--allowed-origins", APP_ORIGIN)
    running.start()
    yield running
    running.stop()


async def test_close_rejects_what_waits_and_stays_closed(page: Page, server: Server) -> None:
    room = unique_room("close")
    relay = Relay()
    relay.hold = lambda event: event["type"] == "message"
    await relay.install(page)
    await start(page, server, {"username": "ned"})
    await settled(page, f"client.join({room!r})")
    await page.evaluate(
        f"""() => {{
          window.waiting = client.send({room!r}, 'never answered');
          waiting.catch(() => {{}});  // looked at below, after close()
        }}"""
    )
    await relay.wait_sent(lambda event: event["type"] == "message")

    await page.evaluate("client.close()")
    outcome = await settled(page, "waiting")
    assert outcome["error"]["code"] == "closed"
    assert await page.evaluate("[client.status.state, client.connected, client.rooms]") == [
        "closed",
        False,
        [],
    ]
    late = await settled(page, f"client.send({room!r}, 'too late')")
    assert late["error"]["code"] == "not_in_room"
