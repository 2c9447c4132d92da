"""Watchers in cluster mode: a node whose only clients in a room are watchers still
follows the room, and watchers count nowhere in presence, on any node."""

import asyncio

import pytest

from hubbub.client import ChatClient
from tests.cluster.conftest import StartNode, get, messages_in

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]


async def test_watchers_on_a_node_without_members_get_every_message_in_order(
    start_node: StartNode,
) -> None:
    a, b = await start_node(), await start_node()
    async with (
        await ChatClient.connect(a.ws_url) as ann,
        await ChatClient.connect(b.ws_url) as v1,
        await ChatClient.connect(b.ws_url) as v2,
    ):
        await ann.join("r", "ann")
        await v1.join("r", "v1", watch=True)
        await v2.join("r", "v2", watch=True)
        posted = [await ann.say(f"m{n}", room="r") for n in range(20)]
        for viewer in (v1, v2):
            assert await messages_in(viewer, 20) == posted
        for node in (a, b):
            status, rooms = await get(f"{node.url}/rooms")
            assert (status, rooms) == (200, {"rooms": [{"name": "r", "count": 1}], "total": 1})
            status, stats = await get(f"{node.url}/stats")
            assert (stats["connections"], stats["rooms"], stats["users"]) == (3, 1, 1)
        assert [e["type"] for e in v1.received] == ["welcome", "ack", *["message"] * 20]
        assert [e for e in ann.received if e["type"] in ("user_joined", "user_left")] == [
            {"type": "user_joined", "username": "ann", "room": "r"}
        ]
        assert all(e["users"] == ["ann"] for e in ann.received if e["type"] == "online_users")

        # The last watcher there leaves (b stops following r) and one comes back with
        # `since`: what was posted meanwhile, then live messages.
        await v1.leave("r")
        await v2.leave("r")
        missed = [await ann.say(f"while away {n}", room="r") for n in range(3)]
        ack = await v1.join("r", watch=True, since=posted[-1])
        assert ack["replayed"] == 3
        live = await ann.say("live", room="r")
        assert await messages_in(v1, 4) == [*missed, live]


async def test_a_watcher_switching_modes_is_seen_on_the_other_node(
    start_node: StartNode,
) -> None:
    a, b = await start_node(), await start_node()
    async with (
        await ChatClient.connect(a.ws_url) as ann,
        await ChatClient.connect(b.ws_url) as sam,
    ):
        await ann.join("r", "ann")
        await sam.join("r", "sam", watch=True)
        await sam.join("r")
        await ann.expect("user_joined", username="sam", timeout=5)
        said = await sam.say("hello from b", room="r")
        assert (await ann.expect("message", timeout=5))["id"] == said
        await sam.join("r", watch=True)
        await ann.expect("user_left", username="sam", timeout=5)
        async with asyncio.timeout(5):
            while (await ann.expect("online_users"))["users"] != ["ann"]:
                pass
        posted = await ann.say("sam watches again", room="r")
        assert (await sam.expect("message", id=posted, timeout=5))["room"] == "r"
