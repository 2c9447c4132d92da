"""The fast paths keep the protocol exact: batched writes, shared frames, mixed members."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import msgpack
import orjson
import pytest

from hubbub.client import ChatClient
from hubbub.server.runner import RunningServer
from tests.conftest import StartServer


@contextlib.asynccontextmanager
async def two_members(
    server: RunningServer, first: str, second: str
) -> AsyncIterator[tuple[ChatClient, ChatClient]]:
    """Two uncompressed clients joined to room `r`, in that order."""
    async with (
        await ChatClient.connect(server.ws_url, compress=False) as one,
        await ChatClient.connect(server.ws_url, compress=False) as two,
    ):
        await one.join("r", first)
        await two.join("r", second)
        yield one, two


@pytest.mark.parametrize("flush_delay", [0.0, 0.02])
async def test_a_burst_arrives_whole_and_in_order(
    start_server: StartServer, flush_delay: float
) -> None:
    server = await start_server(rate=100_000, rate_burst=100_000, flush_delay=flush_delay)
    async with two_members(server, "sender", "receiver") as (sender, receiver):
        for n in range(2000):
            await sender.send({"type": "message", "content": f"burst {n}:" + "x" * (n % 300)})
        await sender.request({"type": "ping"})
        for n in range(2000):
            message = await receiver.expect("message")
            assert message["id"] == n + 1
            assert message["content"] == f"burst {n}:" + "x" * (n % 300)


async def test_a_busy_member_still_gets_its_own_answers_without_the_delay(
    start_server: StartServer,
) -> None:
    """A member busy with a room's traffic waits up to the flush delay for broadcasts,
    but never for an ack: a client that waits for each one would crawl."""
    delay = 1.0
    server = await start_server(rate=100_000, rate_burst=100_000, flush_delay=delay)
    async with two_members(server, "sender", "other") as (sender, other):
        loop = asyncio.get_running_loop()
        for n in range(40):
            # Another member's messages keep the sender busy, whose own acks must not wait.
            await other.send({"type": "message", "content": f"noise {n}"})
            started = loop.time()
            await sender.say(f"mine {n}")
            assert loop.time() - started < delay / 2
        contents = [
            (await sender.expect("message", timeout=2 * delay))["content"] for _ in range(80)
        ]
        assert contents.count("mine 39") == 1
        assert [c for c in contents if c.startswith("noise")] == [f"noise {n}" for n in range(40)]


async def test_mixed_members_each_get_their_own_encoding(start_server: StartServer) -> None:
    server = await start_server()
    kinds = [(False, False), (False, True), (True, False), (True, True)]
    async with aiohttp.ClientSession() as http:
        sockets = []
        for binary, compressed in kinds:
            ws = await http.ws_connect(
                server.ws_url,
                protocols=("msgpack",) if binary else (),
                compress=15 if compressed else 0,
            )
            assert bool(ws.compress) == compressed
            sockets.append((binary, ws))
        for n, (binary, ws) in enumerate(sockets):
            join = {"type": "join", "room": "mix", "username": f"u{n}", "ref": "j"}
            if binary:
                await ws.send_bytes(msgpack.packb(join))
            else:
                await ws.send_str(orjson.dumps(join).decode())
        async with await ChatClient.connect(server.ws_url) as poster:
            await poster.join("mix", "poster")
            contents = [f"hello {n}:" + "é" * n * 50 for n in range(20)]
            for content in contents:
                await poster.say(content)
        for binary, ws in sockets:
            seen: list[str] = []
            async with asyncio.timeout(5):
                while len(seen) < len(contents):
                    frame = await ws.receive()
                    assert frame.type is (
                        aiohttp.WSMsgType.BINARY if binary else aiohttp.WSMsgType.TEXT
                    )
                    event = msgpack.unpackb(frame.data) if binary else orjson.loads(frame.data)
                    if event["type"] == "message":
                        seen.append(event["content"])
            assert seen == contents
            await ws.close()
