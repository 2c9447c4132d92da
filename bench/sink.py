"""Counting members: client connections that count deliveries instead of parsing them.

A probe member (picows, `client.py`) costs the generator a Python callback per frame,
about 5 us, so one generator core could not read more than ~200,000 frames/s and the
fastest servers measured the generator. A `Sink` is a plain `asyncio.Protocol` that
lets websockets' sans-I/O `ClientProtocol` do the opening handshake and build its
(masked) outgoing frames, and then reads every frame itself: the server's frames are
unmasked, so it walks their headers in the bytes of each read and classifies a text
frame with one C-level `find` for the current step's tag. Per frame that is a handful
of integer operations; everything else (counters, callbacks) happens once per read.

How a text frame is counted (`Board` holds the worker's tallies):

- a message whose content ends with the current step's tag `:<step>"` (the sender
  writes `"<monotonic_ns>:<step>"`) is a delivery of the step: `counted`, or
  `excess` once the member has as many as were sent to its room (`Board.set_caps`);
- any other frame with a `"content"` is a delivery of another step: `stale`, never
  counted. This is the late-frame rule: a step's count holds only its own messages,
  however late a previous step's arrive;
- every other frame, control frames included, is one of `other_frames`; an
  `online_users` among them has its `count` read for the member's presence, and a
  watcher's sink (one given `on_ack`) looks for its join's `ack` among them.
"""

import asyncio
import re
from collections.abc import Callable, Iterable, Mapping
from typing import cast

from websockets.client import ClientProtocol
from websockets.frames import Close
from websockets.protocol import State
from websockets.uri import parse_uri

HANDSHAKE_TIMEOUT = 30.0
MAX_HANDSHAKE_BYTES = 64 * 1024
NO_STEP = b"\xff"
"""The tag between steps: 0xFF never occurs in UTF-8, so no frame matches it."""
COUNT_PATTERN = re.compile(rb'"count"\s*:\s*(\d+)')
ACK = b'"ack"'
"""In the answer to a join with a `ref` (a watcher's: `{"type":"ack","ref":"w"}`); the
probes' test (`Worker.on_text`) too."""

TEXT = 0x1
BINARY = 0x2
CONTINUATION = 0x0
CLOSE = 0x8
PING = 0x9
FIN_TEXT = 0x81
"""First header byte of a whole text frame: FIN, no RSV bits (no compression), text."""


def step_tag(step: int) -> bytes:
    """The end of the content of every message sent in `step`: `:<step>"`. The colon
    and the quote delimit it, so step 1's tag is not found in step 101's messages."""
    return b':%d"' % step


class Board:
    """What one worker's counting members received during the current load step.

    A step opens with `begin_step` (before the first send) and closes with `end_step`
    (when the drain returns). `counted` and `excess` cover the step's own deliveries;
    `stale` and `other_frames` cover everything since the previous step closed, so
    that a previous step's late deliveries show up in the next step's record.
    """

    def __init__(self) -> None:
        self.tag = NO_STEP
        self.frames = 0
        """Every frame any of the sinks received, ever: activity for quiet detection."""
        self.counted = 0
        self.excess = 0
        self.stale = 0
        self.other_frames = 0
        self.on_count: Callable[[], None] | None = None
        """Called after a read added deliveries of the step, to check for the drain's end."""

    def begin_step(self, step: int, sinks: Iterable["Sink"]) -> None:
        self.tag = step_tag(step)
        self.counted = self.excess = 0
        for sink in sinks:
            sink.step_deliveries = 0
            sink.cap = None

    def set_caps(self, sinks: Iterable["Sink"], sent_per_room: Mapping[str, int]) -> None:
        """Cap each sink at what was sent to its room in the step, now that it is known;
        deliveries beyond it, so far and from now on, are `excess`."""
        counted = excess = 0
        for sink in sinks:
            cap = sent_per_room.get(sink.room, 0)
            sink.cap = cap
            counted += min(sink.step_deliveries, cap)
            excess += max(0, sink.step_deliveries - cap)
        self.counted, self.excess = counted, excess

    def end_step(self) -> dict[str, int]:
        tally = {
            "counted": self.counted,
            "excess": self.excess,
            "stale": self.stale,
            "other_frames": self.other_frames,
        }
        self.tag = NO_STEP
        self.stale = self.other_frames = 0
        return tally

    def add(self, sink: "Sink", deliveries: int) -> None:
        """Count one read's deliveries of the step, up to the sink's cap."""
        before = sink.step_deliveries
        after = before + deliveries
        sink.step_deliveries = after
        cap = sink.cap
        if cap is None or after <= cap:
            self.counted += deliveries
        elif before >= cap:
            self.excess += deliveries
        else:
            self.counted += cap - before
            self.excess += after - cap
        if self.on_count is not None:
            self.on_count()


class Sink(asyncio.Protocol):
    """One counting member's connection (it also fits `client.Connection`)."""

    compressed = False

    def __init__(
        self,
        url: str,
        board: Board,
        room: str = "",
        on_online: Callable[[int], None] | None = None,
        on_close: Callable[[], None] | None = None,
        on_ack: Callable[[], None] | None = None,
    ) -> None:
        self.board = board
        self.room = room
        self.on_online = on_online
        """Called once per read that had `online_users` frames, with their highest count."""
        self.on_close = on_close
        self.on_ack = on_ack
        """Called once per read that had an `ack` frame (a watcher's join answered);
        None: acks are not looked for."""
        self.step_deliveries = 0
        self.cap: int | None = None
        """Deliveries the step can count for this member; None until the drain knows."""
        self.frames = 0
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ws = ClientProtocol(parse_uri(url), max_size=None)
        self._transport: asyncio.Transport | None = None
        self._handshaking = True
        self._closed = False
        self._pending = bytearray()
        self._fragments: bytearray | None = None
        self._online = -1
        self._acked = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._ws.send_request(self._ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        if self._handshaking:
            self._handshake(data)
            return
        pending = self._pending
        if pending:
            pending += data
            del pending[: self._walk(pending)]
        else:
            consumed = self._walk(data)
            if consumed < len(data) and not self._closed:
                pending += memoryview(data)[consumed:]

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionResetError("closed during the handshake"))
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()

    # -- client.Connection ----------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        if self._closed or self._ws.state is not State.OPEN:
            return
        self._ws.send_text(payload)
        self._flush()

    def close(self) -> None:
        """Send a close frame and close the socket, without waiting for the server's."""
        if self._closed:
            return
        if self._ws.state is State.OPEN and not self._handshaking:
            self._ws.send_close(1000)
            self._flush()
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    # -- receiving ------------------------------------------------------------------------

    def _handshake(self, data: bytes) -> None:
        """Hand websockets the HTTP response and nothing after it: the frames that came
        in the same read (a welcome) are walked like any other."""
        self._pending += data
        end = self._pending.find(b"\r\n\r\n")
        if end < 0:
            if len(self._pending) > MAX_HANDSHAKE_BYTES:
                self._abort(ConnectionError("no end of the handshake response"))
            return
        rest = bytes(self._pending[end + 4 :])
        self._ws.receive_data(bytes(self._pending[: end + 4]))
        self._pending = bytearray()
        self._ws.events_received()
        if self._ws.handshake_exc is not None or self._ws.state is not State.OPEN:
            self._abort(self._ws.handshake_exc or ConnectionError("handshake failed"))
            return
        self._handshaking = False
        self.opened.set_result(None)
        if rest:
            self.data_received(rest)

    def _walk(self, buf: bytes | bytearray) -> int:
        """Count the whole frames at the start of `buf`; returns where the first partial
        frame begins (all of `buf` once the connection is closing)."""
        size = len(buf)
        tag = self.board.tag
        pos = frames = deliveries = 0
        while size - pos >= 2:
            length = buf[pos + 1]
            if length < 126:
                start = pos + 2
            elif length == 126:
                if size - pos < 4:
                    break
                length = buf[pos + 2] << 8 | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            else:
                self._abort(ConnectionError("the server masked a frame"))
                return size
            end = start + length
            if end > size:
                break
            frames += 1
            if buf[pos] == FIN_TEXT and buf.find(tag, start, end) >= 0:
                deliveries += 1
            else:
                deliveries += self._unusual(buf, buf[pos], start, end)
                if self._closed:
                    pos = size
                    break
            pos = end
        if frames:
            self.frames += frames
            self.board.frames += frames
            if deliveries:
                self.board.add(self, deliveries)
            if self._online >= 0 and self.on_online is not None:
                online, self._online = self._online, -1
                self.on_online(online)
            if self._acked and self.on_ack is not None:
                self._acked = False
                self.on_ack()
        return pos

    def _unusual(self, buf: bytes | bytearray, first: int, start: int, end: int) -> int:
        """Any frame but a whole text frame of the step: 1 if it completed a delivery."""
        opcode = first & 0x0F
        if opcode in (TEXT, BINARY):
            if first & 0x80:
                return self._message(buf, start, end, tag_checked=first == FIN_TEXT)
            self._fragments = bytearray(buf[start:end])
            return 0
        if opcode == CONTINUATION:
            if self._fragments is None:
                self._abort(ConnectionError("a continuation frame without a start"))
                return 0
            self._fragments += buf[start:end]
            if not first & 0x80:
                return 0
            message, self._fragments = bytes(self._fragments), None
            return self._message(message, 0, len(message), tag_checked=False)
        self.board.other_frames += 1
        if opcode == PING:
            if self._ws.state is State.OPEN:
                self._ws.send_pong(bytes(buf[start:end]))
                self._flush()
        elif opcode == CLOSE:
            self._answer_close(bytes(buf[start:end]))
        return 0

    def _message(self, buf: bytes | bytearray, start: int, end: int, tag_checked: bool) -> int:
        if not tag_checked and buf.find(self.board.tag, start, end) >= 0:
            return 1
        if buf.find(b'"online_users"', start, end) >= 0:
            self.board.other_frames += 1
            match = COUNT_PATTERN.search(buf, start, end)
            if match is not None:
                self._online = max(self._online, int(match.group(1)))
        elif buf.find(b'"content"', start, end) >= 0:
            self.board.stale += 1
        else:
            self.board.other_frames += 1
            if self.on_ack is not None and buf.find(ACK, start, end) >= 0:
                self._acked = True
        return 0

    def _answer_close(self, payload: bytes) -> None:
        """Echo the server's close code, as RFC 6455 asks, and close the socket."""
        if self._ws.state is State.OPEN:
            try:
                code = Close.parse(payload).code if payload else None
                self._ws.send_close(code)
            except Exception:  # a code a client may not send back (1005, 1006, 1015)
                self._ws.send_close()
            self._flush()
        self._closed = True
        if self._transport is not None:
            self._transport.close()

    # -- internals ------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._transport is None:
            return
        for chunk in self._ws.data_to_send():
            if chunk:
                self._transport.write(chunk)

    def _abort(self, error: Exception) -> None:
        self._closed = True
        if not self.opened.done():
            self.opened.set_exception(error)
        if self._transport is not None:
            self._transport.abort()


async def open_sink(
    url: str,
    board: Board,
    room: str,
    on_online: Callable[[int], None],
    on_close: Callable[[], None],
    on_ack: Callable[[], None] | None = None,
    timeout: float = HANDSHAKE_TIMEOUT,
) -> Sink:
    """Connect over TCP (ws:// only) and finish the opening handshake."""
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    sink = Sink(url, board, room, on_online, on_close, on_ack)
    try:
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: sink, uri.host, uri.port)
            await sink.opened
    except BaseException:
        sink.close()
        raise
    return sink
