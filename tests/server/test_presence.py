"""online_users: at once to the joiner, coalesced for the room, carrying the state when sent."""

import asyncio
import time

from hubbub.client import ChatClient
from tests.conftest import StartServer


async def test_a_room_filling_up_costs_linear_presence_frames(start_server: StartServer) -> None:
    interval = 0.2
    members = 150
    server = await start_server(presence_interval=interval, max_connections_per_ip=1000)
    clients = [await ChatClient.connect(server.ws_url) for _ in range(members)]
    try:
        started = time.monotonic()
        await asyncio.gather(*(c.join("big", f"user{n:03d}") for n, c in enumerate(clients)))
        finals = await asyncio.gather(
            *(c.expect("online_users", count=members, timeout=10) for c in clients)
        )
        elapsed = time.monotonic() - started
        assert all(len(final["users"]) == members for final in finals)
        assert finals[0]["users"] == sorted(f"user{n:03d}" for n in range(members))
        broadcasts_allowed = elapsed / interval + 2
        for client in clients:
            frames = sum(e["type"] == "online_users" for e in client.received)
            # one direct copy for the join, then at most one per interval
            assert frames <= 1 + broadcasts_allowed
        total = sum(sum(e["type"] == "online_users" for e in c.received) for c in clients)
        assert total < members * members / 4
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def test_the_joiner_gets_the_current_list_at_once(start_server: StartServer) -> None:
    server = await start_server(presence_interval=30)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
    ):
        await ann.join("r", "ann")
        await bob.join("r", "bob")
        first = await bob.expect("online_users")
        assert first == {"type": "online_users", "users": ["ann", "bob"], "count": 2, "room": "r"}


async def test_coalesced_broadcast_carries_the_state_when_sent(start_server: StartServer) -> None:
    server = await start_server(presence_interval=0.3)
    async with (
        await ChatClient.connect(server.ws_url) as ann,
        await ChatClient.connect(server.ws_url) as bob,
        await ChatClient.connect(server.ws_url) as cat,
    ):
        await ann.join("r", "ann")
        await ann.expect("online_users", users=["ann"])
        await bob.join("r", "bob")
        await cat.join("r", "cat")
        await bob.leave("r")
        update = await ann.expect("online_users", count=2, timeout=3)
        assert update["users"] == ["ann", "cat"]
        assert not [e for e in ann.pending("online_users") if "bob" in e["users"]]
