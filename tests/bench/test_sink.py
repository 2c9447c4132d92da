"""The load generator's counting members (bench/sink.py): frame walking, counting rules.

A `Sink` is driven through a fake transport, with websockets' sans-I/O server as the
peer: it answers the handshake, and it rejects any frame from the sink that is not
masked. One test talks to a real websockets server on 127.0.0.1.
"""

import asyncio
from collections.abc import Callable, Iterator

import pytest
from bench.sink import NO_STEP, Board, Sink, open_sink, step_tag
from bench.worker import Member, Worker
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

ROOM = "r-0"
ACK = b'{"type":"ack","ref":"w"}'


def message(step: int, sender: str = "u1") -> bytes:
    return (
        b'{"type":"message","room":"%s","from":"%s","content":"1764150063123456789:%d",'
        b'"timestamp":"2026-11-26T06:21:03.123Z","id":7}' % (ROOM.encode(), sender.encode(), step)
    )


def online_users(count: int) -> bytes:
    users = ",".join(f'"u{index}"' for index in range(count))
    return b'{"type":"online_users","users":[%s],"count":%d,"room":"r-0"}' % (
        users.encode(),
        count,
    )


def frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A server's frame (unmasked), with the shortest length form, as RFC 6455 wants."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = bytes([first, length])
    elif length < 1 << 16:
        header = bytes([first, 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([first, 127]) + length.to_bytes(8, "big")
    return header + payload


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted


class Peer:
    """A sink with a fake transport, past its handshake, and the server's side of it."""

    def __init__(
        self,
        board: Board | None = None,
        after_handshake: bytes = b"",
        on_ack: Callable[[], None] | None = None,
    ) -> None:
        self.board = board or Board()
        self.online: list[int] = []
        self.closes = 0
        self.sink = Sink(
            "ws://127.0.0.1:9/ws", self.board, ROOM, self.online.append, self._closed, on_ack
        )
        self.transport = FakeTransport()
        self.server = ServerProtocol()
        self.sink.connection_made(self.transport)
        self.server.receive_data(self.taken())
        [request] = self.server.events_received()
        assert isinstance(request, Request)
        self.server.send_response(self.server.accept(request))
        [response] = self.server.data_to_send()
        self.sink.data_received(response + after_handshake)
        assert self.sink.opened.done()
        self.sink.opened.result()

    def _closed(self) -> None:
        self.closes += 1

    def taken(self) -> bytes:
        data = bytes(self.transport.written)
        self.transport.written.clear()
        return data

    def frames_from_sink(self) -> list[Frame]:
        """Parsed by the server's side, which fails on an unmasked frame."""
        self.server.receive_data(self.taken())
        assert self.server.parser_exc is None
        frames = [event for event in self.server.events_received() if isinstance(event, Frame)]
        return frames

    def feed(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.sink.data_received(chunk)


def splits(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    for cut in range(len(data) + 1):
        yield data[:cut], data[cut:]


# -- the header walker -------------------------------------------------------------------


def padded(payload: bytes, size: int) -> bytes:
    """The JSON object `payload` with a "pad" member making it `size` bytes, if it fits."""
    room = size - len(payload) - len(b',"pad":""')
    return payload[:-1] + b',"pad":"' + b"p" * room + b'"}' if room >= 0 else payload


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 200, 65535, 65536, 70000])
async def test_every_length_form_is_walked(size: int) -> None:
    peer = Peer()
    peer.board.begin_step(3, [peer.sink])
    other, delivery = frame(b"x" * size, opcode=0x2), frame(padded(message(3), size))
    peer.feed(other + delivery + frame(message(3)) + frame(b"", opcode=0x2))
    assert (peer.board.counted, peer.board.other_frames, peer.board.frames) == (2, 2, 4)
    assert peer.sink.step_deliveries == 2


async def test_a_stream_split_anywhere_counts_the_same() -> None:
    stream = b"".join(
        [
            frame(message(3)),
            frame(online_users(2)),
            frame(message(2)),
            frame(b"x" * 300, opcode=0x2),
            frame(padded(message(3), 300)),
            frame(b"", opcode=0x9),
            frame(message(3)),
        ]
    )
    for head, tail in splits(stream):
        peer = Peer()
        peer.board.begin_step(3, [peer.sink])
        peer.feed(head, tail)
        assert (peer.board.counted, peer.board.stale, peer.board.other_frames) == (3, 1, 3)
        assert peer.board.frames == 7
        assert peer.online == [2]
    peer = Peer()
    peer.board.begin_step(3, [peer.sink])
    peer.feed(*(stream[index : index + 1] for index in range(len(stream))))
    assert (peer.board.counted, peer.board.stale, peer.board.other_frames) == (3, 1, 3)


async def test_a_64_bit_length_split_in_its_header_and_payload() -> None:
    big = frame(padded(message(5), 70000))
    assert big[1] == 127
    for cut in [*range(1, 12), 5000, len(big) - 1]:
        peer = Peer()
        peer.board.begin_step(5, [peer.sink])
        peer.feed(big[:cut])
        assert peer.board.frames == 0
        peer.feed(big[cut:] + frame(message(5)))
        assert peer.board.counted == 2


async def test_frames_in_the_handshakes_read_are_counted() -> None:
    board = Board()
    board.begin_step(0, [])
    peer = Peer(board, after_handshake=frame(b'{"type":"welcome"}') + frame(message(0)))
    assert (board.counted, board.other_frames) == (1, 1)
    assert peer.sink.frames == 2


async def test_a_fragmented_message_counts_once_when_complete() -> None:
    peer = Peer()
    peer.board.begin_step(4, [peer.sink])
    whole = message(4)
    peer.feed(
        frame(whole[:20], opcode=0x1, fin=False)
        + frame(b"", opcode=0x9)
        + frame(whole[20:50], opcode=0x0, fin=False)
    )
    assert peer.board.counted == 0
    peer.feed(frame(whole[50:], opcode=0x0, fin=True))
    assert peer.board.counted == 1
    assert [f.opcode for f in peer.frames_from_sink()] == [Opcode.PONG]


async def test_pings_are_answered_with_masked_pongs() -> None:
    peer = Peer()
    peer.feed(frame(b"beat", opcode=0x9) + frame(b"", opcode=0x9) + frame(b"", opcode=0xA))
    written = bytes(peer.transport.written)
    assert written[1] & 0x80, "a client's frames must be masked"
    pongs = peer.frames_from_sink()
    assert [(f.opcode, f.data) for f in pongs] == [(Opcode.PONG, b"beat"), (Opcode.PONG, b"")]
    assert peer.board.other_frames == 3


async def test_sends_are_masked_text_frames() -> None:
    peer = Peer()
    peer.sink.send(b'{"type":"join","room":"r-0","username":"u1"}')
    [sent] = peer.frames_from_sink()
    assert (sent.opcode, sent.data) == (
        Opcode.TEXT,
        b'{"type":"join","room":"r-0","username":"u1"}',
    )


async def test_a_close_is_echoed_and_ends_the_connection() -> None:
    peer = Peer()
    peer.board.begin_step(1, [peer.sink])
    peer.feed(frame((1001).to_bytes(2, "big") + b"bye", opcode=0x8) + frame(message(1)))
    [answer] = peer.frames_from_sink()
    assert answer.opcode is Opcode.CLOSE
    assert answer.data[:2] == (1001).to_bytes(2, "big")
    assert peer.transport.closed
    assert peer.board.counted == 0
    peer.feed(frame(message(1)))
    assert peer.board.counted == 0
    peer.sink.send(b"{}")
    assert peer.transport.written == b""
    peer.sink.connection_lost(None)
    peer.sink.connection_lost(None)
    assert peer.closes == 1


async def test_a_close_without_a_code_is_answered_without_one() -> None:
    peer = Peer()
    peer.feed(frame(b"", opcode=0x8))
    [answer] = peer.frames_from_sink()
    assert (answer.opcode, answer.data) == (Opcode.CLOSE, b"")
    assert peer.transport.closed


async def test_a_masked_frame_from_the_server_aborts() -> None:
    peer = Peer()
    peer.feed(bytes([0x81, 0x80 | 2]) + b"mask" + b"{}")
    assert peer.transport.aborted


async def test_a_refused_upgrade_fails_the_handshake() -> None:
    sink = Sink("ws://127.0.0.1:9/ws", Board())
    sink.connection_made(FakeTransport())
    sink.data_received(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert sink.opened.done()
    with pytest.raises(Exception, match="403"):
        sink.opened.result()


# -- the counting rules ------------------------------------------------------------------


async def test_deliveries_beyond_the_rooms_sends_are_excess() -> None:
    board = Board()
    first, second = Peer(board), Peer(board)
    sinks = [first.sink, second.sink]
    board.begin_step(2, sinks)
    first.feed(frame(message(2)) * 3)
    second.feed(frame(message(2)))
    assert (board.counted, board.excess) == (4, 0)
    board.set_caps(sinks, {ROOM: 2})
    assert (board.counted, board.excess) == (3, 1)
    second.feed(frame(message(2)) * 2)
    assert (board.counted, board.excess) == (4, 2)
    first.feed(frame(message(2)))
    assert (board.counted, board.excess) == (4, 3)
    assert board.end_step() == {"counted": 4, "excess": 3, "stale": 0, "other_frames": 0}


def test_a_steps_tag_is_not_found_in_another_steps_message() -> None:
    for step, other in [(1, 101), (1, 11), (10, 100), (100, 1000), (0, 1000)]:
        assert step_tag(step) not in message(other)
        assert step_tag(other) not in message(step)
        assert step_tag(step) in message(step)


async def test_a_members_room_sets_its_cap() -> None:
    peer = Peer()
    peer.board.begin_step(0, [peer.sink])
    peer.board.set_caps([peer.sink], {"elsewhere": 10})
    peer.feed(frame(message(0)))
    assert (peer.board.counted, peer.board.excess) == (0, 1)


async def test_late_deliveries_of_another_step_are_stale_never_counted() -> None:
    peer = Peer()
    board = peer.board
    board.begin_step(7, [peer.sink])
    board.set_caps([peer.sink], {ROOM: 5})
    peer.feed(frame(message(7)) * 2)
    assert board.end_step() == {"counted": 2, "excess": 0, "stale": 0, "other_frames": 0}
    assert board.tag == NO_STEP
    peer.feed(frame(message(7)))
    board.begin_step(8, [peer.sink])
    peer.feed(frame(message(7)) + frame(message(8)) + frame(message(78)) + frame(message(107)))
    board.set_caps([peer.sink], {ROOM: 5})
    assert board.end_step() == {"counted": 1, "excess": 0, "stale": 4, "other_frames": 0}
    assert peer.sink.step_deliveries == 1


async def test_other_frames_and_the_highest_online_count_per_read() -> None:
    peer = Peer()
    peer.board.begin_step(0, [peer.sink])
    peer.feed(
        frame(b'{"type":"user_joined","username":"u3","room":"r-0"}')
        + frame(online_users(3))
        + frame(online_users(4))
        + frame(online_users(2))
    )
    peer.feed(frame(b'{"count":1000,"room":"r-0","type":"online_users","users":["u1"]}'))
    peer.feed(frame(message(0)))
    assert peer.online == [4, 1000]
    assert (peer.board.counted, peer.board.other_frames) == (1, 5)


async def test_a_watchers_sink_sees_its_ack_once_per_read() -> None:
    acks: list[int] = []
    peer = Peer(on_ack=lambda: acks.append(peer.board.frames))
    board = peer.board
    board.begin_step(0, [peer.sink])
    peer.feed(frame(b'{"type":"welcome","protocol":"1.1"}') + frame(message(0)))
    assert acks == []
    peer.feed(frame(ACK) + frame(message(0)) + frame(ACK))
    assert acks == [5], "once per read, after the read's frames"
    head, tail = frame(ACK)[:9], frame(ACK)[9:]
    peer.feed(head)
    assert acks == [5]
    peer.feed(tail)
    assert acks == [5, 6]
    assert (board.counted, board.stale, board.other_frames) == (2, 0, 4)


async def test_a_members_sink_does_not_look_for_acks() -> None:
    peer = Peer()
    peer.feed(frame(ACK))
    assert peer.sink.on_ack is None
    assert not peer.sink._acked
    assert peer.board.other_frames == 1


async def test_a_watchers_sink_settles_and_joins_on_its_ack() -> None:
    worker = Worker(0)
    member = Member("v0", ROOM, room_size=1, sender=False, watch=True, probe=False)
    assert not member.probe
    peer = Peer(worker.board, on_ack=lambda: worker._on_watch_ack(member))
    member.connection, member.open = peer.sink, True
    worker.members.append(member)
    worker.sinks.append(peer.sink)
    worker.open_count = 1
    member.join_reply = asyncio.get_running_loop().create_future()
    peer.feed(frame(b'{"type":"welcome"}'))
    assert (member.join_reply.done(), worker.settled) == (False, 0)
    peer.feed(frame(ACK))
    assert member.join_reply.done()
    assert member.settled_ns
    assert (worker.settled, worker.all_settled.is_set()) == (1, True)


async def test_watch_burst_refuses_counting_members() -> None:
    """Its frames-by-type tally needs every frame parsed, which only probes do."""
    worker = Worker(0)
    worker.sinks.append(Peer(worker.board).sink)
    with pytest.raises(ValueError, match="counting members"):
        await worker.watch_burst(start_ns=0, timeout=1.0, linger=0.0)


async def test_the_worker_drains_on_counted_deliveries_and_settles_sinks() -> None:
    worker = Worker(0)
    member = Member("u1", ROOM, room_size=3, probe=False)
    peer = Peer(worker.board)
    peer.sink.on_online = lambda count: worker._on_online_count(member, count)
    member.connection, member.open = peer.sink, True
    worker.members.append(member)
    worker.sinks.append(peer.sink)
    worker.open_count = 1
    peer.feed(frame(online_users(2)))
    assert not member.settled_ns
    peer.feed(frame(online_users(3)))
    assert worker.settled == 1
    await worker.load(step=0, rate=0.0, duration=0.0)
    peer.feed(frame(message(0)) * 3 + frame(message(1000)))
    answer = await worker.drain(expected=2, quiet=30.0, cap=30.0, sent_per_room={ROOM: 2})
    assert (answer["received"], answer["counted"], answer["excess"]) == (2, 2, 1)
    assert (answer["probe_received"], answer["stale"], answer["sinks"]) == (0, 1, 1)
    assert answer["other_frames"] == 2


async def test_against_a_real_server() -> None:
    """Handshake, a join answered by online_users, a ping, a delivery, the server's close."""
    joined: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    async def handler(connection: ServerConnection) -> None:
        await connection.send('{"type":"welcome"}')
        joined.set_result(await connection.recv(decode=False))
        await connection.send(online_users(1).decode())
        await (await connection.ping(b"hb"))
        await connection.send(message(0).decode())
        await connection.close(1001)

    closed = asyncio.Event()
    board = Board()
    board.begin_step(0, [])
    online: list[int] = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        sink = await open_sink(f"ws://127.0.0.1:{port}/ws", board, ROOM, online.append, closed.set)
        sink.send(b'{"type":"join","room":"r-0","username":"u1"}')
        assert await joined == b'{"type":"join","room":"r-0","username":"u1"}'
        await closed.wait()
    assert (board.counted, board.other_frames, online) == (1, 4, [1])


async def test_the_worker_connects_watchers_as_sinks_that_join_on_their_ack() -> None:
    """`Worker.connect` gives a watcher's sink the ack callback, a member's none; `join`
    returns once the server has acked the watcher's join."""
    joins: list[bytes] = []

    async def handler(connection: ServerConnection) -> None:
        await connection.send('{"type":"welcome"}')
        joins.append(await connection.recv(decode=False))
        if b'"watch":true' in joins[-1]:
            await connection.send(ACK.decode())
        else:
            await connection.send(online_users(1).decode())
        await connection.wait_closed()

    worker = Worker(0)
    async with serve(handler, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/ws"
        answer = await worker.connect(
            [url], [("v0", ROOM, 1, 0, False, True, False), ("u0", "r-1", 1, 0, True, False, False)]
        )
        assert (answer["connected"], answer["sinks"], answer["probes"]) == (2, 2, 0)
        assert {s.room: s.on_ack is not None for s in worker.sinks} == {ROOM: True, "r-1": False}
        joined = await worker.join(concurrency=2)
        assert joined["joined_per_room"] == {ROOM: 1, "r-1": 1}
        assert worker.settled == 2
        await worker.close()
    assert sorted(joins) == [
        b'{"type":"join","room":"r-0","username":"v0","watch":true,"ref":"w"}',
        b'{"type":"join","room":"r-1","username":"u0"}',
    ]
