"""The reconnecting client over real sockets: drops, restarts, retries; no gap, no duplicate."""

import asyncio
import time
from pathlib import Path

from hubbub.client import ChatClient
from hubbub.core.auth import issue_token
from hubbub.reconnecting import Backoff, ReconnectingClient
from tests.conftest import StartServer
from tests.netproxy import CuttableProxy

FAST = Backoff(initial=0.05, maximum=0.2)


def test_backoff_grows_exponentially_to_a_cap_with_jitter() -> None:
    backoff = Backoff(initial=0.1, maximum=2.0, factor=2.0, jitter=0.5)
    assert [backoff.delay(n, lambda: 0.0) for n in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]
    assert backoff.delay(3, lambda: 1.0) == 0.4
    assert 0.4 <= backoff.delay(3) <= 0.8


async def collect_messages(client: ReconnectingClient, room: str, until_id: int) -> list[int]:
    ids: list[int] = []
    while not ids or ids[-1] < until_id:
        event = await client.receive(timeout=10)
        if event["type"] == "message" and event["room"] == room:
            ids.append(event["id"])
    return ids


async def test_cut_connection_loses_and_repeats_nothing(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(store="sqlite", data_dir=str(tmp_path), rate=1000, rate_burst=1000)
    async with (
        CuttableProxy(server.port) as proxy,
        await ChatClient.connect(server.ws_url) as poster,
        ReconnectingClient(proxy.ws_url, "carol", backoff=FAST) as carol,
    ):
        await poster.join("r", "poster")
        await poster.say("before carol joined")
        await carol.join("r")
        posted: list[int] = []
        for round_ in range(3):
            for n in range(20):
                posted.append(await poster.say(f"round {round_} message {n}"))
                if n == 10:
                    proxy.cut()
            mine = await carol.say("r", f"carol after cut {round_}")
            posted.append(mine)
        ids = await collect_messages(carol, "r", posted[-1])
        assert ids == list(range(2, posted[-1] + 1))
        assert carol.connections == 4


async def test_messages_sent_while_disconnected_are_sent_once_after(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = await start_server(store="sqlite", data_dir=str(tmp_path))
    async with (
        CuttableProxy(server.port) as proxy,
        ReconnectingClient(proxy.ws_url, "dave", backoff=FAST) as dave,
        await ChatClient.connect(server.ws_url) as watcher,
    ):
        await watcher.join("r", "watcher")
        await dave.join("r")
        proxy.cut()
        sending = [asyncio.create_task(dave.say("r", f"queued {n}")) for n in range(5)]
        ids = await asyncio.gather(*sending)
        assert sorted(ids) == list(range(1, 6))
        seen = [(await watcher.expect("message"))["content"] for _ in range(5)]
        assert sorted(seen) == [f"queued {n}" for n in range(5)]
        await watcher.request({"type": "history", "room": "r"})
        stored = (await watcher.expect("history"))["messages"]
        assert sorted(m["content"] for m in stored) == [f"queued {n}" for n in range(5)]
        assert dave.connections == 2


async def test_server_restart_is_survived_with_every_message_once(
    start_server: StartServer, tmp_path: Path
) -> None:
    args = {"store": "sqlite", "data_dir": str(tmp_path)}
    first = await start_server(**args)
    port = first.port
    async with ReconnectingClient(first.ws_url, "erin", backoff=FAST) as erin:
        await erin.join("r")
        before = await erin.say("r", "before restart")
        await first.stop()
        second = await start_server(port=port, **args)
        async with await ChatClient.connect(second.ws_url) as other:
            await other.join("r", "other")
            during = [await other.say(f"while erin was away {n}") for n in range(3)]
        after = await erin.say("r", "after restart")
        ids = await collect_messages(erin, "r", after)
        assert ids == [before, *during, after]


async def test_works_with_a_token_in_the_url(start_server: StartServer) -> None:
    secret = "r" * 40
    server = await start_server(auth_secret=secret)
    token = issue_token(secret, "frank", ["r"], int(time.time()) + 600)
    async with ReconnectingClient(f"{server.ws_url}?token={token}", "ignored") as frank:
        await frank.join("r")
        message_id = await frank.say("r", "authenticated")
        event = await frank.receive()
        while event["type"] != "message":
            event = await frank.receive()
        assert event == {**event, "id": message_id, "from": "frank"}
