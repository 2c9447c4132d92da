"""When to ping a connection and when to give up on it: pure, on an injected clock.

Every connection lands in one of `slots` buckets; each tick visits one
bucket, so a full turn of the wheel takes one interval and pings are spread
evenly over it. (aiohttp's own heartbeat pings every connection that
arrived in the same second at the same moment: ten thousand pings and
ten thousand timers at once stalled the loop for half a second.)

A visited connection that has been silent for an interval gets a ping; one
that has not answered a ping sent a whole interval earlier is dead. So a
silent peer is closed between one and two intervals after its last frame,
as PROTOCOL.md says: "has not answered within the next interval".
"""

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum, auto
from typing import Generic, TypeVar

M = TypeVar("M", bound=Hashable)

SLOTS = 64


class Verdict(Enum):
    PING = auto()
    DEAD = auto()


@dataclass(slots=True)
class _Liveness:
    last_seen: float
    pinged_at: float | None = None


@dataclass
class HeartbeatWheel(Generic[M]):
    interval: float
    slots: int = SLOTS
    _buckets: list[dict[M, _Liveness]] = field(init=False)
    _where: dict[M, int] = field(default_factory=dict)
    _next: int = 0
    _added: int = 0

    def __post_init__(self) -> None:
        self._buckets = [{} for _ in range(self.slots)]

    @property
    def tick(self) -> float:
        """Seconds between visits: the wheel turns once per interval."""
        return self.interval / self.slots

    def add(self, member: M, now: float) -> None:
        slot = self._added % self.slots
        self._added += 1
        self._buckets[slot][member] = _Liveness(now)
        self._where[member] = slot

    def remove(self, member: M) -> None:
        slot = self._where.pop(member, None)
        if slot is not None:
            self._buckets[slot].pop(member, None)

    def seen(self, member: M, now: float) -> None:
        """The member sent something (any frame counts as an answer)."""
        slot = self._where.get(member)
        if slot is not None:
            liveness = self._buckets[slot][member]
            liveness.last_seen = now
            liveness.pinged_at = None

    def visit(self, now: float) -> list[tuple[M, Verdict]]:
        """Turn the wheel by one bucket: who to ping, who is dead (and forgotten)."""
        bucket = self._buckets[self._next]
        self._next = (self._next + 1) % self.slots
        verdicts: list[tuple[M, Verdict]] = []
        for member, liveness in bucket.items():
            if liveness.pinged_at is not None and now - liveness.pinged_at >= self.interval:
                verdicts.append((member, Verdict.DEAD))
            elif liveness.pinged_at is None and now - liveness.last_seen >= self.interval:
                liveness.pinged_at = now
                verdicts.append((member, Verdict.PING))
        for member, verdict in verdicts:
            if verdict is Verdict.DEAD:
                self.remove(member)
        return verdicts
