"""The node: one server process, wiring its parts and owning their lifecycle.

How one message flows (docs/architecture.md): the dispatcher decodes a frame
and runs the session's actions; the store assigns the message its id; then
`publish` delivers it to this node's members, encoded once per codec, and
hands it to the broker for the other nodes, which deliver it to theirs
(`deliver`). Alone, a node's broker is in-process and reaches nobody else.
"""

import asyncio
import contextlib
import logging
import secrets
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable
from functools import partial
from itertools import chain
from typing import Any

from hubbub.broker.base import Broker
from hubbub.broker.memory import InProcessBroker
from hubbub.config import Settings
from hubbub.core.heartbeat import HeartbeatWheel
from hubbub.core.hub import Hub
from hubbub.core.sequencer import Fill, Sequencer
from hubbub.presence.base import Liveness, Presence, PresenceUnavailable, Report
from hubbub.presence.memory import MemoryPresence
from hubbub.protocol.commands import Publication
from hubbub.protocol.envelope import Envelope, RoomEvent
from hubbub.protocol.errors import ErrorCode, Ref
from hubbub.protocol.events import (
    ChatMessage,
    Error,
    OnlineUsers,
    ServerEvent,
    UserJoined,
    UserLeft,
    Welcome,
)
from hubbub.server.connection import Connection
from hubbub.server.dispatch import Dispatcher
from hubbub.server.fanout import deliver_local
from hubbub.server.flusher import Flusher
from hubbub.server.frames import Deflater
from hubbub.server.registry import Registry
from hubbub.server.rooms import Rooms
from hubbub.server.stats import Metrics, RateMeter, StoreWrites
from hubbub.store.base import Appended, MessageStore, Retention, Retry, StoreUnavailable

log = logging.getLogger("hubbub.node")

PRUNE_INTERVAL_SECONDS = 60.0
GAP_HOLD_SECONDS = 0.05
"""How long a message past a gap waits for the missing ones before the store is asked."""
FILL_PAGE = 500


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def guest_name() -> str:
    return f"User-{secrets.token_hex(4)}"


class Node:
    def __init__(
        self,
        settings: Settings,
        store: MessageStore,
        broker: Broker | None = None,
        presence: Presence | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.settings = settings
        self.store = store
        self.broker: Broker = broker if broker is not None else InProcessBroker()
        self.presence: Presence = presence if presence is not None else MemoryPresence()
        self.clustered = broker is not None and not isinstance(broker, InProcessBroker)
        """Other processes share the broker: ids must be sequenced, liveness kept."""
        self.id = secrets.token_hex(4)
        self.hub: Hub[Connection] = Hub()
        self.watchers: Hub[Connection] = Hub()
        """Connections watching a room: its messages reach them, nothing else does."""
        self.flusher = Flusher(settings.flush_delay)
        self._deflaters: dict[int, Deflater] = {}
        self.metrics = Metrics()
        self.metrics.rooms.set_function(self.hub.room_count)
        self.metrics.watchers.set_function(self.watchers.size)
        self.metrics.registry.register(StoreWrites(store.write_times))
        self.registry = Registry(self.metrics, settings.heartbeat, clock)
        self.message_rate = RateMeter()
        self.started = clock()
        self._clock = clock
        self._wall_ms = wall_ms
        self._sequencer = Sequencer(GAP_HOLD_SECONDS) if self.clustered else None
        self._fill_timer: asyncio.TimerHandle | None = None
        self._after_delivery: dict[tuple[str, int], Callable[[], None]] = {}
        """Acks of this node's messages the sequencer holds back, by (room, id)."""
        self.rooms = Rooms(
            self.hub,
            self.presence,
            self.broker,
            store,
            self._sequencer,
            self.publish,
            self.deliver_here,
            self.deliver_sequenced,
            self._unfollow,
            self.send_error,
            settings.max_room_members,
            settings.presence_interval,
            clock,
            self._presence_lost,
            self.recount,
            self.watchers,
            settings.max_room_watchers,
        )
        self.dispatcher = Dispatcher(
            self.rooms,
            store,
            self.metrics,
            self.publish,
            self._message_stored,
            self.send_error,
            clock,
            wall_ms,
        )
        self.receive = self.dispatcher.receive
        self._retention = Retention(
            settings.history_max_per_room, int(settings.history_max_age * 1000)
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._report_due = False
        self._resync_due = False
        """A presence change was lost (Redis unreachable): replace the node's presence."""
        self._recounting = asyncio.Lock()

    @property
    def connections(self) -> set[Connection]:
        return self.registry.connections

    @property
    def heartbeat(self) -> HeartbeatWheel[Connection]:
        return self.registry.heartbeat

    def now(self) -> float:
        return self._clock()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store, join the broker and presence, apply retention once before
        serving; then keep beating, pruning and pinging in the background."""
        self.metrics.gc_pauses.watch()
        await self.store.open()
        await self.broker.start(self.id, self)
        await self.presence.start(self.id, self.settings.node_ttl)
        await self._prune()
        self._spawn(self._prune_forever())
        self._spawn(self.registry.beat_forever())
        if self.clustered:
            self._spawn(self._live_forever())

    async def stop(self) -> None:
        """Release everything: connections still here are cut, and no task or timer of the
        node is left to fire after it."""
        self.metrics.gc_pauses.stop()
        for connection in list(self.connections):
            connection.drop("server stopped")
            self.disconnect(connection)
        await self.rooms.stop()
        if self._fill_timer is not None:
            self._fill_timer.cancel()
        self.flusher.stop()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(PresenceUnavailable):
            await self.presence.close()
        await self.broker.close()
        await self.store.close()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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

    # --- connections -----------------------------------------------------------------

    def deflater(self, window_bits: int) -> Deflater:
        """The compressor shared by every member that negotiated this window size."""
        deflater = self._deflaters.get(window_bits)
        if deflater is None:
            deflater = self._deflaters[window_bits] = Deflater(window_bits)
        return deflater

    def open(self, connection: Connection) -> None:
        self.registry.add(connection)
        connection.on_give_up = self.disconnect
        connection.send(Welcome(connection.id))
        self._counts_changed()

    def disconnect(self, connection: Connection) -> None:
        """Let go of the connection (its socket is gone and every message it brought was
        handled, or it was given up as a slow consumer): take it out of every room it was
        in. Once it is GONE nothing puts it back (see `Dispatcher`)."""
        if not connection.gone():
            return
        self.registry.remove(connection)
        self.rooms.exit_all(connection)
        self._counts_changed()

    def close_all(self, code: int, reason: str) -> None:
        self.registry.close_all(code, reason)

    async def wait_closed(self, timeout: float) -> None:
        await self.registry.wait_closed(timeout)

    def send_error(
        self, connection: Connection, code: ErrorCode, message: str, ref: Ref | None
    ) -> None:
        self.metrics.errors.labels(code).inc()
        connection.send(Error(code, message, ref))

    # --- fan-out ---------------------------------------------------------------------

    def publish(self, room: str, event: RoomEvent, exclude: str | None = None) -> None:
        """Deliver `event` to the room's members here, then to those on every other node
        (all but the connection with id `exclude`)."""
        self.deliver_here(room, event, exclude)
        self.broker.publish(Envelope(room, event, self.id, exclude))

    def deliver_here(self, room: str, event: ServerEvent, exclude: str | None = None) -> None:
        """Deliver `event` to the room's members here; a message to its watchers too."""
        members = self.hub.members(room)
        recipients: Iterable[Connection] = members
        watchers = self.watchers.members(room) if isinstance(event, ChatMessage) else None
        if watchers:
            recipients = chain(members, watchers) if members else watchers
        elif not members:
            return
        self.metrics.totals.deliveries += deliver_local(recipients, event, exclude)
        if self.clustered and isinstance(event, UserJoined | UserLeft | OnlineUsers):
            self.rooms.told(event)

    def _message_stored(self, appended: Appended, then: Callable[[], None] | None) -> None:
        message = appended.message
        self.metrics.totals.messages += 1
        self.message_rate.add(self.now())
        if self._sequencer is None:
            self.publish(message.room, message)
            if then is not None:
                then()
            return
        self.broker.publish(Envelope(message.room, message, self.id))
        if then is not None:
            self._after_delivery[message.room, message.id] = then
        self._sequenced(message)

    async def post(self, room: str, publication: Publication) -> Appended:
        """Store and publish a message that no connection sent (the HTTP publish API),
        the way a client's message goes: stored (once per `ref`), then delivered here and
        handed to the broker for the other nodes. Returns once it was delivered to this
        node's members; a retry returns the first message, marked `duplicate`, and
        publishes nothing. Raises `StoreUnavailable`.

        The publishing happens when the store reports, not when this coroutine resumes,
        so a caller that gives up waiting cannot leave a stored message unpublished."""
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()

        def settle(outcome: Appended | BaseException) -> None:
            if done.done():
                return
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)

        def stored(outcome: Appended | Exception) -> None:
            if isinstance(outcome, Appended) and not outcome.duplicate:
                self._message_stored(outcome, partial(settle, outcome))
            else:
                settle(outcome)

        sender, ref = publication.sender, publication.ref
        self.store.submit(
            room,
            sender,
            publication.content,
            self._wall_ms(),
            None if ref is None else Retry(sender, ref),
            stored,
            publication.data,
        )
        return await done

    def deliver(self, envelope: Envelope) -> None:
        """An event another node published (the broker's `Subscriber`). An `online_users`
        from another node only says that the room's presence changed there: each node
        sends its own members its own coalesced list."""
        event = envelope.event
        if isinstance(event, ChatMessage) and self._sequencer is not None:
            self._sequenced(event)
            return
        if isinstance(event, OnlineUsers):
            self.rooms.changed(envelope.room)
            return
        self.deliver_here(envelope.room, event, envelope.exclude)
        if isinstance(event, UserJoined | UserLeft):
            self.rooms.changed(envelope.room)

    def _sequenced(self, message: ChatMessage) -> None:
        assert self._sequencer is not None
        self.deliver_sequenced(self._sequencer.offer(message, self.now()))
        last = self._sequencer.last(message.room)
        if last is None or last >= message.id:
            # Delivered before (by the broker), or the room is no longer followed here.
            then = self._after_delivery.pop((message.room, message.id), None)
            if then is not None:
                then()
        self._arm_fills()

    def _unfollow(self, room: str) -> None:
        """The room's last member here left: its held messages will not be delivered
        here, so their senders' acks go now."""
        if self._sequencer is None:
            return
        self._sequencer.forget(room)
        for key in [key for key in self._after_delivery if key[0] == room]:
            self._after_delivery.pop(key)()

    def deliver_sequenced(self, messages: list[ChatMessage]) -> None:
        """Deliver messages the sequencer released, each followed by its sender's ack
        when the sender is here."""
        for message in messages:
            self.deliver_here(message.room, message)
            if self._after_delivery:
                then = self._after_delivery.pop((message.room, message.id), None)
                if then is not None:
                    then()

    def resumed(self) -> None:
        """The broker is back after an outage: read what was missed from the store."""
        if self._sequencer is not None:
            for fill in self._sequencer.catch_up():
                self._spawn(self._fill(fill))

    def _arm_fills(self) -> None:
        assert self._sequencer is not None
        due = self._sequencer.next_due()
        if due is None or self._fill_timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._fill_timer = loop.call_at(loop.time() + max(0.0, due - self.now()), self._fills_due)

    def _fills_due(self) -> None:
        self._fill_timer = None
        assert self._sequencer is not None
        for fill in self._sequencer.due(self.now()):
            self._spawn(self._fill(fill))
        self._arm_fills()

    async def _fill(self, fill: Fill) -> None:
        """Read a gap's messages from the store; a failing store is asked again later."""
        assert self._sequencer is not None
        messages: list[ChatMessage] = []
        after, upto = fill.after, None if fill.before is None else fill.before - 1
        try:
            while True:
                page = await self.store.since(fill.room, after, upto, FILL_PAGE)
                messages += page.messages
                if not page.has_more or not page.messages:
                    break
                after = page.messages[-1].id
        except StoreUnavailable as error:
            log.warning("filling a gap in %r failed (%s); retrying", fill.room, error)
        self.deliver_sequenced(self._sequencer.filled(fill, messages, self.now()))
        self._arm_fills()

    # --- cluster liveness ------------------------------------------------------------

    async def _live_forever(self) -> None:
        """Beat every third of the node's time to live; purge dead nodes every second,
        so their users leave within the time to live plus about a second."""
        ttl = self.settings.node_ttl
        beat_every, last_beat = ttl / 3, self.now()
        while True:
            await asyncio.sleep(min(1.0, beat_every))
            try:
                if self.now() - last_beat >= beat_every or self._resync_due:
                    last_beat = self.now()
                    await self._report()
                    await self.recount()
                purged = await self.presence.purge_dead()
                for room, username in purged.left:
                    log.info("%s left %r with a node that died", username, room)
                    self.publish(room, UserLeft(username, room))
                    self.rooms.changed(room)
                if purged.nodes:
                    # A dead node may have stored messages it never published.
                    self.resumed()
            except PresenceUnavailable as error:
                log.warning("presence unavailable (%s)", error)

    async def recount(self) -> None:
        """Beat; if presence lost count of this node (it was purged, Redis lost its data,
        or a change could not be made), count its members again. One at a time: joins
        that found presence reset all wait for the same recount."""
        async with self._recounting:
            liveness = await self.presence.beat()
            if liveness is not Liveness.KNOWN:
                log.warning("presence %s this node; counting its members again", liveness.value)
                self._resync_due = True
            if self._resync_due:
                await self._resync(announce=liveness is not Liveness.RESET)

    def _presence_lost(self) -> None:
        self._resync_due = True

    async def _resync(self, announce: bool) -> None:
        """Make presence hold exactly this node's members (changes lost while Redis was
        unreachable, or this node purged), and announce who that made arrive or leave.
        After Redis lost its data the counts say nothing of who left meanwhile: then
        each room's next list tells the members here who is gone."""
        self._resync_due = False
        entries: Counter[tuple[str, str]] = Counter()
        for room in self.hub.rooms():
            for connection in self.hub.members(room):
                if connection.session.username is not None:
                    entries[room, connection.session.username] += 1
        try:
            resync = await self.presence.replace(entries)
        except PresenceUnavailable:
            self._resync_due = True
            raise
        if not announce:
            self.rooms.announce_departures()
            for room in self.hub.rooms():
                self.broker.publish(Envelope(room, OnlineUsers(room, (), 0), self.id))
            return
        for room, username in resync.arrived:
            self.publish(room, UserJoined(username, room))
        for room, username in resync.left:
            self.publish(room, UserLeft(username, room))
        for room in {room for room, _ in [*resync.arrived, *resync.left]}:
            self.rooms.changed(room)

    def _counts_changed(self) -> None:
        """Report the node's counts soon (once for a burst of connections)."""
        if self.clustered and not self._report_due:
            self._report_due = True
            self._spawn(self._report())

    def _own_report(self) -> Report:
        rate = round(self.message_rate.rate(self.now()), 2)
        return Report(len(self.connections), self.metrics.totals.messages, rate)

    async def _report(self) -> None:
        self._report_due = False
        with contextlib.suppress(PresenceUnavailable):
            await self.presence.report(self._own_report())

    # --- reading ---------------------------------------------------------------------

    async def stats(self) -> dict[str, object]:
        """Counts of the whole cluster (of this node alone when it is alone)."""
        now = self.now()
        if self.clustered:
            await self._report()
        totals = await self.presence.totals()
        counts = totals.nodes if self.clustered else self._own_report()
        return {
            "connections": counts.connections,
            "rooms": totals.rooms,
            "users": totals.users,
            "messages_total": counts.messages,
            "messages_per_second": counts.messages_per_second,
            "uptime_seconds": round(now - self.started, 3),
            "node": self.id,
        }

    async def health(self) -> dict[str, str]:
        """What is unusable now, by part (empty when all is well)."""
        problems = {}
        if not await self.store.healthy():
            problems["store"] = "unavailable"
        if not self.broker.healthy():
            problems["broker"] = "unavailable"
        return problems
