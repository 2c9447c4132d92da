"""One WebSocket connection's outbound side: a bounded queue and a single writer.

Following gorilla's chat example: every connection has one reader (the HTTP
handler) and one writer task. Fan-out only appends an already-encoded frame
to the queue, without awaiting, so a broadcast costs no task and no await per
member. A queue past `max_outbound_buffer` means a dead or slow client: it
sheds `typing` and `online_users` frames first (the next one supersedes
them; they may only fill half the buffer), and if that is not enough the
connection is closed with 1013, never waited on.

While a join replays history the connection *holds* live frames: they wait
behind the replay, and held messages the replay already delivered are
dropped, so the client sees every id once and in order.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from aiohttp import WSMsgType, web

from hubbub.core.session import Session
from hubbub.protocol.codecs import Codec
from hubbub.protocol.events import SHEDDABLE, ChatMessage, ServerEvent

log = logging.getLogger("hubbub.connection")

MESSAGE_TOO_BIG = 1009
SLOW_CONSUMER = 1013
GOING_AWAY = 1001
CLOSE_GRACE_SECONDS = 5.0
"""How long a closing connection may take to answer our close frame before it is cut."""


class Frame(NamedTuple):
    """An encoded event, shared by every member that gets it."""

    payload: bytes
    sheddable: bool
    message: tuple[str, int] | None = None
    """(room, id) when the event is a chat message."""


def frame_of(event: ServerEvent, codec: Codec) -> Frame:
    message = (event.room, event.id) if isinstance(event, ChatMessage) else None
    return Frame(codec.encode(event.to_wire()), isinstance(event, SHEDDABLE), message)


class Connection:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport | None,
        codec: Codec,
        session: Session,
        connection_id: str,
        ip: str,
        max_buffer: int,
    ) -> None:
        self.ws = ws
        self._transport = transport
        self.codec = codec
        self.session = session
        self.id = connection_id
        self.ip = ip
        self._opcode = WSMsgType.BINARY if codec.binary else WSMsgType.TEXT
        self._max_buffer = max_buffer
        self._queue: deque[Frame] = deque()
        self._held: list[Frame] | None = None
        self._queued_bytes = 0
        """Bytes in the queue and the held list."""
        self._wakeup = asyncio.Event()
        self._drained = asyncio.Event()
        self._close_request: tuple[int, str] | None = None
        self._writer: asyncio.Task[None] | None = None
        self.on_give_up: Callable[[Connection], None] | None = None
        """Called (soon, not during the enqueue) when the connection is dropped as too slow."""
        self.slow = False
        self.frames_shed = 0

    def send(self, event: ServerEvent) -> None:
        self.enqueue(frame_of(event, self.codec))

    def enqueue(self, frame: Frame) -> None:
        """Queue an encoded frame for the writer (or hold it). Never blocks, never awaits."""
        self._add(frame, hold=True)

    def _add(self, frame: Frame, hold: bool) -> None:
        if self._close_request is not None:
            return
        size = len(frame.payload)
        buffered = self._buffered() + size
        if frame.sheddable and buffered > self._max_buffer // 2:
            # Half the buffer stays free for what must not be lost.
            self.frames_shed += 1
            return
        if buffered > self._max_buffer and buffered > size and not self._make_room(size):
            # (A frame larger than the whole buffer still goes out when nothing waits before it.)
            return
        self._queued_bytes += size
        if hold and self._held is not None:
            self._held.append(frame)
            return
        self._queue.append(frame)
        self._wakeup.set()

    # --- replay ----------------------------------------------------------------------

    def hold(self) -> None:
        """From now on, keep new frames back until `release`."""
        self._held = []

    def deliver(self, event: ServerEvent) -> None:
        """Queue a frame ahead of the held ones (the replay)."""
        self._add(frame_of(event, self.codec), hold=False)

    def release(self, room: str, replayed_up_to: int) -> None:
        """Queue the held frames, less the messages of `room` the replay already delivered."""
        held, self._held = self._held or [], None
        for frame in held:
            message = frame.message
            if message is not None and message[0] == room and message[1] <= replayed_up_to:
                self._queued_bytes -= len(frame.payload)
                continue
            self._queue.append(frame)
        self._wakeup.set()

    def half_full(self) -> bool:
        return self._buffered() > self._max_buffer // 2

    async def drained(self) -> None:
        """Wait until the writer has written everything queued (not held)."""
        while self._queue and self._close_request is None:
            self._drained.clear()
            await self._drained.wait()

    # --- limits ----------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        return self._close_request is not None

    @property
    def close_request(self) -> tuple[int, str] | None:
        """The code and reason the server is closing this connection with, if it is."""
        return self._close_request

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been written."""
        if self._close_request is None:
            self._close_request = (code, reason)
            self._held = None
            self._wakeup.set()
            self._drained.set()

    def _buffered(self) -> int:
        transport = self._transport
        in_transport = transport.get_write_buffer_size() if transport is not None else 0
        return self._queued_bytes + in_transport

    def _make_room(self, needed: int) -> bool:
        """Shed what can be shed; if still over the limit, give up on the connection."""
        kept = deque(queued for queued in self._queue if not queued.sheddable)
        held = [queued for queued in self._held or () if not queued.sheddable]
        self.frames_shed += len(self._queue) - len(kept) + len(self._held or ()) - len(held)
        self._queue = kept
        if self._held is not None:
            self._held = held
        self._queued_bytes = sum(len(queued.payload) for queued in (*kept, *held))
        if self._buffered() + needed <= self._max_buffer:
            return True
        self._give_up()
        return False

    def _give_up(self) -> None:
        self.slow = True
        self._queue.clear()
        self._queued_bytes = 0
        self.close(SLOW_CONSUMER, "slow consumer")
        if self._writer is not None:
            # The writer may be stuck waiting for the peer to drain: close without it.
            self._writer.cancel()
            self._writer = asyncio.create_task(self._send_close())
        if self.on_give_up is not None:
            asyncio.get_running_loop().call_soon(self.on_give_up, self)

    # --- the writer ------------------------------------------------------------------

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    async def finish(self) -> None:
        """After the reader stopped: let a requested close complete (bounded), then stop writing."""
        writer = self._writer
        if writer is None:
            return
        try:
            if self._close_request is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2 * CLOSE_GRACE_SECONDS):
                        await asyncio.shield(writer)
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _write_loop(self) -> None:
        ws = self.ws
        try:
            while self._close_request is None or self._queue:
                if not self._queue:
                    self._drained.set()
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                frame = self._queue.popleft()
                self._queued_bytes -= len(frame.payload)
                await ws.send_frame(frame.payload, self._opcode)
        except ConnectionError:
            return
        await self._send_close()

    async def _send_close(self) -> None:
        assert self._close_request is not None
        code, reason = self._close_request
        transport = self._transport
        try:
            async with asyncio.timeout(CLOSE_GRACE_SECONDS):
                await self.ws.close(code=code, message=reason.encode(), drain=False)
        except (TimeoutError, ConnectionError):
            log.debug("connection %s did not take the close frame in time", self.id)
            if transport is not None:
                transport.abort()
            return
        if transport is not None and transport.get_write_buffer_size():
            # Closed gracefully, but a peer that never reads would keep the rest forever.
            asyncio.get_running_loop().call_later(CLOSE_GRACE_SECONDS, transport.abort)
