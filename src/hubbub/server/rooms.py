"""Entering and leaving rooms: local membership, presence, the broker's subscriptions,
replay, and the coalesced `online_users`.

Local membership (`Hub`) is what fan-out walks; presence (per username, on
every node) decides `user_joined` and `user_left` and the lists. A node
subscribes to a room's events while it has a member or a watcher there; in a
cluster it also follows the room's message ids (`Sequencer`) from the position
the store had once the subscription was in force.

Watchers are kept in a hub of their own, which only `message` events walk. They
never reach presence: a watcher arriving costs no Redis call, no `user_joined`,
no `online_users` to anyone, so a room of 10 000 viewers costs one frame per
message per viewer and nothing per viewer arriving. Presence's room limit
(`max_room_members`) is for members; each node bounds a room's watchers on its
own (`max_watchers`): they cost it one frame each per message, as members do,
and nothing elsewhere.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from hubbub.broker.base import Broker
from hubbub.core.actions import Enter
from hubbub.core.hub import Hub
from hubbub.core.presence import PresenceThrottle
from hubbub.core.sequencer import Sequencer
from hubbub.presence.base import Arrival, Presence, PresenceReset, PresenceUnavailable
from hubbub.protocol.envelope import RoomEvent
from hubbub.protocol.errors import ErrorCode, Ref
from hubbub.protocol.events import (
    Ack,
    ChatMessage,
    OnlineUsers,
    ServerEvent,
    UserJoined,
    UserLeft,
)
from hubbub.server.connection import Connection, Phase
from hubbub.server.replay import replay
from hubbub.store.base import MessageStore, StoreUnavailable

log = logging.getLogger("hubbub.rooms")

LIST_RETRY_SECONDS = 1.0
"""How soon a room's `online_users` is tried again when presence could not be read."""

Publish = Callable[[str, RoomEvent, str | None], None]
"""To the room's members on every node (but the connection with that id)."""
DeliverHere = Callable[[str, ServerEvent], None]
"""To the room's members on this node only."""
SendError = Callable[[Connection, ErrorCode, str, Ref | None], None]


class Rooms:
    def __init__(
        self,
        hub: Hub[Connection],
        presence: Presence,
        broker: Broker,
        store: MessageStore,
        sequencer: Sequencer | None,
        publish: Publish,
        deliver_here: DeliverHere,
        deliver_sequenced: Callable[[list[ChatMessage]], None],
        unfollow: Callable[[str], None],
        send_error: SendError,
        max_members: int,
        presence_interval: float,
        clock: Callable[[], float],
        presence_lost: Callable[[], None] = lambda: None,
        recount: Callable[[], Awaitable[None]] | None = None,
        watchers: Hub[Connection] | None = None,
        max_watchers: int = 10_000,
    ) -> None:
        self.hub = hub
        self.watchers: Hub[Connection] = watchers if watchers is not None else Hub()
        """Connections that watch a room here: its messages, no presence."""
        self._max_watchers = max_watchers
        """Watchers a room may have on this node (beyond: `room_full`)."""
        self._presence = presence
        self._broker = broker
        self._store = store
        self._sequencer = sequencer
        """Only in a cluster: one node's store callbacks come in id order by themselves."""
        self._publish = publish
        self._deliver_here = deliver_here
        self._deliver_sequenced = deliver_sequenced
        self._unfollow = unfollow
        """Stop following the room's ids (its last member here left)."""
        self._send_error = send_error
        self._max_members = max_members
        self._clock = clock
        self._presence_lost = presence_lost
        """Told when a departure could not be counted: presence must be resynced."""
        self._recount = recount
        """Count this node's members again (presence was reset): then a join is retried."""
        self._throttle = PresenceThrottle(presence_interval)
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._listed: dict[str, set[str]] = {}
        """Per room, who its members here were last told is online (by lists and by
        `user_joined` / `user_left`)."""
        self._diffing: set[str] = set()
        """Rooms whose next list is compared with the last one: whoever vanished is
        announced with `user_left` (see `announce_departures`)."""
        """Each room's coalesced `online_users` broadcast, when one is due."""
        self._tasks: set[asyncio.Task[None]] = set()

    def here(self, room: str) -> bool:
        """True while the room has a member or a watcher on this node."""
        return self.hub.has(room) or self.watchers.has(room)

    async def enter(self, connection: Connection, action: Enter) -> None:
        room, username = action.room, action.username
        if action.watch:
            if not await self._watch(connection, room, username, action.ref):
                return
        elif connection not in self.hub.members(room) and not await self._arrive(
            connection, room, username, action.ref
        ):
            return
        if action.since is not None:
            # From the moment the connection is in the room (no await in between), live
            # frames wait behind the replay: reading presence below may suspend.
            connection.hold(room)
        if action.watch:
            if action.since is None:
                if action.ref is not None:
                    connection.send(Ack(action.ref))
                return
        else:
            try:
                users = await self._presence.users(room)
            except PresenceUnavailable:
                users = [username]
            if action.since is None:
                connection.send(OnlineUsers.of(room, users))
                if action.ref is not None:
                    connection.send(Ack(action.ref))
                return
            connection.deliver(OnlineUsers.of(room, users))
        await self._replay(connection, room, action.since, action.ref)

    async def _replay(self, connection: Connection, room: str, since: int, ref: Ref | None) -> None:
        """Deliver what was stored after `since`, then the ack; then the live frames held
        since the connection entered the room."""
        last = since
        try:
            replayed = await replay(self._store, connection, room, since)
        except StoreUnavailable:
            # Not accepted: the connection leaves again, and may rejoin with the same since.
            connection.session.forget_room(room)
            await self.exit(connection, room)
            self._send_error(
                connection, ErrorCode.UNAVAILABLE, "history unavailable; rejoin later", ref
            )
            return
        else:
            last = replayed.last
            if ref is not None:
                connection.deliver(
                    Ack(
                        ref,
                        replayed=replayed.count,
                        truncated=replayed.truncated,
                        reset=replayed.reset,
                    )
                )
        finally:
            connection.release(room, last)

    async def _watch(
        self, connection: Connection, room: str, username: str, ref: Ref | None
    ) -> bool:
        """Put the connection among the room's watchers here (a member there leaves the
        room's presence). False (and the client told why) when it was not let in."""
        if connection in self.watchers.members(room):
            return True
        member = connection in self.hub.members(room)
        if not member and not self.here(room):
            await self._follow(room)
            if connection.phase is not Phase.OPEN:
                if not self.here(room):
                    self._stop_following(room)
                return False
        if len(self.watchers.members(room)) >= self._max_watchers:
            # A full room has watchers here: its subscription stays.
            connection.session.restore_room(room, False if member else None)
            limit = self._max_watchers
            self._send_error(
                connection,
                ErrorCode.ROOM_FULL,
                f"room {room!r} has as many watchers as this server takes ({limit})",
                ref,
            )
            return False
        # From one hub to the other with no await in between: no message is missed or
        # delivered twice.
        if member:
            self.hub.leave(room, connection)
        self.watchers.join(room, connection)
        if member:
            await self._depart(room, username)
        return True

    async def _arrive(
        self, connection: Connection, room: str, username: str, ref: Ref | None
    ) -> bool:
        """Count the connection in the room's presence, then in its local members (a
        watcher there stops watching). False (and the client told why) when it was not
        let in."""
        watching = True if connection in self.watchers.members(room) else None
        try:
            arrival = await self._enter_presence(room, username)
        except PresenceUnavailable:
            connection.session.restore_room(room, watching)
            self._send_error(connection, ErrorCode.UNAVAILABLE, "presence unavailable", ref)
            return False
        if arrival is None:
            connection.session.restore_room(room, watching)
            limit = self._max_members
            self._send_error(
                connection, ErrorCode.ROOM_FULL, f"room {room!r} is full ({limit})", ref
            )
            return False
        if connection.phase is not Phase.OPEN:
            # Gone while presence answered: `disconnect` did not find it in the room.
            await self._depart(room, username)
            return False
        if not self.here(room):
            # Before the connection is a member: `enter` holds its live frames from
            # then on, with no await in between.
            await self._follow(room)
            if connection.phase is not Phase.OPEN:
                if not self.here(room):
                    self._stop_following(room)
                await self._depart(room, username)
                return False
        self.watchers.leave(room, connection)
        self.hub.join(room, connection)
        if arrival.first:
            self._publish(room, UserJoined(username, room), None)
        self.changed(room)
        return True

    async def _enter_presence(self, room: str, username: str) -> Arrival | None:
        try:
            return await self._presence.enter(room, username, self._max_members)
        except PresenceReset:
            if self._recount is None:
                raise
            await self._recount()
            return await self._presence.enter(room, username, self._max_members)

    async def _follow(self, room: str) -> None:
        """Receive the room's events from the other nodes, and (in a cluster) follow its
        ids from the store's newest once the subscription is in force."""
        self._broker.subscribe(room)
        sequencer = self._sequencer
        if sequencer is None:
            return
        sequencer.track(room)
        await self._broker.ready()
        try:
            last: int | None = await self._store.last_id(room)
        except StoreUnavailable:
            last = None
        self._deliver_sequenced(sequencer.start_at(room, last))

    def _stop_following(self, room: str) -> None:
        """The room's last member or watcher here is gone."""
        self._broker.unsubscribe(room)
        self._unfollow(room)

    async def exit(self, connection: Connection, room: str) -> None:
        if self.watchers.leave(room, connection):
            if not self.here(room):
                self._stop_following(room)
            return
        if not self.hub.leave(room, connection):
            return
        if not self.here(room):
            self._stop_following(room)
        username = connection.session.username
        assert username is not None, "a connection in a room has a username"
        await self._depart(room, username)

    async def _depart(self, room: str, username: str) -> None:
        try:
            last = await self._presence.exit(room, username)
        except PresenceUnavailable as error:
            log.warning("presence unavailable: %s left %r uncounted (%s)", username, room, error)
            self._presence_lost()
            return
        if last:
            self._publish(room, UserLeft(username, room), None)
        self.changed(room)

    def exit_all(self, connection: Connection) -> None:
        """The connection is gone: leave its rooms (in the background: presence may be
        remote)."""
        rooms = list(connection.session.rooms)
        connection.session.rooms.clear()
        if rooms:
            self._spawn(self._exit_rooms(connection, rooms))

    async def _exit_rooms(self, connection: Connection, rooms: list[str]) -> None:
        for room in rooms:
            await self.exit(connection, room)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- online_users ----------------------------------------------------------------

    def changed(self, room: str) -> None:
        """The room's presence changed (here or on another node): send its members here
        the new list, coalesced to one per interval."""
        if not self.hub.has(room):
            self._throttle.forget(room)
            return
        delay = self._throttle.changed(room, self._clock())
        if delay is not None and room not in self._timers:
            self._timers[room] = asyncio.get_running_loop().call_later(delay, self._list_due, room)

    def _list_due(self, room: str) -> None:
        self._timers.pop(room, None)
        self._spawn(self._send_list(room))

    async def _send_list(self, room: str) -> None:
        if not self.hub.has(room):
            self._throttle.forget(room)
            self._listed.pop(room, None)
            return
        # Sent from when presence is read, not from when the timer fired: a change in
        # between is in the list read here, and must not schedule a second one.
        self._throttle.due(room, self._clock())
        try:
            users = await self._presence.users(room)
        except PresenceUnavailable as error:
            log.debug("online_users of %r not sent (%s); trying again", room, error)
            if room not in self._timers:  # else a change since has a list coming already
                self._timers[room] = asyncio.get_running_loop().call_later(
                    LIST_RETRY_SECONDS, self._list_due, room
                )
            return
        if room in self._diffing:
            self._diffing.discard(room)
            for username in sorted(self._listed.get(room, set()) - set(users)):
                self._deliver_here(room, UserLeft(username, room))
        self._deliver_here(room, OnlineUsers.of(room, users))

    def told(self, event: ServerEvent) -> None:
        """The members here were sent `event`: keep track of who they think is online."""
        match event:
            case OnlineUsers(room, users, count) if len(users) == count:
                self._listed[room] = set(users)
            case UserJoined(username, room):
                self._listed.setdefault(room, set()).add(username)
            case UserLeft(username, room):
                self._listed.get(room, set()).discard(username)

    def announce_departures(self) -> None:
        """Presence was counted again from scratch (Redis lost its data), so departures
        during the outage were never announced: each room's next list says who left,
        to the members here (every node does the same for its own)."""
        for room in list(self.hub.rooms()):
            self._diffing.add(room)
            self.changed(room)

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        tasks = list(self._tasks)
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        for task in tasks:
            task.cancel()
