"""Running a session's actions for one connection: decode, decide, then act in order.

A `Publish` is handed to the store without waiting; every other action first
waits until the connection's messages are stored and published, so nothing
overtakes them (an `ack` follows its effects).
"""

import logging
from collections.abc import Callable, Iterable
from functools import partial

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
from hubbub.protocol.commands import Command
from hubbub.protocol.envelope import RoomEvent
from hubbub.protocol.errors import ErrorCode, Refusal
from hubbub.protocol.events import Ack, Error, HistoryPage
from hubbub.protocol.validation import parse_command
from hubbub.server.connection import Connection, Phase
from hubbub.server.history import read_page
from hubbub.server.rooms import Rooms, SendError
from hubbub.server.stats import Metrics
from hubbub.store.base import Appended, MessageStore, Retry, StoreUnavailable

log = logging.getLogger("hubbub.node")

MAX_PUBLISHES_IN_FLIGHT = 16
"""Messages of one connection waiting for the store before its socket is read again."""

Notified = Callable[[str, RoomEvent, str | None], None]
Stored = Callable[[Appended, Callable[[], None] | None], None]
"""Publish a newly stored message, then call the second argument (its ack) once the
message has been delivered to this node's members: the ack follows its effects."""


class Dispatcher:
    def __init__(
        self,
        rooms: Rooms,
        store: MessageStore,
        metrics: Metrics,
        notify: Notified,
        stored: Stored,
        send_error: SendError,
        clock: Callable[[], float],
        wall_ms: Callable[[], int],
    ) -> None:
        self._rooms = rooms
        self._store = store
        self._metrics = metrics
        self._notify = notify
        """Publish a typing notice (to every member but its sender, on every node)."""
        self._on_stored = stored
        """Publish a newly stored message."""
        self.send_error = send_error
        self._clock = clock
        self._wall_ms = wall_ms

    async def receive(self, connection: Connection, data: bytes | str, binary: bool) -> None:
        """Handle one frame from a connection: decode, validate, run the session's actions."""
        codec = connection.codec
        command: Command | Refusal
        try:
            command = parse_command(codec.decode(data, binary), codec.not_an_object)
        except Refusal as refusal:
            command = refusal
        actions = connection.session.handle(command, self._clock())
        try:
            await self._run(connection, actions)
        except Exception:
            log.exception("internal error handling an event of connection %s", connection.id)
            self.send_error(connection, ErrorCode.INTERNAL, "internal server error", command.ref)

    async def _run(self, connection: Connection, actions: Iterable[Action]) -> None:
        """Perform actions in order (see the module's docstring).

        A connection that is no longer open (also one given up during a wait) still
        has its messages stored and still leaves rooms; nothing else is done for it: a
        join would outlive it, and an answer has nobody to reach."""
        for action in actions:
            if isinstance(action, Publish):
                if connection.publishing >= MAX_PUBLISHES_IN_FLIGHT:
                    await connection.publishes_settled(MAX_PUBLISHES_IN_FLIGHT - 1)
                self._submit(connection, action)
                continue
            if connection.publishing:
                await connection.publishes_settled(0)
            if connection.phase is not Phase.OPEN and not isinstance(action, Exit):
                continue
            match action:
                case Reply(event):
                    if isinstance(event, Error):
                        self._metrics.errors.labels(event.code).inc()
                    connection.send(event)
                case Enter():
                    await self._rooms.enter(connection, action)
                case Exit(room):
                    await self._rooms.exit(connection, room)
                case Notify(room, event):
                    self._notify(room, event, connection.id)
                case FetchHistory():
                    await self._history(connection, action)
                case Close(code, reason):
                    connection.close(code, reason)

    def _submit(self, connection: Connection, action: Publish) -> None:
        """Hand a message to the store without waiting for it, so the connection's next
        message is read while this one commits: a connection then has several messages
        in one batch, and the store works while the loop does. The store reports in
        submission order, so publishes and acks keep the order messages arrived in."""
        retry = Retry(action.username, action.ref) if action.ref is not None else None
        connection.publish_started()
        self._store.submit(
            action.room,
            action.username,
            action.content,
            self._wall_ms(),
            retry,
            partial(self._stored, connection, action),
            action.data,
        )

    def _stored(
        self, connection: Connection, action: Publish, outcome: Appended | Exception
    ) -> None:
        """Publish and ack a stored message (only now: a crash can never leave a
        delivered message missing from history)."""
        connection.publish_done()
        if isinstance(outcome, StoreUnavailable):
            self.send_error(
                connection, ErrorCode.UNAVAILABLE, "message store unavailable; retry", action.ref
            )
            return
        if isinstance(outcome, Exception):
            log.error(
                "internal error storing a message of connection %s",
                connection.id,
                exc_info=outcome,
            )
            self.send_error(connection, ErrorCode.INTERNAL, "internal server error", action.ref)
            return
        ack = (
            None
            if action.ref is None
            else partial(connection.send, Ack(action.ref, id=outcome.message.id))
        )
        if not outcome.duplicate:
            self._on_stored(outcome, ack)
        elif ack is not None:
            ack()

    async def _history(self, connection: Connection, action: FetchHistory) -> None:
        try:
            page = await read_page(self._store, action.room, action.before, None, action.limit)
        except Refusal as refusal:
            self.send_error(connection, refusal.code, refusal.message, action.ref)
            return
        connection.send(HistoryPage(action.room, page.messages, page.has_more))
        if action.ref is not None:
            connection.send(Ack(action.ref))
