"""Size, connection, rate, heartbeat and origin limits, over real sockets."""

import asyncio
from typing import Any

import aiohttp
import pytest

from hubbub.client import ChatClient, ConnectionClosed, ServerError
from hubbub.server.runner import RunningServer
from tests.conftest import Connect, StartServer


async def handshake_status(server: RunningServer, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(server.ws_url, headers=headers)
        except aiohttp.WSServerHandshakeError as refused:
            return refused.status
        await ws.close()
        return 101


async def test_oversized_message_closes_with_1009_and_others_carry_on(connect: Connect) -> None:
    big, other = await connect(), await connect()
    await big.join("r", "big")
    await other.join("r", "other")
    await big.send({"type": "message", "content": "x" * (64 * 1024), "room": "r"})
    with pytest.raises(ConnectionClosed):
        await big.expect("message")
    assert big.close_code == 1009
    await other.expect("user_left", username="big")
    assert await other.say("still fine") == 1
    assert [m["content"] for m in other.pending("message")] == ["still fine"]


async def test_message_just_under_the_limit_is_read(start_server: StartServer) -> None:
    server = await start_server(max_message_size=8192)
    async with await ChatClient.connect(server.ws_url) as client:
        await client.send({"type": "ping", "pad": "p" * 8000})
        assert await client.expect("pong")
        await client.send({"type": "ping", "pad": "p" * 8200})
        with pytest.raises(ConnectionClosed):
            await client.expect("pong")
        assert client.close_code == 1009


async def test_server_connection_limit_answers_503(start_server: StartServer) -> None:
    server = await start_server(max_connections=2)
    async with (
        await ChatClient.connect(server.ws_url),
        await ChatClient.connect(server.ws_url) as second,
    ):
        assert await handshake_status(server) == 503
        await second.close()
        assert await handshake_status(server) == 101


async def test_per_ip_limit_answers_429(start_server: StartServer) -> None:
    server = await start_server(max_connections_per_ip=1)
    async with await ChatClient.connect(server.ws_url):
        assert await handshake_status(server) == 429


async def test_rate_limit_drops_the_excess_and_keeps_the_connection(
    start_server: StartServer,
) -> None:
    server = await start_server(rate=1, rate_burst=5, abuse_limit=1000)
    async with (
        await ChatClient.connect(server.ws_url) as flooder,
        await ChatClient.connect(server.ws_url) as calm,
    ):
        await calm.join("r", "calm")
        await flooder.send({"type": "join", "room": "r", "username": "flooder"})
        for n in range(20):
            await flooder.send({"type": "message", "content": f"m{n}", "ref": n})
        replies = [await flooder.expect("ack" if n < 4 else "error", ref=n) for n in range(20)]
        assert all(reply["code"] == "rate_limited" for reply in replies[4:])
        accepted = [await calm.expect("message") for _ in range(4)]
        assert [m["content"] for m in accepted] == ["m0", "m1", "m2", "m3"]
        assert flooder.close_code is None
        assert await calm.say("unaffected") == 5


async def answer(client: ChatClient, ref: int) -> dict[str, Any]:
    """The `ack` or `error` for `ref` (events before it are skipped)."""
    while True:
        event = await client.receive()
        if event["type"] in ("ack", "error") and event.get("ref") == ref:
            return event


async def test_a_client_that_waits_retry_after_is_never_closed_and_loses_nothing(
    start_server: StartServer,
) -> None:
    """PROTOCOL.md: `rate_limited` carries `retry_after`, and a client that waits for it is
    never closed for abuse. This one sends as fast as it is allowed to, far more often
    refused than `abuse_limit`, and every message it waited for is accepted."""
    rate = 50
    server = await start_server(rate=rate, rate_burst=5, abuse_limit=3)
    async with (
        await ChatClient.connect(server.ws_url) as eager,
        await ChatClient.connect(server.ws_url) as calm,
    ):
        await calm.join("r", "calm")
        await eager.join("r", "eager")
        ids, waits = [], []
        for n in range(60):
            event = {"type": "message", "content": f"m{n}", "ref": n}
            await eager.send(event)
            reply = await answer(eager, n)
            if reply["type"] == "error":
                assert reply["code"] == "rate_limited"
                waits.append(reply["retry_after"])
                await asyncio.sleep(reply["retry_after"])
                await eager.send(event)
                reply = await answer(eager, n)
            assert reply["type"] == "ack", "waiting retry_after was not enough"
            ids.append(reply["id"])
        assert len(waits) > 3 * 3
        assert all(0 < wait <= 1 / rate + 0.001 for wait in waits)
        assert ids == list(range(1, 61))
        received = [(await calm.expect("message"))["content"] for _ in range(60)]
        assert received == [f"m{n}" for n in range(60)]
        assert eager.close_code is None


async def test_persistent_flood_closes_with_1008(start_server: StartServer) -> None:
    server = await start_server(rate=1, rate_burst=2, abuse_limit=5)
    async with (
        await ChatClient.connect(server.ws_url) as flooder,
        await ChatClient.connect(server.ws_url) as calm,
    ):
        await calm.join("r", "calm")
        for _ in range(50):
            if flooder.ws.closed:
                break
            await flooder.send({"type": "ping"})
        with pytest.raises(ConnectionClosed):
            await flooder.expect("no such event")
        assert flooder.close_code == 1008
        assert sum(e.get("code") == "rate_limited" for e in flooder.received) >= 5
        assert await calm.say("unaffected") == 1


async def test_silent_peer_is_closed_by_the_heartbeat(start_server: StartServer) -> None:
    server = await start_server(heartbeat=0.2)
    async with aiohttp.ClientSession() as http, await ChatClient.connect(server.ws_url) as watcher:
        await watcher.join("r", "watcher")
        ws = await http.ws_connect(server.ws_url, autoping=False)
        await ws.send_str('{"type": "join", "room": "r", "username": "silent"}')
        kinds = []
        async with asyncio.timeout(5):
            async for message in ws:
                kinds.append(message.type)
        assert aiohttp.WSMsgType.PING in kinds
        assert ws.closed
        await watcher.expect("user_left", username="silent")
        assert watcher.close_code is None


async def test_answering_peer_survives_many_heartbeats(start_server: StartServer) -> None:
    server = await start_server(heartbeat=0.1)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url, autoping=False)
        pings = 0
        async with asyncio.timeout(5):
            while pings < 6:
                message = await ws.receive()
                if message.type is aiohttp.WSMsgType.PING:
                    pings += 1
                    await ws.pong(message.data)
        assert not ws.closed
        await ws.send_str('{"type": "ping"}')
        async with asyncio.timeout(5):
            while (message := await ws.receive()).type is aiohttp.WSMsgType.PING:
                await ws.pong(message.data)
        assert message.json() == {"type": "pong"}
        await ws.close()


@pytest.mark.parametrize(
    "origin", ["https://evil.example", "null", "http://localhost.evil.example"]
)
async def test_cross_origin_upgrade_is_refused_with_403(server: RunningServer, origin: str) -> None:
    assert await handshake_status(server, {"Origin": origin}) == 403


@pytest.mark.parametrize("origin", ["http://localhost:3000", "http://127.0.0.1:9"])
async def test_local_origins_and_no_origin_are_allowed(server: RunningServer, origin: str) -> None:
    assert await handshake_status(server, {"Origin": origin}) == 101
    assert await handshake_status(server) == 101


async def test_own_host_origin_is_allowed_with_a_configured_list(
    start_server: StartServer,
) -> None:
    server = await start_server(allowed_origins=("https://chat.example.com",))
    own = f"http://127.0.0.1:{server.port}"
    assert await handshake_status(server, {"Origin": own}) == 101
    assert await handshake_status(server, {"Origin": "https://chat.example.com"}) == 101
    assert await handshake_status(server, {"Origin": "http://localhost:1"}) == 403


async def test_refused_events_do_not_count_as_joins(connect: Connect) -> None:
    client = await connect()
    with pytest.raises(ServerError):
        await client.join("bad room", "ann")
    ack = await client.join("good", "ann")
    assert ack["type"] == "ack"


async def test_a_message_of_exactly_the_limit_is_read(start_server: StartServer) -> None:
    server = await start_server(max_message_size=4096)
    framing = len('{"type":"ping","pad":""}')
    async with await ChatClient.connect(server.ws_url, compress=False) as client:
        await client.ws.send_str('{"type":"ping","pad":"' + "p" * (4096 - framing) + '"}')
        assert await client.expect("pong")
        await client.ws.send_str('{"type":"ping","pad":"' + "p" * (4097 - framing) + '"}')
        with pytest.raises(ConnectionClosed):
            await client.expect("pong")
        assert client.close_code == 1009


async def test_size_limit_counts_utf8_bytes(start_server: StartServer) -> None:
    server = await start_server(max_message_size=4096)
    async with await ChatClient.connect(server.ws_url) as client:
        await client.ws.send_str('{"type":"ping","pad":"' + "é" * 2100 + '"}')
        with pytest.raises(ConnectionClosed):
            await client.expect("pong")
        assert client.close_code == 1009
