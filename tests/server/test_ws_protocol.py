"""Hubbub's WebSocket protocol: every message read is handled, in order, even in bursts."""

import asyncio

import orjson

from hubbub.client import ChatClient
from hubbub.server.runner import RunningServer
from hubbub.server.ws_protocol import CLOSE_GRACE_SECONDS, INBOX_LIMIT
from tests.conftest import StartServer
from tests.rawsocket import CLOSE, TEXT, WAIT, RawWebSocket, encode_frame


def say(content: str, ref: int) -> bytes:
    event = {"type": "message", "room": "r", "content": content, "ref": ref}
    return encode_frame(TEXT, orjson.dumps(event))


async def test_a_burst_larger_than_the_inbox_is_handled_whole_and_in_order(
    start_server: StartServer,
) -> None:
    """One write of many messages: reading pauses while they wait, and resumes."""
    server = await start_server(rate=100_000, rate_burst=100_000)
    count = 5 * INBOX_LIMIT
    async with await ChatClient.connect(server.ws_url) as watcher:
        await watcher.join("r", "watcher")
        raw = await RawWebSocket.connect(server.port)
        try:
            raw.write(encode_frame(TEXT, b'{"type":"join","room":"r","username":"burst"}'))
            raw.write(b"".join(say(f"m{n}", n) for n in range(count)))
            last = await raw.wait_for(lambda event: event.get("ref") == count - 1)
            acks = [event for event in raw.events if event.get("type") == "ack"]
            assert [ack["ref"] for ack in acks] == list(range(count))
            assert last["id"] == count
            raw.write(say("after the burst", count))
            await raw.wait_for(lambda event: event.get("ref") == count)
        finally:
            await raw.close()
        contents: list[str] = []
        while len(contents) <= count:
            event = await watcher.expect("message")
            contents.append(event["content"])
        assert contents == [*(f"m{n}" for n in range(count)), "after the burst"]


async def test_a_message_right_before_the_close_frame_is_still_handled(
    server: RunningServer,
) -> None:
    async with await ChatClient.connect(server.ws_url) as watcher:
        await watcher.join("r", "watcher")
        raw = await RawWebSocket.connect(server.port)
        raw.write(encode_frame(TEXT, b'{"type":"join","room":"r","username":"leaver"}'))
        await watcher.expect("user_joined", username="leaver")
        raw.write(say("last words", 1) + encode_frame(CLOSE, b"\x03\xe8"))
        assert await raw.wait_closed() == 1000
        await raw.close()
        message = await watcher.expect("message")
        assert (message["from"], message["content"]) == ("leaver", "last words")
        await watcher.expect("user_left", username="leaver")
        assert len(server.node.connections) == 1


async def test_shutdown_cuts_a_client_that_never_answers_the_close(
    server: RunningServer,
) -> None:
    """Its close frame (1001) is written, and after the grace period the socket is cut,
    so a stuck client cannot hold the shutdown."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    async with asyncio.timeout(WAIT):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with asyncio.timeout(CLOSE_GRACE_SECONDS + 3):
        await server.stop()
    assert loop.time() - started >= CLOSE_GRACE_SECONDS * 0.9
    assert not server.node.connections
    async with asyncio.timeout(WAIT):
        rest = await reader.read()  # everything the server wrote, up to the cut
    close = b"\x88" + bytes([2 + len(b"server shutting down")]) + b"\x03\xe9"
    assert close + b"server shutting down" in rest
    writer.close()
