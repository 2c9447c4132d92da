"""Which local connections are in which room: what fan-out walks.

The hub is generic over the member type so the server can keep its connection
objects here directly: fan-out walks `members(room)` with no lookups. Who is
online (per username, over every node) is not kept here but in
`hubbub.presence`, which may live in Redis.
"""

from collections.abc import Hashable, Iterator, KeysView
from typing import Generic, TypeVar

M = TypeVar("M", bound=Hashable)


class Hub(Generic[M]):
    def __init__(self) -> None:
        self._rooms: dict[str, dict[M, None]] = {}
        """Per room, its members in joining order (a dict as an ordered set)."""

    def join(self, room: str, member: M) -> bool:
        """Put `member` in `room`; False when it was already there."""
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = {}
        elif member in members:
            return False
        members[member] = None
        return True

    def leave(self, room: str, member: M) -> bool:
        """Take `member` out of `room`; False when it was not there. A room left empty
        is forgotten."""
        members = self._rooms.get(room)
        if members is None or member not in members:
            return False
        del members[member]
        if not members:
            del self._rooms[room]
        return True

    def members(self, room: str) -> KeysView[M]:
        members = self._rooms.get(room)
        if members is None:
            empty: dict[M, None] = {}
            return empty.keys()
        return members.keys()

    def has(self, room: str) -> bool:
        """True while `room` has a member here."""
        return room in self._rooms

    def rooms(self) -> Iterator[str]:
        return iter(self._rooms)

    def room_count(self) -> int:
        return len(self._rooms)

    def size(self) -> int:
        """(room, member) pairs: a member of two rooms counts twice."""
        return sum(len(members) for members in self._rooms.values())
