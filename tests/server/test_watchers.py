"""Watchers (`join` with `watch: true`): a room's messages, and nothing of its presence.

Real servers and real sockets; frame counts are read from what each client received.
"""

import asyncio
from typing import Any

import aiohttp
import pytest

from hubbub.client import ChatClient, Event, ServerError
from hubbub.server.runner import RunningServer
from tests.conftest import Connect, StartServer, metric


async def get(server: RunningServer, path: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(server.url + path) as response:
        assert response.status == 200
        if response.content_type == "application/json":
            return await response.json()
        return await response.text()


def kinds(events: list[Event]) -> list[str]:
    return [event["type"] for event in events]


async def settle(condition: Any, timeout: float = 5.0) -> None:
    """Wait until `condition()` holds (server-side cleanup runs in the background)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 (a count on the server, no event to await)
            await asyncio.sleep(0.01)


async def list_after_departure(member: ChatClient, username: str) -> None:
    """Wait for an `online_users` that came after `username`'s `user_left`."""
    [departure] = [
        n
        for n, event in enumerate(member.received)
        if event["type"] == "user_left" and event["username"] == username
    ]
    while True:
        listed = await member.expect("online_users")
        if any(event is listed for event in member.received[departure:]):
            assert username not in listed["users"]
            return


async def test_fifty_watchers_arriving_cost_one_ack_each_and_no_presence_frames(
    start_server: StartServer,
) -> None:
    server = await start_server(presence_interval=0.001, max_connections_per_ip=1000)
    m0, m1, m2 = [await ChatClient.connect(server.ws_url) for _ in range(3)]
    watchers = [await ChatClient.connect(server.ws_url) for _ in range(50)]
    try:
        for n, member in enumerate((m0, m1, m2)):
            await member.join("dash", f"m{n}")
        await m0.expect("user_joined", username="m2")
        await m2.leave("dash")
        # Lists carry the state when sent: once m0 and m1 have one without m2 after
        # hearing that m2 left, no list is due any more (until the next change).
        for member in (m0, m1):
            await member.expect("user_left", username="m2")
            await list_after_departure(member, "m2")
        baseline = [len(m0.received), len(m1.received)]

        acks = await asyncio.gather(
            *(w.join("dash", f"viewer{n}", watch=True) for n, w in enumerate(watchers))
        )
        assert all(ack["type"] == "ack" for ack in acks)
        for watcher in watchers:
            assert kinds(watcher.received) == ["welcome", "ack"], "one ack, nothing else"

        first = await m0.say("after the viewers came", room="dash")
        await m2.join("dash")
        for member in (m0, m1):
            await member.expect("user_joined", username="m2")
            await member.expect("online_users", count=3)
        last = await m0.say("after m2 came back", room="dash")
        for client in [*watchers, m0, m1]:
            assert (await client.expect("message", id=first))["room"] == "dash"
            await client.expect("message", id=last)
        await m2.expect("message", id=last)

        for watcher in watchers:
            assert kinds(watcher.received) == ["welcome", "ack", "message", "message"]
        for member, seen in zip((m0, m1), baseline, strict=True):
            presence = [
                event
                for event in member.received[seen:]
                if event["type"] in ("user_joined", "user_left", "online_users")
            ]
            assert presence == [
                {"type": "user_joined", "username": "m2", "room": "dash"},
                {"type": "online_users", "users": ["m0", "m1", "m2"], "count": 3, "room": "dash"},
            ], "m2's return is news; fifty viewers arriving are none"
    finally:
        await asyncio.gather(*(c.close() for c in [m0, m1, m2, *watchers]))


async def test_a_watcher_gets_messages_but_no_typing_and_no_presence(connect: Connect) -> None:
    ann, bob, viewer = await connect(), await connect(), await connect()
    await ann.join("r", "ann")
    await viewer.join("r", "viewer", watch=True)
    await bob.join("r", "bob")
    await ann.expect("user_joined", username="bob")
    await ann.send({"type": "typing", "room": "r"})
    await bob.expect("typing", username="ann")
    posted = await ann.say("hello", room="r")
    await bob.leave("r")
    await ann.expect("user_left", username="bob")
    closing = await ann.say("bye", room="r")
    assert [e["id"] for e in [await viewer.expect("message") for _ in range(2)]] == [
        posted,
        closing,
    ]
    assert kinds(viewer.received) == ["welcome", "ack", "message", "message"]
    assert all("viewer" not in e.get("users", []) for e in ann.received)


async def test_a_watcher_may_not_post_or_type_and_nobody_else_is_affected(
    connect: Connect,
) -> None:
    ann, viewer = await connect(), await connect()
    await ann.join("r", "ann")
    await viewer.join("r", "viewer", watch=True)
    for refused in (
        {"type": "message", "room": "r", "content": "let me talk"},
        {"type": "message", "content": "the one room, unnamed"},
        {"type": "typing", "room": "r"},
        {"type": "typing"},
    ):
        with pytest.raises(ServerError) as error:
            await viewer.request(refused)
        assert error.value.code == "not_in_room"
        assert "watch" in error.value.event["message"]
    with pytest.raises(ServerError) as error:
        await viewer.request({"type": "join", "room": "r", "watch": "yes"})
    assert error.value.code == "invalid_field"
    posted = await ann.say("still fine", room="r")
    assert (await viewer.expect("message"))["id"] == posted
    await ann.expect("message", id=posted)
    seen = [(e["type"], e.get("content")) for e in ann.received if e["type"] != "ack"]
    assert ("message", "still fine") in seen
    assert [kind for kind, _ in seen if kind in ("message", "typing")] == ["message"], (
        "nothing the watcher tried reached the member"
    )
    await viewer.request({"type": "history", "room": "r"})
    assert (await viewer.expect("history", room="r"))["messages"][-1]["id"] == posted


async def test_a_watcher_replays_with_since_and_then_gets_live_messages(
    connect: Connect,
) -> None:
    ann, viewer = await connect(), await connect()
    await ann.join("r", "ann")
    posted = [await ann.say(f"m{n}", room="r") for n in range(4)]
    ack = await viewer.join("r", "viewer", since=posted[0], watch=True)
    assert (ack["replayed"], ack["truncated"]) == (3, False)
    live = await ann.say("live", room="r")
    ids = [(await viewer.expect("message"))["id"] for _ in range(4)]
    assert ids == [*posted[1:], live]
    assert "online_users" not in kinds(viewer.received)


async def test_rooms_and_stats_count_watchers_connections_but_not_their_presence(
    server: RunningServer, connect: Connect
) -> None:
    ann, viewers = await connect(), [await connect() for _ in range(3)]
    await ann.join("chat", "ann")
    for n, viewer in enumerate(viewers):
        await viewer.join("chat", f"v{n}", watch=True)
        await viewer.join("dashboard", watch=True)
    rooms = await get(server, "/rooms")
    assert rooms == {"rooms": [{"name": "chat", "count": 1}], "total": 1}
    stats = await get(server, "/stats")
    assert (stats["connections"], stats["rooms"], stats["users"]) == (4, 1, 1)
    assert metric(await get(server, "/metrics"), "hubbub_watchers") == 6
    assert metric(await get(server, "/metrics"), "hubbub_rooms") == 1
    legacy = await get(server, "/api/rooms")
    assert legacy["rooms"] == [{"name": "chat", "users": 1}]


async def test_watchers_take_no_member_slot(start_server: StartServer) -> None:
    server = await start_server(max_room_members=1)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
        await ChatClient.connect(server.ws_url) as viewer,
    ):
        await ann.join("small", "ann")
        assert (await viewer.join("small", "viewer", watch=True))["type"] == "ack"
        with pytest.raises(ServerError) as refused:
            await bob.join("small", "bob")
        assert refused.value.code == "room_full"
        posted = await ann.say("one member, one viewer", room="small")
        assert (await viewer.expect("message"))["id"] == posted


async def test_watchers_of_a_room_are_bounded_on_each_node(start_server: StartServer) -> None:
    server = await start_server(max_room_watchers=2)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as v1,
        await ChatClient.connect(server.ws_url) as v2,
        await ChatClient.connect(server.ws_url) as v3,
    ):
        await v1.join("r", "v1", watch=True)
        await v2.join("r", "v2", watch=True)
        with pytest.raises(ServerError) as refused:
            await v3.join("r", "v3", watch=True)
        assert refused.value.code == "room_full"
        assert "watchers" in refused.value.event["message"]
        await v3.join("other", watch=True)
        await ann.join("r", "ann")
        posted = await ann.say("to both", room="r")
        for viewer in (v1, v2):
            assert (await viewer.expect("message"))["id"] == posted
        with pytest.raises(ServerError) as refused:
            await v3.leave("r")
        assert refused.value.code == "not_in_room", "the refused join left v3 out of r"
        await v1.leave("r")
        assert (await v3.join("r", watch=True))["type"] == "ack"
        again = await ann.say("to v2 and v3", room="r")
        assert (await v3.expect("message", room="r"))["id"] == again


async def test_a_watcher_that_joins_as_a_member_becomes_one_and_back_missing_nothing(
    connect: Connect,
) -> None:
    ann, bob, switcher = await connect(), await connect(), await connect()
    await ann.join("r", "ann")
    await bob.join("r", "bob")
    await switcher.join("r", "sam", watch=True)
    posted: list[int] = []
    stop = asyncio.Event()

    async def post_steadily() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            posted.append(await ann.say(f"m{n}", room="r"))

    poster = asyncio.create_task(post_steadily())
    try:
        await ann.expect("message")
        ack = await switcher.join("r")
        assert ack["type"] == "ack"
        await ann.expect("user_joined", username="sam")
        own_list = await switcher.expect("online_users")
        assert own_list["users"] == ["ann", "bob", "sam"]
        said = await switcher.say("I can talk now", room="r")
        await switcher.join("r", watch=True)
        await ann.expect("user_left", username="sam")
        with pytest.raises(ServerError) as refused:
            await switcher.say("and now?", room="r")
        assert refused.value.code == "not_in_room"
        await ann.expect("message", id=said)
    finally:
        stop.set()
        await poster
    everything = sorted([*posted, said])
    received = [(await switcher.expect("message"))["id"] for _ in everything]
    assert received == everything, "no gap and no duplicate across the switches"
    await bob.send({"type": "typing", "room": "r"})
    await ann.expect("typing", username="bob")
    last = await bob.say("end", room="r")
    await switcher.expect("message", id=last)
    assert switcher.pending("typing") == []


async def test_a_member_that_watches_instead_keeps_its_name_elsewhere(connect: Connect) -> None:
    """Presence is per username: sam's other connection keeps sam listed."""
    ann, sam_tab, sam_dashboard = await connect(), await connect(), await connect()
    await ann.join("r", "ann")
    await sam_tab.join("r", "sam")
    await sam_dashboard.join("r", "sam")
    await ann.expect("user_joined", username="sam")
    await sam_dashboard.join("r", watch=True)
    await sam_tab.leave("r")
    await ann.expect("user_left", username="sam")
    async with asyncio.timeout(5):
        while (await ann.expect("online_users"))["users"] != ["ann"]:
            pass
    posted = await ann.say("sam still watches", room="r")
    assert (await sam_dashboard.expect("message", id=posted))["content"] == "sam still watches"


async def test_an_upgrade_refused_for_a_full_room_leaves_the_watcher_watching(
    start_server: StartServer,
) -> None:
    server = await start_server(max_room_members=1)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as viewer,
    ):
        await ann.join("r", "ann")
        await viewer.join("r", "viewer", watch=True)
        with pytest.raises(ServerError) as refused:
            await viewer.join("r")
        assert refused.value.code == "room_full"
        with pytest.raises(ServerError) as refused:
            await viewer.say("may I?", room="r")
        assert refused.value.code == "not_in_room"
        posted = await ann.say("you still watch", room="r")
        assert (await viewer.expect("message"))["id"] == posted
        await viewer.leave("r")
        assert await get(server, "/rooms") == {"rooms": [{"name": "r", "count": 1}], "total": 1}


async def test_a_watcher_leaves_and_switches_rooms_the_seeds_way(
    server: RunningServer, connect: Connect
) -> None:
    """The seed's page switches rooms by `leave` without a room, then `join`."""
    ann, viewer = await connect(), await connect()
    await ann.join("a", "ann")
    await ann.join("b")
    await viewer.join("a", "viewer", watch=True)
    await viewer.leave()
    await viewer.join("b", watch=True)
    await ann.say("in a", room="a")
    in_b = await ann.say("in b", room="b")
    assert (await viewer.expect("message"))["id"] == in_b
    assert viewer.pending("message") == []
    await viewer.send({"type": "leave", "ref": "unnamed"})
    await viewer.expect("ack", ref="unnamed")
    await settle(lambda: server.node.watchers.size() == 0)
    with pytest.raises(ServerError) as refused:
        await viewer.leave("b")
    assert refused.value.code == "not_in_room"


async def test_a_watcher_disconnecting_is_not_announced(
    server: RunningServer, connect: Connect
) -> None:
    ann, viewer = await connect(), await connect()
    await ann.join("r", "ann")
    await viewer.join("r", "viewer", watch=True)
    assert server.node.watchers.size() == 1
    await viewer.close()
    await settle(lambda: server.node.watchers.size() == 0)
    stats = await get(server, "/stats")
    assert stats["connections"] == 1
    posted = await ann.say("alone", room="r")
    await ann.expect("message", id=posted)
    assert [e for e in ann.received if e["type"] == "user_left"] == []
