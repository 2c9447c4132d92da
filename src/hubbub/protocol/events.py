"""Server-to-client events. `to_wire()` gives the exact map both codecs encode.

The seed's events keep their names and fields; `room`, `id`, `connection_id`
and `protocol` are additions old clients ignore.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from hubbub.protocol import PROTOCOL_VERSION
from hubbub.protocol.errors import ErrorCode, Ref

Wire = dict[str, Any]


def format_timestamp(ms: int) -> str:
    """RFC 3339, UTC, milliseconds: `2026-11-26T06:21:03.123Z`."""
    return f"{_second(ms // 1000)}.{ms % 1000:03d}Z"


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    """The formatted second, cached: messages arrive many to a second, and strftime
    was a tenth of the event loop's time per message."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True, slots=True)
class Welcome:
    connection_id: str

    def to_wire(self) -> Wire:
        return {
            "type": "welcome",
            "message": "Connected to server",
            "connection_id": self.connection_id,
            "protocol": PROTOCOL_VERSION,
        }


@dataclass(frozen=True, slots=True)
class ChatMessage:
    id: int
    room: str
    sender: str
    content: str
    timestamp_ms: int
    data: Any = field(default=None, hash=False)
    """The message's structured payload (protocol 1.1): any JSON value, or None for none.
    A message without it is on the wire exactly as before 1.1 (no `"data": null`)."""

    def to_wire(self) -> Wire:
        wire: Wire = {
            "type": "message",
            "id": self.id,
            "room": self.room,
            "from": self.sender,
            "content": self.content,
            "timestamp": format_timestamp(self.timestamp_ms),
        }
        if self.data is not None:
            wire["data"] = self.data
        return wire


@dataclass(frozen=True, slots=True)
class UserJoined:
    username: str
    room: str

    def to_wire(self) -> Wire:
        return {"type": "user_joined", "username": self.username, "room": self.room}


@dataclass(frozen=True, slots=True)
class UserLeft:
    username: str
    room: str

    def to_wire(self) -> Wire:
        return {"type": "user_left", "username": self.username, "room": self.room}


@dataclass(frozen=True, slots=True)
class TypingNotice:
    username: str
    room: str

    def to_wire(self) -> Wire:
        return {"type": "typing", "username": self.username, "room": self.room}


MAX_LISTED_USERS = 1000


@dataclass(frozen=True, slots=True)
class OnlineUsers:
    room: str
    users: tuple[str, ...]
    count: int

    @classmethod
    def of(cls, room: str, usernames: list[str]) -> "OnlineUsers":
        """From the room's sorted distinct usernames; lists at most 1000, counts all."""
        return cls(room, tuple(usernames[:MAX_LISTED_USERS]), len(usernames))

    def to_wire(self) -> Wire:
        return {
            "type": "online_users",
            "users": list(self.users),
            "count": self.count,
            "room": self.room,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    ref: Ref
    id: int | None = None
    replayed: int | None = None
    truncated: bool | None = None
    reset: bool = False
    """For a join whose `since` is beyond the room's newest id: the client must forget
    the ids it remembered for the room. On the wire only when true."""

    def to_wire(self) -> Wire:
        wire: Wire = {"type": "ack", "ref": self.ref}
        if self.id is not None:
            wire["id"] = self.id
        if self.replayed is not None:
            wire["replayed"] = self.replayed
        if self.truncated is not None:
            wire["truncated"] = self.truncated
        if self.reset:
            wire["reset"] = True
        return wire


@dataclass(frozen=True, slots=True)
class HistoryPage:
    room: str
    messages: tuple[ChatMessage, ...]
    has_more: bool

    def to_wire(self) -> Wire:
        return {
            "type": "history",
            "room": self.room,
            "messages": [message.to_wire() for message in self.messages],
            "has_more": self.has_more,
        }


@dataclass(frozen=True, slots=True)
class Error:
    code: ErrorCode
    message: str
    ref: Ref | None = None
    retry_after: float | None = None
    """For `rate_limited`: seconds until the event would be accepted."""

    def to_wire(self) -> Wire:
        wire: Wire = {"type": "error", "code": str(self.code), "message": self.message}
        if self.ref is not None:
            wire["ref"] = self.ref
        if self.retry_after is not None:
            wire["retry_after"] = self.retry_after
        return wire


@dataclass(frozen=True, slots=True)
class Pong:
    def to_wire(self) -> Wire:
        return {"type": "pong"}


ServerEvent = (
    Welcome
    | ChatMessage
    | UserJoined
    | UserLeft
    | TypingNotice
    | OnlineUsers
    | Ack
    | HistoryPage
    | Error
    | Pong
)

SHEDDABLE = (TypingNotice, OnlineUsers)
"""Events a slow consumer may lose: they are superseded by the next one of their kind."""
