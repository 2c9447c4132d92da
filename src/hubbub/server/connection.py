"""One WebSocket connection's outbound side: bounded, batched, never awaited by fan-out.

Following gorilla's chat example, a connection has one reader (its
`WebSocketProtocol`) and one writer. Fan-out only appends an already-encoded
`Frame`, without awaiting, so a broadcast costs no task and no await per member.

The writer is not even a task: frames queued during a loop turn go out in
one `transport.write` at the end of the turn (see `Flusher`), one system call
for many frames. With permessage-deflate the frames are compressed once for
every member (see `Deflater`), so compressed connections take the same path.

`max_outbound_buffer` is judged on what the *socket did not take*: the
transport's backlog after a write. A client that reads gets a burst of any
size the loop turn produced (a group commit's messages are all queued to
every member before the first write) as fast as its link allows, so queued
bytes alone never close it. A backlog still over the limit `backlog_grace`
seconds after a write first left it there (with no write in between that
found it drained) means a client that does not read, and it is closed with
1013, never waited on. While the backlog is over half the limit, `typing`
and `online_users` frames are shed (the next one supersedes them). Memory
stays bounded by a hard cap, `CAP_FACTOR` times the limit, on the queue and
the backlog together: a frame that would pass it first sheds the queued
sheddable frames, then gives up at once.

While a join replays history the connection *holds* live frames: they wait
behind the replay, and held messages the replay already delivered are
dropped, so the client sees every id once and in order.

The connection owns its lifecycle (`Phase`): whoever ends it (the server's
close, a slow consumer given up, the peer's close, a lost socket, the node
letting go) moves it forward here, and the queue, the node's joins and the
timers all go by that one state.
"""

import asyncio
import enum
import math
from collections.abc import Callable
from typing import Protocol

from hubbub.core.session import Session
from hubbub.protocol.codecs import Codec
from hubbub.protocol.events import ServerEvent
from hubbub.server.flusher import AFTER_DELAY, NOT_SCHEDULED, Flusher
from hubbub.server.frames import PING, Deflater, Frame, frame_of

GOING_AWAY = 1001
ABNORMAL_CLOSURE = 1006
SLOW_CONSUMER = 1013

CAP_FACTOR = 8
"""The hard cap on what one connection may hold, queue and backlog together, in units of
`max_outbound_buffer`. Far above the limit: only one loop turn's fan-out to a reading
client, or the traffic of the grace period to one that does not read, comes near it."""
BACKLOG_GRACE_SECONDS = 5.0
"""How long the socket may leave more than `max_outbound_buffer` untaken: a burst as big
as the cap drains within it at 12 Mbit/s."""


class Phase(enum.Enum):
    """Where a connection is in its life; it only ever moves down this list."""

    OPEN = "open"
    """Frames are queued and written, and the node may put the connection in rooms."""
    CLOSING = "closing"
    """A close has begun (the server's or the peer's) or the socket is lost: nothing new
    is queued, and the connection joins no room. Messages it sent before are still
    stored and broadcast, and it still leaves rooms."""
    GONE = "gone"
    """The node has let go of it: out of every room and the registry, nothing queued,
    no timer armed."""


_OPEN = Phase.OPEN
"""For `enqueue`, once per member per broadcast: a module global is read in about a
tenth of the time of a member of an Enum class (17 against 240 ns here)."""


class Link(Protocol):
    """The WebSocket protocol under a connection: what the outbound side needs of it."""

    def send_close(self, code: int, reason: str) -> None:
        """Write a close frame now and cut the connection if the peer never answers."""

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark (or it is gone)."""


class Connection:
    __slots__ = (
        "_cap",
        "_close_request",
        "_deflater",
        "_floors",
        "_flush_scheduled",
        "_flusher",
        "_held",
        "_lag_check",
        "_lag_grace",
        "_link",
        "_max_buffer",
        "_next",
        "_publish_reported",
        "_queue",
        "_queued_bytes",
        "_room",
        "_transport",
        "codec",
        "flushed_at",
        "frames_shed",
        "id",
        "ip",
        "on_give_up",
        "phase",
        "publishing",
        "session",
        "slow",
    )

    def __init__(
        self,
        link: Link,
        transport: asyncio.Transport,
        codec: Codec,
        session: Session,
        connection_id: str,
        ip: str,
        max_buffer: int,
        flusher: Flusher,
        deflater: Deflater | None = None,
        backlog_grace: float = BACKLOG_GRACE_SECONDS,
    ) -> None:
        self._link = link
        self._transport = transport
        self.phase = Phase.OPEN
        self.codec = codec
        self.session = session
        self.id = connection_id
        self.ip = ip
        self._deflater = deflater
        self._max_buffer = max_buffer
        self._cap = CAP_FACTOR * max_buffer
        self._lag_grace = backlog_grace
        self._lag_check: asyncio.TimerHandle | None = None
        """Armed while the backlog is over the limit (see `_judge_backlog`)."""
        self._next: Frame | None = None
        self._queue: list[Frame] | None = None
        """Frames not yet handed to the transport: the next one, and any after it. The
        next one has a slot of its own because it is usually the only one: fan-out then
        touches one object per member, the connection, not a list as well."""
        self._held: list[Frame] | None = None
        self._floors: dict[str, int] = {}
        """Per room, the last id a replay delivered (see `release`)."""
        self._queued_bytes = 0
        """Bytes in the queue and the held list."""
        self._room = self._cap
        """Bytes the queue may take before `enqueue` looks closer (`_admit`): up to the cap
        while the socket keeps up, none while its backlog is over half the limit. Worked
        out from the backlog as of our last write to the transport. The socket only drains
        it after that (the protocol's own pongs aside, a few bytes), so it is an upper
        bound, read again before it is acted on: fan-out then leaves the transport alone
        until the flush, one object less to touch per member."""
        self._flusher = flusher
        self._flush_scheduled = NOT_SCHEDULED
        self.flushed_at = -math.inf
        """When the flusher last wrote to it, by the flusher's clock."""
        self._close_request: tuple[int, str] | None = None
        self.on_give_up: Callable[[Connection], None] | None = None
        """Called (soon, not during the enqueue) when the connection is dropped as too slow."""
        self.slow = False
        self.frames_shed = 0
        self.publishing = 0
        """Messages of this connection handed to the store and not yet reported."""
        self._publish_reported: asyncio.Future[None] | None = None

    def publish_started(self) -> None:
        self.publishing += 1

    def publish_done(self) -> None:
        self.publishing -= 1
        waiter = self._publish_reported
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def publishes_settled(self, at_most: int) -> None:
        """Wait until at most `at_most` of this connection's messages are in the store's hands."""
        while self.publishing > at_most:
            self._publish_reported = asyncio.get_running_loop().create_future()
            await self._publish_reported
        self._publish_reported = None

    def send(self, event: ServerEvent) -> None:
        """Queue an event for this connection alone (an answer to what it sent)."""
        self.enqueue(frame_of(event, self.codec))
        self._hurry()

    def enqueue(self, frame: Frame, live: bool = True) -> None:
        """Queue an encoded frame. Never blocks, never awaits. A live one (not part of a
        replay) is held during a replay, and dropped when a replay already delivered it.

        This runs once per member per broadcast: the common case (open, no replay,
        socket keeping up) passes each check at the cost of one comparison."""
        if self.phase is not _OPEN:
            return
        if live and self._floors and frame.message is not None and self._below_floor(frame.message):
            return
        size = frame.size
        queued = self._queued_bytes + size
        if queued > self._room:
            if not self._admit(frame, size):
                return
            queued = self._queued_bytes + size  # `_admit` may have shed queued frames
        self._queued_bytes = queued
        if live and self._held is not None:
            self._held.append(frame)
            return
        if self._next is None:  # `_push`'s first case, without the call: the usual one
            self._next = frame
        else:
            self._push(frame)
        # `_kick`'s first case, without the call: the usual one.
        if not self._flush_scheduled:
            self._flush_scheduled = self._flusher.mark(self)
        else:
            self._kick()

    def _push(self, frame: Frame) -> None:
        """Queue `frame` behind the next one."""
        if self._next is None:
            self._next = frame
        elif self._queue is None:
            self._queue = [frame]
        else:
            self._queue.append(frame)

    def _queued(self) -> list[Frame]:
        if self._next is None:
            return []
        return [self._next, *(self._queue or ())]

    def _kick(self) -> None:
        scheduled = self._flush_scheduled
        if not scheduled:
            self._flush_scheduled = self._flusher.mark(self)
        elif scheduled == AFTER_DELAY and self._queued_bytes > self._max_buffer >> 2:
            # Waiting must not fill the buffer: shedding and 1013 are for slow clients.
            self._flush_scheduled = self._flusher.mark_now(self)

    def _hurry(self) -> None:
        """Answers to the connection's own requests leave at the end of this turn even
        when it is busy: a client waiting for each ack must not wait for the delay."""
        if self._flush_scheduled == AFTER_DELAY:
            self._flush_scheduled = self._flusher.mark_now(self)

    def flush(self) -> int:
        """Write every queued frame in one system call; how many frames that was.

        Runs once per member per broadcast (and write): the usual case, one frame
        and a socket that takes it all, costs as few steps as it can."""
        self._flush_scheduled = 0  # NOT_SCHEDULED
        frame = self._next
        if frame is None:
            return 0
        self._next = None
        deflater = self._deflater
        queue = self._queue
        if queue is None:
            count = 1
            data = frame.wire if deflater is None else frame.deflated_wire(deflater)
            if self._held is None:
                self._queued_bytes = 0
            else:
                self._queued_bytes -= frame.size
        else:
            frames = [frame, *queue]
            self._queue = None
            count = len(frames)
            if deflater is None:
                data = b"".join([queued.wire for queued in frames])
            else:
                data = b"".join([queued.deflated_wire(deflater) for queued in frames])
            if self._held is None:
                self._queued_bytes = 0
            else:
                self._queued_bytes -= sum([sent.size for sent in frames])
        transport = self._transport
        if transport.is_closing():
            return count
        if self._lag_check is not None:
            self._drained_since_lag()
        transport.write(data)
        backlog = transport.get_write_buffer_size()
        if not backlog:
            self._room = self._cap
            return count
        self._room = self._cap - backlog if backlog <= self._max_buffer >> 1 else -1
        if backlog > self._max_buffer and self._lag_check is None:
            self._lag_check = asyncio.get_running_loop().call_later(
                self._lag_grace, self._judge_backlog
            )
        return count

    def ping(self) -> None:
        """Queue a WebSocket ping, ahead of frames held back by a replay."""
        self.enqueue(PING, live=False)

    def drop(self, reason: str) -> None:
        """Cut the connection without a close handshake (the peer is gone: 1006)."""
        if self._close_request is None:
            self._close_request = (ABNORMAL_CLOSURE, reason)
        self._stop_open()
        self._transport.abort()

    def ending(self) -> None:
        """The WebSocket is closing (either side sent its close frame: no data frame may
        follow) or the socket is gone."""
        self._stop_open()

    def gone(self) -> bool:
        """The node lets go of the connection; False if it already had."""
        if self.phase is Phase.GONE:
            return False
        self._stop_open()
        self.phase = Phase.GONE
        self._next = self._queue = self._held = None
        self._queued_bytes = 0
        return True

    def _stop_open(self) -> None:
        """OPEN -> CLOSING: what an open connection needs ends here."""
        if self.phase is not Phase.OPEN:
            return
        self.phase = Phase.CLOSING
        if self._lag_check is not None:
            self._lag_check.cancel()
            self._lag_check = None

    # --- replay ----------------------------------------------------------------------

    def hold(self, room: str) -> None:
        """From now on, keep new frames back until `release` (a replay of `room` begins)."""
        self._held = []
        self._floors.pop(room, None)

    def deliver(self, event: ServerEvent) -> None:
        """Queue a frame ahead of the held ones (the replay)."""
        self.enqueue(frame_of(event, self.codec), live=False)
        self._hurry()

    def release(self, room: str, replayed_up_to: int) -> None:
        """Queue the held frames, less the messages of `room` the replay already delivered.

        A message the replay read may still be on its way to the broadcast (committed,
        not yet sent), so the room keeps a floor: live messages at or below it are
        dropped until the first one above it shows they have all gone by."""
        self._floors[room] = replayed_up_to
        held, self._held = self._held or [], None
        for frame in held:
            message = frame.message
            if message is not None and message[0] == room and message[1] <= replayed_up_to:
                self._queued_bytes -= frame.size
                continue
            self._push(frame)
        if self._next is not None:
            self._kick()

    def _below_floor(self, message: tuple[str, int]) -> bool:
        room, message_id = message
        floor = self._floors.get(room)
        if floor is None:
            return False
        if message_id <= floor:
            return True
        del self._floors[room]
        return False

    def half_full(self) -> bool:
        return self.buffered() > self._max_buffer // 2

    async def drained(self) -> None:
        """Wait until what was queued has been handed to the socket, and the socket drained."""
        self.flush()
        if not self.closing:
            await self._link.drain()

    # --- limits ----------------------------------------------------------------------

    @property
    def closing(self) -> bool:
        """No longer open, or its transport is already closing (it is told a turn later)."""
        return self.phase is not Phase.OPEN or self._transport.is_closing()

    @property
    def close_request(self) -> tuple[int, str] | None:
        """The code and reason the server is closing this connection with, if it is."""
        return self._close_request

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued have been written."""
        if self.phase is not Phase.OPEN:
            return
        self._close_request = (code, reason)
        self._held = None
        self.flush()
        self._stop_open()
        self._link.send_close(code, reason)

    def buffered(self) -> int:
        return self._queued_bytes + self._transport.get_write_buffer_size()

    def _admit(self, frame: Frame, size: int) -> bool:
        """Whether to queue `frame`, with the backlog read again: the queue is at the cap,
        or the socket was behind at the last write."""
        backlog = self._transport.get_write_buffer_size()
        self._room = self._cap - backlog if backlog <= self._max_buffer >> 1 else -1
        buffered = self._queued_bytes + backlog + size
        if frame.sheddable:
            if backlog + size > self._max_buffer // 2 or buffered > self._cap:
                # The socket is behind: the next one of its kind supersedes it anyway.
                self.frames_shed += 1
                return False
            return True
        # A frame larger than the cap still goes out when nothing waits before it.
        return buffered <= self._cap or buffered == size or self._make_room(size)

    def _drained_since_lag(self) -> None:
        """A write found the backlog back under the limit: the lag it was judged for is over."""
        assert self._lag_check is not None
        if self._transport.get_write_buffer_size() <= self._max_buffer:
            self._lag_check.cancel()
            self._lag_check = None

    def _judge_backlog(self) -> None:
        """The grace is up: a backlog still over the limit is a client that does not read."""
        self._lag_check = None
        if self.phase is Phase.OPEN and self._transport.get_write_buffer_size() > self._max_buffer:
            self._give_up()

    def _make_room(self, needed: int) -> bool:
        """Shed what can be shed; if still over the cap, give up on the connection."""
        queued = self._queued()
        kept = [frame for frame in queued if not frame.sheddable]
        held = [queued for queued in self._held or () if not queued.sheddable]
        self.frames_shed += len(queued) - len(kept) + len(self._held or ()) - len(held)
        self._next, self._queue = (kept[0], kept[1:] or None) if kept else (None, None)
        if self._held is not None:
            self._held = held
        self._queued_bytes = sum(queued.size for queued in (*kept, *held))
        if self.buffered() + needed <= self._cap:
            return True
        self._give_up()
        return False

    def _give_up(self) -> None:
        self._stop_open()
        self.slow = True
        self._next = self._queue = None
        self._queued_bytes = 0
        self._held = None
        self._close_request = (SLOW_CONSUMER, "slow consumer")
        self._link.send_close(SLOW_CONSUMER, "slow consumer")
        if self.on_give_up is not None:
            asyncio.get_running_loop().call_soon(self.on_give_up, self)
