"""`Connection`'s outbound queue over a real socket: what a full buffer sheds and what it keeps."""

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from hubbub.core.ratelimit import RateLimiter
from hubbub.core.session import Session
from hubbub.protocol.codecs import JSON
from hubbub.server.connection import Connection
from hubbub.server.flusher import Flusher
from hubbub.server.frames import Frame
from tests.rawsocket import RawWebSocket

MAX_BUFFER = 64 * 1024


class QuietLink:
    """The protocol side of the connection: records a close instead of sending one."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []

    def send_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    async def drain(self) -> None:
        return None


@pytest.fixture
async def pair() -> AsyncIterator[tuple[asyncio.Transport, RawWebSocket]]:
    """A server-side transport and a client reading what is written to it."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            accepted.set_result(transport)

    server = await loop.create_server(Accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    async with asyncio.timeout(5):
        transport = await accepted
    client = RawWebSocket(reader, writer, JSON, "")
    yield transport, client
    await client.close()
    transport.close()
    server.close()
    await server.wait_closed()


def frame(event: dict[str, object], sheddable: bool = False) -> Frame:
    return Frame(orjson.dumps(event), binary=False, sheddable=sheddable)


async def test_making_room_sheds_the_queued_typing_and_keeps_every_queued_message_in_order(
    pair: tuple[asyncio.Transport, RawWebSocket],
) -> None:
    """In one loop turn (before any write), typing frames up to half the buffer (36 kB
    offered), then 40 kB of messages, past the whole of it: the queued typing frames
    make room, and every message stays, in order."""
    transport, client = pair
    link = QuietLink()
    session = Session(RateLimiter(20.0, 40, 100), lambda: "guest")
    connection = Connection(
        link, transport, JSON, session, "c1", "127.0.0.1", MAX_BUFFER, Flusher()
    )
    for n in range(300):
        connection.enqueue(frame({"type": "typing", "n": n, "pad": "y" * 100}, sheddable=True))
    for n in range(5):
        connection.enqueue(frame({"type": "message", "id": n, "content": "x" * 8000}))
    assert connection.frames_shed > 0
    last = await client.wait_for(lambda event: event.get("id") == 4)
    messages = [event["id"] for event in client.events if event["type"] == "message"]
    assert messages == [0, 1, 2, 3, 4]
    assert client.events.index(last) == len(client.events) - 1
    assert not [event for event in client.events if event["type"] == "typing"]
    assert not connection.slow
    assert link.closes == []
