"""Presence in this process: the default for one node, and, with a shared `Roster`,
several nodes of one process (as the contract tests run them)."""

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from hubbub.presence.base import Arrival, Totals


@dataclass(slots=True)
class Roster:
    """The shared state: what Redis holds for a cluster."""

    clock: Callable[[], float] = time.monotonic
    users: dict[str, Counter[str]] = field(default_factory=dict)
    """Per room, connections per username, on every node."""
    by_node: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    """Per node, connections per (room, username)."""
    alive_until: dict[str, float] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)


class MemoryPresence:
    def __init__(self, roster: Roster | None = None) -> None:
        self._roster = roster if roster is not None else Roster()
        self._node = ""
        self._ttl = 0.0

    async def start(self, node_id: str, ttl: float) -> None:
        self._node, self._ttl = node_id, ttl
        await self.beat()

    async def beat(self) -> bool:
        roster = self._roster
        known = self._node in roster.alive_until
        roster.alive_until[self._node] = roster.clock() + self._ttl
        roster.by_node.setdefault(self._node, Counter())
        return known

    async def enter(self, room: str, username: str, limit: int) -> Arrival | None:
        users = self._roster.users.setdefault(room, Counter())
        members = users.total()
        if members >= limit:
            if not users:
                del self._roster.users[room]
            return None
        users[username] += 1
        self._roster.by_node.setdefault(self._node, Counter())[room, username] += 1
        return Arrival(users[username] == 1, members + 1)

    async def exit(self, room: str, username: str) -> bool:
        mine = self._roster.by_node.get(self._node)
        if mine is None or mine[room, username] <= 0:
            return False
        mine[room, username] -= 1
        if not mine[room, username]:
            del mine[room, username]
        return self._remove(room, username, 1)

    def _remove(self, room: str, username: str, count: int) -> bool:
        """Take `count` connections of `username` out of `room`; True when none are left."""
        users = self._roster.users[room]
        users[username] -= count
        if users[username] > 0:
            return False
        del users[username]
        if not users:
            del self._roster.users[room]
        return True

    async def users(self, room: str) -> list[str]:
        return sorted(self._roster.users.get(room, ()))

    async def rooms(self) -> dict[str, int]:
        return {room: len(users) for room, users in self._roster.users.items()}

    async def set_connections(self, count: int) -> None:
        self._roster.connections[self._node] = count

    async def totals(self) -> Totals:
        roster = self._roster
        distinct = set().union(*roster.users.values()) if roster.users else set()
        return Totals(sum(roster.connections.values()), len(roster.users), len(distinct))

    async def purge_dead(self) -> list[tuple[str, str]]:
        roster = self._roster
        now = roster.clock()
        gone: list[tuple[str, str]] = []
        for node in [node for node, until in roster.alive_until.items() if until <= now]:
            del roster.alive_until[node]
            roster.connections.pop(node, None)
            for (room, username), count in roster.by_node.pop(node, Counter()).items():
                if self._remove(room, username, count):
                    gone.append((room, username))
        return gone

    async def close(self) -> None:
        roster = self._roster
        for (room, username), count in roster.by_node.pop(self._node, Counter()).items():
            self._remove(room, username, count)
        roster.alive_until.pop(self._node, None)
        roster.connections.pop(self._node, None)
