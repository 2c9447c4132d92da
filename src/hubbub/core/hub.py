"""Who is in which room: connections for fan-out, usernames for presence.

The hub is generic over the member type so the server can keep its connection
objects here directly: fan-out walks `members(room)` with no lookups.
Presence is per username: two connections of one user count once, and only
the first arrival and the last departure are announced.
"""

from collections.abc import Hashable, Iterator, KeysView
from dataclasses import dataclass, field
from typing import Generic, TypeVar

M = TypeVar("M", bound=Hashable)


@dataclass(slots=True)
class Room(Generic[M]):
    name: str
    members: dict[M, str] = field(default_factory=dict)
    """Each member connection and the username it joined as."""
    user_connections: dict[str, int] = field(default_factory=dict)
    """Per username, how many of its connections are in the room."""
    _sorted_users: list[str] | None = None

    def usernames(self) -> list[str]:
        """The distinct usernames, sorted (cached until membership changes)."""
        if self._sorted_users is None:
            self._sorted_users = sorted(self.user_connections)
        return self._sorted_users


@dataclass(frozen=True, slots=True)
class Change:
    """What a join or leave did to a room."""

    member_changed: bool
    """False when the connection was already in (join) or not in (leave) the room."""
    presence_changed: bool
    """True on a username's first arrival or last departure."""
    username: str


class Hub(Generic[M]):
    def __init__(self) -> None:
        self._rooms: dict[str, Room[M]] = {}

    def join(self, room_name: str, member: M, username: str) -> Change:
        room = self._rooms.get(room_name)
        if room is None:
            room = self._rooms[room_name] = Room(room_name)
        if member in room.members:
            return Change(False, False, room.members[member])
        room.members[member] = username
        count = room.user_connections.get(username, 0)
        room.user_connections[username] = count + 1
        if count == 0:
            room._sorted_users = None
        return Change(True, count == 0, username)

    def leave(self, room_name: str, member: M) -> Change:
        room = self._rooms.get(room_name)
        if room is None or member not in room.members:
            return Change(False, False, "")
        username = room.members.pop(member)
        remaining = room.user_connections[username] - 1
        if remaining:
            room.user_connections[username] = remaining
        else:
            del room.user_connections[username]
            room._sorted_users = None
        if not room.members:
            del self._rooms[room_name]
        return Change(True, remaining == 0, username)

    def members(self, room_name: str) -> KeysView[M]:
        room = self._rooms.get(room_name)
        if room is None:
            empty: dict[M, str] = {}
            return empty.keys()
        return room.members.keys()

    def room(self, room_name: str) -> Room[M] | None:
        return self._rooms.get(room_name)

    def rooms(self) -> Iterator[Room[M]]:
        return iter(self._rooms.values())

    def room_count(self) -> int:
        return len(self._rooms)

    def distinct_users(self) -> int:
        users: set[str] = set()
        for room in self._rooms.values():
            users.update(room.user_connections)
        return len(users)
