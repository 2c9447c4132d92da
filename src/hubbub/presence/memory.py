"""Presence in this process: the default for one node, and, with a shared `Roster`,
several nodes of one process (as the contract tests run them)."""

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from hubbub.presence.base import Arrival, Liveness, Purged, Report, Resync, Totals


@dataclass(slots=True)
class Roster:
    """The shared state: what Redis holds for a cluster."""

    clock: Callable[[], float] = time.monotonic
    users: dict[str, Counter[str]] = field(default_factory=dict)
    """Per room, connections per username, on every node."""
    members: Counter[str] = field(default_factory=Counter)
    """Per room, connections on every node."""
    sorted_users: dict[str, list[str]] = field(default_factory=dict)
    """Per room, its usernames sorted, kept until they change: a room filling up sends
    the list to each joiner."""
    by_node: dict[str, Counter[tuple[str, str]]] = field(default_factory=dict)
    """Per node, connections per (room, username)."""
    alive_until: dict[str, float] = field(default_factory=dict)
    reports: dict[str, Report] = field(default_factory=dict)


class MemoryPresence:
    def __init__(self, roster: Roster | None = None) -> None:
        self._roster = roster if roster is not None else Roster()
        self._node = ""
        self._ttl = 0.0

    async def start(self, node_id: str, ttl: float) -> None:
        self._node, self._ttl = node_id, ttl
        await self.beat()

    async def beat(self) -> Liveness:
        roster = self._roster
        known = self._node in roster.alive_until
        roster.alive_until[self._node] = roster.clock() + self._ttl
        roster.by_node.setdefault(self._node, Counter())
        return Liveness.KNOWN if known else Liveness.PURGED

    async def enter(self, room: str, username: str, limit: int) -> Arrival | None:
        roster = self._roster
        if roster.members[room] >= limit:
            return None
        roster.members[room] += 1
        users = roster.users.setdefault(room, Counter())
        users[username] += 1
        roster.by_node.setdefault(self._node, Counter())[room, username] += 1
        first = users[username] == 1
        if first:
            roster.sorted_users.pop(room, None)
        return Arrival(first, roster.members[room])

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
        roster = self._roster
        roster.members[room] -= count
        if roster.members[room] <= 0:
            del roster.members[room]
        users = roster.users[room]
        users[username] -= count
        if users[username] > 0:
            return False
        del users[username]
        roster.sorted_users.pop(room, None)
        if not users:
            del roster.users[room]
        return True

    async def users(self, room: str) -> list[str]:
        roster = self._roster
        listed = roster.sorted_users.get(room)
        if listed is None:
            listed = sorted(roster.users.get(room, ()))
            if listed:
                roster.sorted_users[room] = listed
        return listed

    async def rooms(self) -> dict[str, int]:
        return {room: len(users) for room, users in self._roster.users.items()}

    async def report(self, report: Report) -> None:
        self._roster.reports[self._node] = report

    async def totals(self) -> Totals:
        roster = self._roster
        distinct = set().union(*roster.users.values()) if roster.users else set()
        return Totals(len(roster.users), len(distinct), summed(roster.reports.values()))

    async def purge_dead(self) -> Purged:
        roster = self._roster
        now = roster.clock()
        gone: list[tuple[str, str]] = []
        dead = [node for node, until in roster.alive_until.items() if until <= now]
        for node in dead:
            del roster.alive_until[node]
            roster.reports.pop(node, None)
            for (room, username), count in roster.by_node.pop(node, Counter()).items():
                if self._remove(room, username, count):
                    gone.append((room, username))
        return Purged(len(dead), gone)

    async def replace(self, entries: Mapping[tuple[str, str], int]) -> Resync:
        roster = self._roster
        old = roster.by_node.pop(self._node, Counter())
        touched = set(old) | set(entries)
        before = {pair: self._count(*pair) for pair in touched}
        for (room, username), count in old.items():
            self._remove(room, username, count)
        mine = roster.by_node[self._node] = Counter()
        for (room, username), count in entries.items():
            roster.members[room] += count
            roster.users.setdefault(room, Counter())[username] += count
            roster.sorted_users.pop(room, None)
            mine[room, username] += count
        after = {pair: self._count(*pair) for pair in touched}
        return Resync(
            arrived=sorted(p for p in touched if before[p] == 0 < after[p]),
            left=sorted(p for p in touched if after[p] == 0 < before[p]),
        )

    def _count(self, room: str, username: str) -> int:
        return self._roster.users.get(room, Counter())[username]

    async def close(self) -> None:
        roster = self._roster
        for (room, username), count in roster.by_node.pop(self._node, Counter()).items():
            self._remove(room, username, count)
        roster.alive_until.pop(self._node, None)
        roster.reports.pop(self._node, None)


def summed(reports: Iterable[Report]) -> Report:
    connections, messages, rate = 0, 0, 0.0
    for report in reports:
        connections += report.connections
        messages += report.messages
        rate += report.messages_per_second
    return Report(connections, messages, rate)
