"""`kill -9` during steady posting, then restart: every acknowledged message is in history."""

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from hubbub.client import ChatClient, ConnectionClosed
from tests.conftest import SpawnServer


async def post_until_killed(
    client: ChatClient, name: str, acked: dict[int, str], plenty: asyncio.Event
) -> None:
    n = 0
    try:
        while True:
            content = f"{name}-{n}"
            acked[await client.say(content, room="r")] = content
            n += 1
            if len(acked) >= 300:
                plenty.set()
    except (ConnectionClosed, aiohttp.ClientError, ConnectionError):
        return


async def all_messages(url: str) -> dict[int, str]:
    found: dict[int, str] = {}
    before = ""
    async with aiohttp.ClientSession() as http:
        while True:
            async with http.get(f"{url}/rooms/r/messages?limit=100{before}") as response:
                page = await response.json()
            found.update({m["id"]: m["content"] for m in page["messages"]})
            if not page["has_more"]:
                return found
            before = f"&before={page['messages'][0]['id']}"


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_every_acked_message_survives_kill_9(
    spawn_server: SpawnServer, tmp_path: Path, synchronous: str
) -> None:
    """`normal` leaves the fsync to the next checkpoint: a commit is still in the file
    (the kernel's page cache) when the process dies, so only the machine's crash loses it."""
    args = (
        "--data-dir",
        str(tmp_path),
        "--rate",
        "100000",
        "--rate-burst",
        "100000",
        "--sqlite-synchronous",
        synchronous,
    )
    server = await spawn_server(*args)
    acked: dict[int, str] = {}
    clients = [await ChatClient.connect(server.ws_url) for _ in range(4)]
    for n, client in enumerate(clients):
        await client.join("r", f"poster{n}")
    plenty = asyncio.Event()
    posters = [
        asyncio.create_task(post_until_killed(client, f"p{n}", acked, plenty))
        for n, client in enumerate(clients)
    ]
    async with asyncio.timeout(20):
        await plenty.wait()
    server.process.send_signal(signal.SIGKILL)
    await server.process.wait()
    async with asyncio.timeout(20):
        await asyncio.gather(*posters)
    for client in clients:
        await client.close()

    restarted = await spawn_server(*args)
    stored = await all_messages(restarted.url)
    missing = {i: c for i, c in acked.items() if stored.get(i) != c}
    assert not missing
    assert sorted(stored) == list(range(1, len(stored) + 1))
    async with await ChatClient.connect(restarted.ws_url) as late:
        await late.join("r", "late")
        assert await late.say("after the crash") == max(stored) + 1
