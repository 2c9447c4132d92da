"""The node: owns the hub, the store and the connections, and runs sessions' actions.

This is where one message flows (docs/architecture.md): decode, let the
session decide, store, then fan out the event encoded once per codec.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from functools import partial

from hubbub.config import Settings
from hubbub.core.actions import (
    Action,
    Close,
    Enter,
    Exit,
    FetchHistory,
    Notify,
    Publish,
    Reply,
)
from hubbub.core.heartbeat import HeartbeatWheel, Verdict
from hubbub.core.hub import Hub
from hubbub.core.presence import PresenceThrottle
from hubbub.protocol.codecs import Codec
from hubbub.protocol.commands import Command
from hubbub.protocol.errors import ErrorCode, Ref, Refusal
from hubbub.protocol.events import (
    Ack,
    Error,
    HistoryPage,
    OnlineUsers,
    ServerEvent,
    UserJoined,
    UserLeft,
    Welcome,
)
from hubbub.protocol.validation import parse_command
from hubbub.server.connection import Connection
from hubbub.server.flusher import Flusher
from hubbub.server.frames import Deflater, Frame, frame_of
from hubbub.server.stats import Metrics, RateMeter
from hubbub.store.base import Appended, MessageStore, Retention, Retry, StoreUnavailable

log = logging.getLogger("hubbub.node")

REPLAY_PAGE = 500
MAX_PUBLISHES_IN_FLIGHT = 16
"""Messages of one connection waiting for the store before its socket is read again."""
PRUNE_INTERVAL_SECONDS = 60.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def guest_name() -> str:
    return f"User-{secrets.token_hex(4)}"


class Node:
    def __init__(
        self,
        settings: Settings,
        store: MessageStore,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.settings = settings
        self.store = store
        self.id = secrets.token_hex(4)
        self.hub: Hub[Connection] = Hub()
        self.connections: set[Connection] = set()
        self.heartbeat: HeartbeatWheel[Connection] = HeartbeatWheel(settings.heartbeat)
        self.flusher = Flusher(settings.flush_delay)
        self._deflaters: dict[int, Deflater] = {}
        self.metrics = Metrics()
        self.metrics.rooms.set_function(self.hub.room_count)
        self.message_rate = RateMeter()
        self.started = clock()
        self._clock = clock
        self._wall_ms = wall_ms
        self._presence = PresenceThrottle(settings.presence_interval)
        self._retention = Retention(
            settings.history_max_per_room, int(settings.history_max_age * 1000)
        )
        self._pruner: asyncio.Task[None] | None = None
        self._beater: asyncio.Task[None] | None = None
        self._all_gone: asyncio.Event | None = None

    def now(self) -> float:
        return self._clock()

    async def start(self) -> None:
        """Open the store and apply retention once before serving, then now and then."""
        self.metrics.gc_pauses.watch()
        await self.store.open()
        await self._prune()
        self._pruner = asyncio.create_task(self._prune_forever())
        self._beater = asyncio.create_task(self._beat_forever())

    async def stop(self) -> None:
        self.metrics.gc_pauses.stop()
        for task in (self._pruner, self._beater):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.store.close()

    async def _beat_forever(self) -> None:
        """Ping silent connections, spread over the interval; cut those that never answer."""
        while True:
            await asyncio.sleep(self.heartbeat.tick)
            for connection, verdict in self.heartbeat.visit(self.now()):
                if verdict is Verdict.PING:
                    connection.ping()
                else:
                    connection.drop("heartbeat unanswered")

    async def _prune_forever(self) -> None:
        while True:
            await asyncio.sleep(PRUNE_INTERVAL_SECONDS)
            await self._prune()

    async def _prune(self) -> None:
        """Apply retention; a failing store waits for the next round."""
        try:
            removed = await self.store.prune(self._retention, self._wall_ms())
        except StoreUnavailable as error:
            log.warning("retention skipped: store unavailable (%s)", error)
        else:
            if removed:
                log.info("retention removed %d messages", removed)

    def deflater(self, window_bits: int) -> Deflater:
        """The compressor shared by every member that negotiated this window size."""
        deflater = self._deflaters.get(window_bits)
        if deflater is None:
            deflater = self._deflaters[window_bits] = Deflater(window_bits)
        return deflater

    def open(self, connection: Connection) -> None:
        self.connections.add(connection)
        self.heartbeat.add(connection, self.now())
        connection.on_give_up = self.disconnect
        self.metrics.connections.inc()
        self.metrics.connections_opened.inc()
        connection.send(Welcome(connection.id))

    def disconnect(self, connection: Connection) -> None:
        """The connection is gone: take it out of every room it was in."""
        if connection not in self.connections:
            return
        self.connections.discard(connection)
        self.heartbeat.remove(connection)
        self.metrics.connections.dec()
        for room in connection.session.rooms:
            self._exit(connection, room)
        connection.session.rooms.clear()
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()
        if connection.slow:
            self.metrics.slow_consumers.inc()
        if connection.frames_shed:
            self.metrics.frames_shed.inc(connection.frames_shed)

    def close_all(self, code: int, reason: str) -> None:
        for connection in list(self.connections):
            connection.close(code, reason)

    async def wait_closed(self, timeout: float) -> None:
        """Wait until every connection is gone; cut those still open after `timeout`."""
        if not self.connections:
            return
        self._all_gone = asyncio.Event()
        try:
            async with asyncio.timeout(timeout):
                await self._all_gone.wait()
        except TimeoutError:
            for connection in list(self.connections):
                connection.drop("shutdown timed out")
        finally:
            self._all_gone = None

    async def receive(self, connection: Connection, data: bytes | str, binary: bool) -> None:
        """Handle one frame from a connection: decode, validate, run the session's actions."""
        codec = connection.codec
        command: Command | Refusal
        try:
            command = parse_command(codec.decode(data, binary), codec.not_an_object)
        except Refusal as refusal:
            command = refusal
        actions = connection.session.handle(command, self.now())
        try:
            await self._run(connection, actions)
        except Exception:
            log.exception("internal error handling an event of connection %s", connection.id)
            self._send_error(connection, ErrorCode.INTERNAL, "internal server error", command.ref)

    async def _run(self, connection: Connection, actions: Iterable[Action]) -> None:
        """Perform actions in order. A `Publish` is handed to the store without waiting
        (`_submit`); any other action first waits until the connection's messages are
        stored and broadcast, so nothing overtakes them."""
        for action in actions:
            if isinstance(action, Publish):
                if connection.publishing >= MAX_PUBLISHES_IN_FLIGHT:
                    await connection.publishes_settled(MAX_PUBLISHES_IN_FLIGHT - 1)
                self._submit(connection, action)
                continue
            if connection.publishing:
                await connection.publishes_settled(0)
            match action:
                case Reply(event):
                    if isinstance(event, Error):
                        self.metrics.errors.labels(event.code).inc()
                    connection.send(event)
                case Enter():
                    await self._enter(connection, action)
                case Exit(room):
                    self._exit(connection, room)
                case Notify(room, event):
                    self.broadcast(room, event, exclude=connection)
                case FetchHistory():
                    await self._history(connection, action)
                case Close(code, reason):
                    connection.close(code, reason)

    def broadcast(self, room: str, event: ServerEvent, exclude: Connection | None = None) -> None:
        """Queue `event` to every member of `room`, encoded once per codec, without awaiting."""
        members = self.hub.members(room)
        if not members:
            return
        frames: dict[Codec, Frame] = {}
        last_codec: Codec | None = None
        frame: Frame
        delivered = 0
        for member in members:
            if member is exclude:
                continue
            codec = member.codec
            if codec is not last_codec:
                last_codec = codec
                frame = frames.get(codec) or frames.setdefault(codec, frame_of(event, codec))
            member.enqueue(frame)
            delivered += 1
        self.metrics.totals.deliveries += delivered

    async def _enter(self, connection: Connection, action: Enter) -> None:
        room = action.room
        state = self.hub.room(room)
        limit = self.settings.max_room_members
        if state is not None and connection not in state.members and len(state.members) >= limit:
            connection.session.forget_room(room)
            self._send_error(
                connection, ErrorCode.ROOM_FULL, f"room {room!r} is full ({limit})", action.ref
            )
            return
        change = self.hub.join(room, connection, action.username)
        if change.presence_changed:
            self.broadcast(room, UserJoined(action.username, room))
        state = self.hub.room(room)
        assert state is not None
        connection.send(OnlineUsers.of(room, state.usernames()))
        if change.member_changed:
            self._presence_changed(room)
        if action.since is None:
            if action.ref is not None:
                connection.send(Ack(action.ref))
            return
        connection.hold(room)
        last = action.since
        try:
            replayed, truncated, last, reset = await self._replay(connection, room, action.since)
        except StoreUnavailable:
            # Not accepted: the connection leaves again, and may rejoin with the same since.
            connection.session.forget_room(room)
            self._exit(connection, room)
            self._send_error(
                connection, ErrorCode.UNAVAILABLE, "history unavailable; rejoin later", action.ref
            )
            return
        else:
            if action.ref is not None:
                ack = Ack(action.ref, replayed=replayed, truncated=truncated, reset=reset)
                connection.deliver(ack)
        finally:
            connection.release(room, last)

    async def _replay(
        self, connection: Connection, room: str, since: int
    ) -> tuple[int, bool, int, bool]:
        """Deliver every stored message after `since`, page by page, ahead of live frames.

        Returns how many were replayed, whether retention had removed some, the
        last id replayed (live messages up to it are dropped on release), and
        whether the client's position was reset.

        A `since` beyond the room's newest id (a memory store restarted, a store
        restored from an older backup) replays nothing and resets the client's
        position. Then nothing replayed can repeat a live message, so the floor is
        0: every message broadcast since the join reaches the client, held ones too.
        """
        replayed, truncated, last = 0, False, since
        while True:
            page = await self.store.since(room, last, None, REPLAY_PAGE)
            truncated = truncated or page.truncated
            for message in page.messages:
                if connection.half_full():
                    await connection.drained()
                if connection.closing:
                    return replayed, truncated, last, False
                connection.deliver(message)
                replayed += 1
                last = message.id
            if not page.has_more:
                if replayed == 0 and since > await self.store.last_id(room):
                    return 0, False, 0, True
                return replayed, truncated, last, False

    def _exit(self, connection: Connection, room: str) -> None:
        change = self.hub.leave(room, connection)
        if not change.member_changed:
            return
        if change.presence_changed:
            self.broadcast(room, UserLeft(change.username, room))
        self._presence_changed(room)

    def _submit(self, connection: Connection, action: Publish) -> None:
        """Hand a message to the store without waiting for it, so the connection's next
        message is read while this one commits: a connection then has several messages
        in one batch, and the store works while the loop does. The store reports in
        submission order, so broadcasts and acks keep the order messages arrived in;
        any other action of the connection waits until they are all done (`_run`)."""
        retry = Retry(action.username, action.ref) if action.ref is not None else None
        connection.publish_started()
        self.store.submit(
            action.room,
            action.username,
            action.content,
            self._wall_ms(),
            retry,
            partial(self._stored, connection, action),
        )

    def _stored(
        self, connection: Connection, action: Publish, outcome: Appended | Exception
    ) -> None:
        """Broadcast and ack a stored message (only now: a crash can never leave a
        delivered message missing from history)."""
        connection.publish_done()
        if isinstance(outcome, StoreUnavailable):
            self._send_error(
                connection, ErrorCode.UNAVAILABLE, "message store unavailable; retry", action.ref
            )
            return
        if isinstance(outcome, Exception):
            log.error(
                "internal error storing a message of connection %s",
                connection.id,
                exc_info=outcome,
            )
            self._send_error(connection, ErrorCode.INTERNAL, "internal server error", action.ref)
            return
        message = outcome.message
        if outcome.duplicate:
            assert action.ref is not None
            connection.send(Ack(action.ref, id=message.id))
            return
        self.metrics.totals.messages += 1
        self.message_rate.add(self.now())
        self.broadcast(action.room, message)
        if action.ref is not None:
            connection.send(Ack(action.ref, id=message.id))

    async def _history(self, connection: Connection, action: FetchHistory) -> None:
        try:
            page = await self.store.history(action.room, action.before, action.limit)
        except StoreUnavailable:
            self._send_error(
                connection, ErrorCode.UNAVAILABLE, "message store unavailable; retry", action.ref
            )
            return
        connection.send(HistoryPage(action.room, page.messages, page.has_more))
        if action.ref is not None:
            connection.send(Ack(action.ref))

    def _send_error(
        self, connection: Connection, code: ErrorCode, message: str, ref: Ref | None
    ) -> None:
        self.metrics.errors.labels(code).inc()
        connection.send(Error(code, message, ref))

    def _presence_changed(self, room: str) -> None:
        delay = self._presence.changed(room, self.now())
        if delay is not None:
            asyncio.get_running_loop().call_later(delay, self._flush_presence, room)

    def _flush_presence(self, room: str) -> None:
        state = self.hub.room(room)
        if state is None:
            self._presence.forget(room)
            return
        self._presence.due(room, self.now())
        self.broadcast(room, OnlineUsers.of(room, state.usernames()))

    def stats(self) -> dict[str, object]:
        now = self.now()
        return {
            "connections": len(self.connections),
            "rooms": self.hub.room_count(),
            "users": self.hub.distinct_users(),
            "messages_total": self.metrics.totals.messages,
            "messages_per_second": round(self.message_rate.rate(now), 2),
            "uptime_seconds": round(now - self.started, 3),
            "node": self.id,
        }
