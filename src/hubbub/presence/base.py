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
- A node that was purged (it was cut off longer than its time to live), or
  whose presence was lost with Redis's data, learns which from `beat`;
  `replace` then makes presence hold exactly the node's connections again, as
  it does after any change that may have been lost.
"""

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class Liveness(enum.Enum):
    """What a node's `beat` found."""

    KNOWN = "known"
    """Alive, as counted."""
    PURGED = "purged"
    """Taken for dead and purged (the others announced its users' departures)."""
    RESET = "reset"
    """Presence itself lost everything (Redis restarted empty): nobody announced anything."""


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


@dataclass(frozen=True, slots=True)
class Resync:
    """Who `replace` made arrive in or leave a room (on every node's count)."""

    arrived: list[tuple[str, str]] = field(default_factory=list)
    left: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Purged:
    """What one `purge_dead` did."""

    nodes: int = 0
    """Dead nodes removed: what they published last may never have reached anyone."""
    left: list[tuple[str, str]] = field(default_factory=list)
    """(room, username) left with no connection on any node: `user_left` is due."""


class PresenceUnavailable(Exception):
    """Presence cannot be read or changed now (Redis is unreachable)."""


class PresenceReset(PresenceUnavailable):
    """Presence lost its data since this node counted in it (Redis restarted empty):
    until the node has counted its connections again (`beat`, `replace`), it is not
    to be trusted."""

    def __init__(self) -> None:
        super().__init__("presence was reset (Redis lost its data); counting again")


class Presence(Protocol):
    async def start(self, node_id: str, ttl: float) -> None:
        """Register this node as alive for `ttl` seconds (see `beat`)."""
        ...

    async def beat(self) -> Liveness:
        """Keep this node alive for another `ttl`; anything but KNOWN means its
        connections must be counted again (`replace`)."""
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

    async def purge_dead(self) -> Purged:
        """Remove the dead nodes and their connections (once, whoever asks)."""
        ...

    async def replace(self, entries: Mapping[tuple[str, str], int]) -> Resync:
        """Set this node's connections to `entries` ((room, username) -> connections),
        whatever was counted for it before: after changes that may have been lost."""
        ...

    async def close(self) -> None:
        """Leave cleanly: this node's connections are gone (not needed after a crash)."""
        ...
