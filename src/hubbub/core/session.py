"""One connection's state machine: a decoded command in, a list of actions out.

Pure: the caller passes the time and a guest-name factory. The session knows
the connection's username and rooms and applies the per-connection rules
(rate, membership, the seed's omitted-room rules); the hub and the store are
the server's business.

A connection is in each of its rooms either as a member or as a watcher. A
watcher gets the room's messages but is no part of its presence, and may not
post or type there. Joining a room again in the other mode switches modes (a
watcher that starts to chat, a member that only wants to follow): the server
moves the connection without a gap in its messages.
"""

from collections.abc import Callable

from hubbub.core.actions import Action, Close, Enter, Exit, FetchHistory, Notify, Publish, Reply
from hubbub.core.auth import Identity, check_may_read
from hubbub.core.ratelimit import RateLimiter
from hubbub.protocol.commands import Command, History, Join, Leave, Ping, Post, Typing
from hubbub.protocol.errors import ErrorCode, Ref, Refusal
from hubbub.protocol.events import Ack, Error, Pong, TypingNotice

POLICY_VIOLATION = 1008


class Session:
    def __init__(
        self,
        limiter: RateLimiter,
        guest_name: Callable[[], str],
        identity: Identity | None = None,
        max_rooms: int = 1_000_000,
    ) -> None:
        self._limiter = limiter
        self._guest_name = guest_name
        self._identity = identity
        self._max_rooms = max_rooms
        self.username: str | None = identity.username if identity is not None else None
        self.rooms: dict[str, bool] = {}
        """Joined rooms in joining order, each True when watched (not a member there)."""

    def handle(self, command: Command | Refusal, now: float) -> list[Action]:
        if not self._limiter.allow(now):
            retry_after = self._limiter.retry_after()
            refusal = Error(
                ErrorCode.RATE_LIMITED,
                f"too many events; this one was dropped (retry after {retry_after} s)",
                command.ref,
                retry_after,
            )
            actions: list[Action] = [Reply(refusal)]
            if self._limiter.refused_too_often(now):
                actions.append(Close(POLICY_VIOLATION, "rate limit exceeded persistently"))
            return actions
        if isinstance(command, Refusal):
            return [_refuse(command)]
        try:
            return self._accept(command)
        except Refusal as refusal:
            return [_refuse(refusal.with_ref(command.ref))]

    def _accept(self, command: Command) -> list[Action]:
        match command:
            case Join(room, username, since, ref, username_error, watch):
                check_may_read(self._identity, room)
                if room not in self.rooms and len(self.rooms) >= self._max_rooms:
                    rooms = "room" if self._max_rooms == 1 else "rooms"
                    raise Refusal(
                        ErrorCode.ROOM_FULL,
                        f"a connection may be in at most {self._max_rooms} {rooms};"
                        " leave one to join another",
                    )
                if self.username is None:
                    if username_error is not None:
                        raise Refusal(ErrorCode.INVALID_FIELD, username_error)
                    self.username = username or self._guest_name()
                self.rooms[room] = watch
                return [Enter(room, self.username, since, ref, watch)]
            case Post(content, room, ref, data):
                target = self._member_of(room)
                return [Publish(target, self._name(), content, ref, data)]
            case Typing(room, ref):
                target = self._member_of(room)
                return [Notify(target, TypingNotice(self._name(), target)), *_ack(ref)]
            case Leave(None, ref):
                left = [Exit(name) for name in self.rooms]
                self.rooms.clear()
                return [*left, *_ack(ref)]
            case Leave(room, ref):
                target = self._joined_room(room)
                del self.rooms[target]
                return [Exit(target), *_ack(ref)]
            case History(room, before, limit, ref):
                check_may_read(self._identity, room)
                return [FetchHistory(room, before, limit, ref)]
            case Ping(ref):
                return [Reply(Pong()), *_ack(ref)]

    def forget_room(self, room: str) -> None:
        """The server could not complete a join (the room is full)."""
        self.rooms.pop(room, None)

    def restore_room(self, room: str, watching: bool | None) -> None:
        """The server could not switch the connection's mode in `room` (the room is
        full): it stays there as it was, a watcher (True) or a member (False), or not at
        all (None)."""
        if watching is None:
            self.rooms.pop(room, None)
        else:
            self.rooms[room] = watching

    def _name(self) -> str:
        assert self.username is not None, "a connection in a room has a username"
        return self.username

    def _member_of(self, room: str | None) -> str:
        """The room to post or type in: joined, and not merely watched."""
        target = self._joined_room(room)
        if self.rooms[target]:
            raise Refusal(
                ErrorCode.NOT_IN_ROOM,
                f"room {target!r} is only watched; join it without watch to post or type",
            )
        return target

    def _joined_room(self, room: str | None) -> str:
        if room is not None:
            if room not in self.rooms:
                raise Refusal(ErrorCode.NOT_IN_ROOM, f"join room {room!r} first")
            return room
        if len(self.rooms) == 1:
            return next(iter(self.rooms))
        if not self.rooms:
            raise Refusal(ErrorCode.NOT_IN_ROOM, "join a room first")
        raise Refusal(
            ErrorCode.INVALID_FIELD, "room is required when the connection is in several rooms"
        )


def _refuse(refusal: Refusal) -> Reply:
    return Reply(Error(refusal.code, refusal.message, refusal.ref))


def _ack(ref: Ref | None) -> list[Action]:
    return [] if ref is None else [Reply(Ack(ref))]
