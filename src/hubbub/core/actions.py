"""What a session asks the server to do. The server runs them in order, so an
`ack` that follows an action is sent after that action's effects."""

from dataclasses import dataclass
from typing import Any

from hubbub.protocol.envelope import RoomEvent
from hubbub.protocol.errors import Ref
from hubbub.protocol.events import ServerEvent


@dataclass(frozen=True, slots=True)
class Reply:
    """Send an event to this connection only."""

    event: ServerEvent


@dataclass(frozen=True, slots=True)
class Enter:
    """Put the connection in a room; announce, send presence, replay, then ack. A
    watcher (`watch`) is put there for messages only: no presence, sent or counted."""

    room: str
    username: str
    since: int | None
    ref: Ref | None
    watch: bool = False


@dataclass(frozen=True, slots=True)
class Exit:
    """Take the connection out of a room and announce it to the rest."""

    room: str


@dataclass(frozen=True, slots=True)
class Publish:
    """Store a message, broadcast it to the room, then ack it with its id."""

    room: str
    username: str
    content: str
    ref: Ref | None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Notify:
    """Send an event to every other member of a room."""

    room: str
    event: RoomEvent


@dataclass(frozen=True, slots=True)
class FetchHistory:
    room: str
    before: int | None
    limit: int
    ref: Ref | None


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = Reply | Enter | Exit | Publish | Notify | FetchHistory | Close
