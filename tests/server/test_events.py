"""Every seed event and field over real sockets, plus the additions of protocol v1."""

import re

import aiohttp
import msgpack
import pytest

from hubbub.server.runner import RunningServer
from tests.conftest import Connect

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


async def test_welcome_is_the_first_frame(connect: Connect) -> None:
    client = await connect()
    assert client.welcome["message"] == "Connected to server"
    assert client.welcome["protocol"] == 1
    assert isinstance(client.welcome["connection_id"], str)


async def test_join_announces_sends_presence_then_acks(connect: Connect) -> None:
    ann = await connect()
    await ann.send({"type": "join", "room": "general", "username": "ann", "ref": "j1"})
    joined = await ann.receive()
    assert joined == {"type": "user_joined", "username": "ann", "room": "general"}
    users = await ann.receive()
    assert users == {"type": "online_users", "users": ["ann"], "count": 1, "room": "general"}
    assert await ann.receive() == {"type": "ack", "ref": "j1"}


async def test_message_reaches_every_member_with_seed_fields(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("general", "ann")
    await bob.join("general", "bob")
    message_id = await ann.say("Hello!", room="general")
    for client in (ann, bob):
        event = await client.expect("message")
        assert event["from"] == "ann"
        assert event["content"] == "Hello!"
        assert event["room"] == "general"
        assert event["id"] == message_id
        assert TIMESTAMP.fullmatch(event["timestamp"])


async def test_message_broadcast_reaches_the_sender_before_its_ack(connect: Connect) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    await ann.send({"type": "message", "content": "hi", "ref": 5})
    ack = await ann.expect("ack", ref=5)
    message = ann.received[ann.received.index(ack) - 1]
    assert message["type"] == "message"
    assert ack == {"type": "ack", "ref": 5, "id": message["id"]}


async def test_ids_strictly_increase_per_room(connect: Connect) -> None:
    ann = await connect()
    await ann.join("a", "ann")
    await ann.join("b", "ann")
    ids_a = [await ann.say(f"a{i}", room="a") for i in range(5)]
    ids_b = [await ann.say(f"b{i}", room="b") for i in range(3)]
    assert ids_a == sorted(set(ids_a))
    assert ids_a[0] == 1
    assert ids_b == [1, 2, 3]


async def test_user_joined_goes_to_existing_members_and_the_joiner(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("r", "ann")
    await bob.join("r", "bob")
    assert await ann.expect("user_joined", username="bob") == {
        "type": "user_joined",
        "username": "bob",
        "room": "r",
    }
    await bob.expect("user_joined", username="bob")


async def test_typing_goes_to_the_others_only(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("r", "ann")
    await bob.join("r", "bob")
    await ann.request({"type": "typing", "room": "r"})
    assert await bob.expect("typing") == {"type": "typing", "username": "ann", "room": "r"}
    await ann.request({"type": "ping"})
    assert not [event for event in ann.received if event["type"] == "typing"]


async def test_leave_tells_the_rest(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("r", "ann")
    await bob.join("r", "bob")
    await bob.leave("r")
    assert await ann.expect("user_left") == {"type": "user_left", "username": "bob", "room": "r"}
    users = await ann.expect("online_users", users=["ann"])
    assert users["count"] == 1


async def test_disconnect_tells_the_rest(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("r", "ann")
    await bob.join("r", "bob")
    await bob.close()
    assert await ann.expect("user_left", username="bob")


async def test_presence_is_per_username_across_tabs(connect: Connect) -> None:
    watcher, tab1, tab2 = await connect(), await connect(), await connect()
    await watcher.join("r", "watcher")
    await tab1.join("r", "ann")
    await watcher.expect("user_joined", username="ann")
    await tab2.join("r", "ann")
    users = await watcher.expect("online_users", users=["ann", "watcher"])
    assert users["count"] == 2
    await tab1.close()
    await tab2.say("still here")
    await watcher.expect("message", content="still here")
    assert not watcher.pending("user_left")
    await tab2.close()
    assert await watcher.expect("user_left", username="ann")


async def test_guest_name_when_username_is_missing_or_blank(connect: Connect) -> None:
    first, second = await connect(), await connect()
    await first.send({"type": "join", "room": "r"})
    await second.send({"type": "join", "room": "r", "username": "   "})
    for client in (first, second):
        joined = await client.expect("user_joined")
        assert re.fullmatch(r"User-[0-9a-f]{8}", joined["username"])


async def test_username_is_fixed_by_the_first_join(connect: Connect) -> None:
    ann = await connect()
    await ann.join("a", "ann")
    await ann.join("b", "mallory")
    assert (await ann.expect("user_joined", room="b"))["username"] == "ann"


async def test_several_rooms_at_once_keep_traffic_apart(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("a", "ann")
    await ann.join("b", "ann")
    await bob.join("b", "bob")
    await ann.say("to a", room="a")
    await ann.say("to b", room="b")
    event = await bob.expect("message")
    assert event["content"] == "to b"


async def test_seed_page_omits_room_when_in_one_room(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await ann.join("lobby", "ann")
    await bob.join("lobby", "bob")
    await ann.send({"type": "typing"})
    assert (await bob.expect("typing"))["room"] == "lobby"
    await ann.send({"type": "message", "content": "no room field"})
    assert (await bob.expect("message"))["room"] == "lobby"
    await ann.send({"type": "leave"})
    assert await bob.expect("user_left", username="ann")


async def test_leave_without_room_leaves_them_all(connect: Connect) -> None:
    ann, bob = await connect(), await connect()
    await bob.join("a", "bob")
    await bob.join("b", "bob")
    await ann.join("a", "ann")
    await ann.join("b", "ann")
    await ann.leave()
    left = {(await bob.expect("user_left"))["room"] for _ in range(2)}
    assert left == {"a", "b"}


async def test_ping_gets_pong(connect: Connect) -> None:
    ann = await connect()
    await ann.send({"type": "ping"})
    assert await ann.receive() == {"type": "pong"}


async def test_history_event_pages_oldest_first(connect: Connect) -> None:
    ann = await connect()
    await ann.join("r", "ann")
    ids = [await ann.say(f"m{i}") for i in range(5)]
    await ann.send({"type": "history", "room": "r", "limit": 2, "ref": "h"})
    page = await ann.expect("history")
    assert [m["id"] for m in page["messages"]] == ids[-2:]
    assert page["has_more"] is True
    assert ann.received[ann.received.index(page) + 1] == {"type": "ack", "ref": "h"}
    await ann.send({"type": "history", "room": "r", "before": ids[1]})
    older = await ann.expect("history")
    assert [m["content"] for m in older["messages"]] == ["m0"]
    assert older["has_more"] is False


async def test_msgpack_and_json_clients_share_a_room(connect: Connect) -> None:
    packed, plain = await connect(msgpack=True), await connect()
    assert packed.ws.protocol == "msgpack"
    assert packed.welcome["type"] == "welcome"
    await packed.join("mix", "packed")
    await plain.join("mix", "plain")
    await plain.say("from json")
    await packed.say("from msgpack")
    for client in (packed, plain):
        first = await client.expect("message")
        second = await client.expect("message")
        assert [first["content"], second["content"]] == ["from json", "from msgpack"]
        assert first["from"] == "plain"


async def test_compression_is_negotiated_when_offered(
    connect: Connect, server: RunningServer
) -> None:
    squeezed = await connect(compress=True)
    plain = await connect(compress=False)
    assert squeezed.ws.compress == 15
    assert plain.ws.compress == 0
    await squeezed.join("z", "zed")
    await plain.join("z", "pat")
    text = "compress me " * 200
    await plain.say(text)
    assert (await squeezed.expect("message"))["content"] == text


async def test_compression_can_be_turned_off(start_server: object, connect: Connect) -> None:
    from tests.conftest import StartServer

    assert callable(start_server)
    starter: StartServer = start_server
    server = await starter(compression=False)
    client = await connect(server, compress=True)
    assert client.ws.compress == 0


@pytest.mark.parametrize("offer", [("msgpack",), ("json", "msgpack"), ("msgpack", "json")])
async def test_msgpack_is_chosen_whenever_offered(
    server: RunningServer, offer: tuple[str, ...]
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(server.ws_url, protocols=offer) as ws,
    ):
        assert ws.protocol == "msgpack"
        welcome = await ws.receive()
        assert welcome.type is aiohttp.WSMsgType.BINARY
        assert msgpack.unpackb(welcome.data)["type"] == "welcome"


async def test_json_subprotocol_or_none_speaks_json(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        for offer in [("json",), ()]:
            async with http.ws_connect(server.ws_url, protocols=offer) as ws:
                assert ws.protocol == (offer[0] if offer else None)
                assert (await ws.receive_json())["type"] == "welcome"
