"""`Connection`'s outbound queue over a real socket: what a full buffer sheds and what it keeps,
and when a backlog means a client that does not read."""

import asyncio
import socket
from collections.abc import AsyncIterator

import orjson
import pytest

from hubbub.core.ratelimit import RateLimiter
from hubbub.core.session import Session
from hubbub.protocol.codecs import JSON
from hubbub.server.connection import CAP_FACTOR, SLOW_CONSUMER, Connection
from hubbub.server.flusher import Flusher
from hubbub.server.frames import Frame
from tests.rawsocket import WAIT, RawWebSocket

MAX_BUFFER = 64 * 1024
GRACE = 0.3
SMALL_SOCKET_BUFFER = 4096
"""Bytes asked for the kernel's buffers on both ends of a stalled socket (it doubles
them), so that a backlog builds up in the transport after a few kilobytes."""


class QuietLink:
    """The protocol side of the connection: records a close instead of sending one."""

    def __init__(self) -> None:
        self.closes: list[tuple[int, str]] = []

    def send_close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))

    async def drain(self) -> None:
        return None


async def accept_pair(
    small_buffers: bool = False,
) -> tuple[asyncio.Transport, socket.socket, asyncio.Server]:
    """A server-side transport and the client's socket, which nothing reads yet."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.Transport] = loop.create_future()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            accepted.set_result(transport)

    server = await loop.create_server(Accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = socket.socket()
    client.setblocking(False)
    if small_buffers:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_SOCKET_BUFFER)
    await loop.sock_connect(client, ("127.0.0.1", port))
    async with asyncio.timeout(WAIT):
        transport = await accepted
    if small_buffers:
        server_socket = transport.get_extra_info("socket")
        server_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_SOCKET_BUFFER)
    return transport, client, server


@pytest.fixture
async def pair() -> AsyncIterator[tuple[asyncio.Transport, RawWebSocket]]:
    """A server-side transport and a client reading what is written to it."""
    transport, client_socket, server = await accept_pair()
    reader, writer = await asyncio.open_connection(sock=client_socket)
    client = RawWebSocket(reader, writer, JSON, "")
    yield transport, client
    await client.close()
    transport.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def stalled() -> AsyncIterator[tuple[asyncio.Transport, socket.socket]]:
    """A server-side transport whose client reads only when the test does (small buffers)."""
    transport, client, server = await accept_pair(small_buffers=True)
    yield transport, client
    client.close()
    transport.abort()
    server.close()
    await server.wait_closed()


def frame(event: dict[str, object], sheddable: bool = False) -> Frame:
    return Frame(orjson.dumps(event), binary=False, sheddable=sheddable)


def connection_on(
    transport: asyncio.Transport, link: QuietLink, max_buffer: int = MAX_BUFFER
) -> Connection:
    session = Session(RateLimiter(20.0, 40, 100), lambda: "guest")
    return Connection(
        link,
        transport,
        JSON,
        session,
        "c1",
        "127.0.0.1",
        max_buffer,
        Flusher(),
        backlog_grace=GRACE,
    )


async def fill_past_the_limit(connection: Connection, transport: asyncio.Transport) -> None:
    """Queue messages, a turn apart, until the socket has left twice the limit untaken (well
    past the limit: the kernel may still take a few kilobytes)."""
    n = 0
    while transport.get_write_buffer_size() <= 2 * MAX_BUFFER:
        connection.enqueue(frame({"type": "message", "id": n, "content": "x" * 4000}))
        n += 1
        await asyncio.sleep(0)
    assert n * 4000 < CAP_FACTOR * MAX_BUFFER


async def read_everything(client: socket.socket, until_idle: float = 0.2) -> int:
    """Read until nothing more arrives for `until_idle` seconds; how many bytes."""
    loop = asyncio.get_running_loop()
    total = 0
    while True:
        try:
            async with asyncio.timeout(until_idle):
                chunk = await loop.sock_recv(client, 1 << 20)
        except TimeoutError:
            return total
        if not chunk:
            return total
        total += len(chunk)


async def test_making_room_sheds_the_queued_typing_and_keeps_every_queued_message_in_order(
    pair: tuple[asyncio.Transport, RawWebSocket],
) -> None:
    """In one loop turn (before any write), typing frames (36 kB offered), then 40 kB of
    messages, past the cap: the queued typing frames make room, and every message stays,
    in order."""
    transport, client = pair
    link = QuietLink()
    max_buffer = 8 * 1024
    assert 36_000 < CAP_FACTOR * max_buffer < 76_000
    connection = connection_on(transport, link, max_buffer)
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


async def test_one_turns_burst_of_many_times_the_limit_is_written_whole(
    pair: tuple[asyncio.Transport, RawWebSocket],
) -> None:
    """Queued bytes alone are our own batching, not the client's lag: the socket takes them."""
    transport, client = pair
    link = QuietLink()
    connection = connection_on(transport, link)
    count = 5 * MAX_BUFFER // 4000
    for n in range(count):
        connection.enqueue(frame({"type": "message", "id": n, "content": "x" * 4000}))
    await client.wait_for(lambda event: event.get("id") == count - 1)
    assert [event["id"] for event in client.events] == list(range(count))
    assert link.closes == []
    assert not connection.slow


async def test_a_backlog_over_the_limit_for_the_grace_is_a_slow_consumer(
    stalled: tuple[asyncio.Transport, socket.socket],
) -> None:
    """No frame more has to arrive: the grace's end judges the backlog, and gives up."""
    transport, _ = stalled
    link = QuietLink()
    connection = connection_on(transport, link)
    given_up = asyncio.Event()
    connection.on_give_up = lambda _: given_up.set()
    loop = asyncio.get_running_loop()
    await fill_past_the_limit(connection, transport)
    over = loop.time()
    assert link.closes == []
    async with asyncio.timeout(GRACE + WAIT):
        await given_up.wait()
    assert loop.time() - over >= GRACE * 0.9
    assert link.closes == [(SLOW_CONSUMER, "slow consumer")]
    assert connection.slow


async def test_a_backlog_the_client_reads_within_the_grace_is_forgiven(
    stalled: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, client = stalled
    link = QuietLink()
    connection = connection_on(transport, link)
    loop = asyncio.get_running_loop()
    await fill_past_the_limit(connection, transport)
    over = loop.time()
    assert await read_everything(client) > MAX_BUFFER
    assert transport.get_write_buffer_size() == 0
    await asyncio.sleep(max(0.0, over + GRACE * 1.5 - loop.time()))
    assert link.closes == []
    assert not connection.slow


async def test_a_backlog_read_and_built_up_again_gets_a_fresh_grace(
    stalled: tuple[asyncio.Transport, socket.socket],
) -> None:
    """The grace runs from the write that left the backlog over the limit after it had
    drained, not from the first time it was ever over."""
    transport, client = stalled
    link = QuietLink()
    connection = connection_on(transport, link)
    loop = asyncio.get_running_loop()
    await fill_past_the_limit(connection, transport)
    first = loop.time()
    await read_everything(client)
    await fill_past_the_limit(connection, transport)
    await asyncio.sleep(max(0.0, first + GRACE * 1.4 - loop.time()))
    assert link.closes == []
    await read_everything(client)
    assert not connection.slow


async def test_typing_is_shed_while_the_backlog_is_over_half_the_limit(
    stalled: tuple[asyncio.Transport, socket.socket],
) -> None:
    transport, _ = stalled
    link = QuietLink()
    connection = connection_on(transport, link)
    await fill_past_the_limit(connection, transport)
    connection.enqueue(frame({"type": "typing"}, sheddable=True))
    assert connection.frames_shed == 1
    connection.enqueue(frame({"type": "message", "content": "kept"}))
    assert connection.frames_shed == 1
