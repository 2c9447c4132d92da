"""Client-to-server events, as validated values.

`room` is `None` where the client omitted it; the session resolves it (the
seed's page keeps one room per connection and leaves it out).
"""

from dataclasses import dataclass
from typing import Any

from hubbub.protocol.errors import Ref


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    username: str | None
    """Trimmed; None when missing, blank or invalid."""
    since: int | None = None
    ref: Ref | None = None
    username_error: str | None = None
    """Why the given username is invalid. Only the first join of a connection uses the
    username, so only then is this a refusal."""
    watch: bool = False
    """Join as a watcher: the room's messages, but no presence (see `core.session`)."""


@dataclass(frozen=True, slots=True)
class Post:
    content: str
    room: str | None
    ref: Ref | None = None
    data: Any = None
    """A valid JSON value (see `validation.valid_data`), or None when there is none."""


@dataclass(frozen=True, slots=True)
class Leave:
    room: str | None
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Typing:
    room: str | None
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class History:
    room: str
    before: int | None = None
    limit: int = 50
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    ref: Ref | None = None


@dataclass(frozen=True, slots=True)
class Publication:
    """A message a backend publishes over HTTP (`POST /rooms/{name}/messages`): the
    `message` event of a user named `sender`, who need not be connected."""

    sender: str
    content: str
    data: Any = None
    ref: Ref | None = None


Command = Join | Post | Leave | Typing | History | Ping
