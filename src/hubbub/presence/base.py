"""The `Presence` interface and the guarantees every implementation gives.

Presence is per username: each room counts a username's connections on every
node, and `user_joined` / `user_left` follow its first arrival and its last
departure anywhere. Fan-out membership (which local connection gets which
frame) is not presence: the node keeps that in `core.hub` for itself.

Guarantees (checked by tests/contract/test_presence.py for every implementation):
- `enter` is atomic with its room limit: a room never holds more than `limit`
  connections, counted over every node.
- `enter` returns `first=True` exactly once per username's arrival in a room
  (when it had no connection there on any node), and `exit` returns True
  exactly once per departure (its last connection anywhere left).
- `users(room)` lists the distinct usernames present, sorted.
- A node that stopped calling `beat` for its time to live is dead: `purge_dead`,
  called by any number of survivors at once, removes its connections once, and
  returns (to one caller only) each (room, username) left with no connection on
  any node, for which `user_left` must be sent.
- A node that finds it was purged (it was cut off longer than its time to live)
  learns it from `beat` and enters its connections again.
"""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Arrival:
    first: bool
    """The username had no connection in the room on any node before."""
    members: int
    """Connections in the room on every node, this one included."""


@dataclass(frozen=True, slots=True)
class Report:
    """What a node counts of itself, summed over the nodes in `Totals`."""

    connections: int = 0
    messages: int = 0
    """Messages stored since the node started."""
    messages_per_second: float = 0.0


@dataclass(frozen=True, slots=True)
class Totals:
    rooms: int
    users: int
    """Distinct usernames in any room."""
    nodes: Report
    """The live nodes' reports, summed."""


class PresenceUnavailable(Exception):
    """Presence cannot be read or changed now (Redis is unreachable)."""


class Presence(Protocol):
    async def start(self, node_id: str, ttl: float) -> None:
        """Register this node as alive for `ttl` seconds (see `beat`)."""
        ...

    async def beat(self) -> bool:
        """Keep this node alive for another `ttl`. False when it had been taken for dead
        and purged: its connections must be entered again."""
        ...

    async def enter(self, room: str, username: str, limit: int) -> Arrival | None:
        """One more connection of `username` in `room`; None (and no change) when the
        room already has `limit` connections."""
        ...

    async def exit(self, room: str, username: str) -> bool:
        """One connection of `username` left `room`. True when it was its last anywhere."""
        ...

    async def users(self, room: str) -> list[str]: ...

    async def rooms(self) -> dict[str, int]:
        """Every room with someone in it, and its number of distinct usernames."""
        ...

    async def report(self, report: Report) -> None:
        """This node's own counts, for `totals` (kept until the next report)."""
        ...

    async def totals(self) -> Totals: ...

    async def purge_dead(self) -> list[tuple[str, str]]:
        """Remove the connections of dead nodes; the (room, username) pairs left empty."""
        ...

    async def close(self) -> None:
        """Leave cleanly: this node's connections are gone (not needed after a crash)."""
        ...
