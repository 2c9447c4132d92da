"""A client that stops reading: bounded memory, presence shed first, then 1013; others unharmed."""

import asyncio
import secrets

import aiohttp
import orjson
import pytest

from hubbub.client import ChatClient
from tests.conftest import StartServer, metric
from tests.rawsocket import TEXT, RawWebSocket, encode_frame

SLOW_SETTINGS = {
    "max_message_size": 8192,
    "max_outbound_buffer": 65536,
    "rate": 100_000,
    "rate_burst": 100_000,
}


ROOM = "r" * 64


async def stalled_member(
    http: aiohttp.ClientSession, url: str, room: str = "r", compress: int = 0
) -> aiohttp.ClientWebSocketResponse:
    """Join as `slowpoke`, then read nothing more: aiohttp stops reading the socket once its
    own small buffer is full, so the server's writes back up as with a frozen client."""
    ws = await http.ws_connect(url, max_msg_size=0, autoclose=False, compress=compress)
    assert ws.compress == compress
    await ws.send_str(f'{{"type": "join", "room": "{room}", "username": "slowpoke", "ref": "j"}}')
    while (await ws.receive_json()).get("ref") != "j":
        pass
    return ws


async def drain_close_code(ws: aiohttp.ClientWebSocketResponse) -> tuple[int | None, list[str]]:
    """Read everything; the code of the server's close frame and the event types before it."""
    kinds: list[str] = []
    async with asyncio.timeout(10):
        while True:
            message = await ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                kinds.append(message.json()["type"])
            elif message.type is aiohttp.WSMsgType.CLOSE:
                return int(message.data), kinds
            else:
                return None, kinds


@pytest.mark.parametrize("compress", [0, 15], ids=["plain", "deflate"])
async def test_a_client_that_never_reads_is_closed_with_1013(
    start_server: StartServer, compress: int
) -> None:
    """With permessage-deflate the buffer counts compressed bytes, the memory really held;
    random text keeps the frames large enough to fill it."""
    server = await start_server(**SLOW_SETTINGS)
    async with (
        aiohttp.ClientSession() as http,
        await ChatClient.connect(server.ws_url) as sender,
        await ChatClient.connect(server.ws_url) as reader,
    ):
        slow = await stalled_member(http, server.ws_url, compress=compress)
        await sender.join("r", "sender")
        await reader.join("r", "reader")
        content = secrets.token_hex(1500)
        acked: list[int] = []
        while not reader.pending("user_left") and len(acked) < 5000:
            acked.append(await sender.say(content, room="r"))
        left = await reader.expect("user_left", username="slowpoke")
        assert left["room"] == "r"
        delivered = [await reader.expect("message") for _ in acked]
        assert [m["id"] for m in delivered] == acked
        assert acked == list(range(1, len(acked) + 1))
        code, kinds = await drain_close_code(slow)
        assert code == 1013
        assert "message" in kinds
        assert kinds.count("message") < len(acked)
        assert reader.close_code is None
        assert sender.close_code is None


async def test_typing_is_shed_while_a_client_lags_and_flows_again_once_it_caught_up(
    start_server: StartServer,
) -> None:
    """The server remembers the socket's backlog from its last write to it; once the client
    has read everything, the next typing frame must see the drained socket, not be shed."""
    server = await start_server(**SLOW_SETTINGS)
    async with (
        aiohttp.ClientSession() as http,
        await ChatClient.connect(server.ws_url) as typist,
    ):
        slow = await stalled_member(http, server.ws_url, ROOM)
        await typist.join(ROOM, "t" * 32)
        sent = 0
        # ~140-byte frames: enough of them to fill the kernel's socket buffers (a few MB).
        for _ in range(80):
            for _ in range(1000):
                await typist.send({"type": "typing", "room": ROOM})
                sent += 1
            await typist.request({"type": "ping"})
        await typist.say("the message that matters", room=ROOM)
        typings = 0
        async with asyncio.timeout(10):
            while True:
                event = await slow.receive_json()
                if event["type"] == "typing":
                    typings += 1
                elif event["type"] == "message":
                    assert event["content"] == "the message that matters"
                    break
        assert 0 < typings < sent
        assert not slow.closed
        await typist.send({"type": "typing", "room": ROOM})
        async with asyncio.timeout(5):
            caught_up = await slow.receive_json()
        assert caught_up["type"] == "typing"
        await slow.close()


def post(content: str, ref: int, room: str = "r") -> bytes:
    event = {"type": "message", "room": room, "content": content, "ref": ref}
    return encode_frame(TEXT, orjson.dumps(event))


async def test_a_burst_several_times_the_limit_reaches_a_reading_member_whole(
    start_server: StartServer,
) -> None:
    """A poster's pipelined messages are stored and broadcast in one loop turn (as a group
    commit's are), so they are all queued to every member before any is written: the
    limit must be judged on what the socket did not take, not on that burst. The member
    that never reads is still closed with 1013, and it is the only one."""
    limit = SLOW_SETTINGS["max_outbound_buffer"]
    server = await start_server(**SLOW_SETTINGS)
    content = secrets.token_hex(1950)
    count = 5 * limit // len(content)
    async with (
        aiohttp.ClientSession() as http,
        await ChatClient.connect(server.ws_url) as reader,
        await ChatClient.connect(server.ws_url) as sender,
    ):
        slow = await stalled_member(http, server.ws_url)
        await reader.join("r", "reader")
        await sender.join("r", "sender")
        poster = await RawWebSocket.connect(server.port)
        try:
            poster.write(encode_frame(TEXT, b'{"type":"join","room":"r","username":"poster"}'))
            await reader.expect("user_joined", username="poster")
            poster.write(b"".join(post(content, ref) for ref in range(count)))
            burst = [await reader.expect("message") for _ in range(count)]
            assert [message["id"] for message in burst] == list(range(1, count + 1))
            assert {message["content"] for message in burst} == {content}
            await poster.wait_for(lambda event: event.get("ref") == count - 1)
            # The member that never reads: its backlog only grows, and it goes.
            acked: list[int] = []
            while not reader.pending("user_left") and len(acked) < 5000:
                acked.append(await sender.say(content, room="r"))
            await reader.expect("user_left", username="slowpoke")
            assert [(await reader.expect("message"))["id"] for _ in acked] == acked
            code, _ = await drain_close_code(slow)
            assert code == 1013
            assert not poster.closed.is_set()
        finally:
            await poster.close()
        assert reader.close_code is None
        assert sender.close_code is None
        async with http.get(f"{server.url}/metrics") as response:
            assert metric(await response.text(), "hubbub_slow_consumers_total") == 1
