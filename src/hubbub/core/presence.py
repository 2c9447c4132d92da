"""Coalescing of `online_users` broadcasts: at most one per room per interval.

A room of n members filling up would cost n^2 frames if every join were
announced to everyone at once. Instead a change marks the room dirty and the
server sends one `online_users` with the state at the time of sending, no
sooner than `interval` after the previous one. The joiner itself gets its own
copy at once (not through here).
"""

from dataclasses import dataclass, field


@dataclass(slots=True)
class PresenceThrottle:
    interval: float
    _last_sent: dict[str, float] = field(default_factory=dict)
    _pending: set[str] = field(default_factory=set)

    def changed(self, room: str, now: float) -> float | None:
        """Note a membership change. Returns the delay before the room's next
        broadcast is due, or None when one is already scheduled."""
        if room in self._pending:
            return None
        self._pending.add(room)
        last = self._last_sent.get(room)
        if last is None:
            return 0.0
        return max(0.0, last + self.interval - now)

    def due(self, room: str, now: float) -> None:
        """The scheduled broadcast for `room` is being sent now."""
        self._pending.discard(room)
        self._last_sent[room] = now

    def forget(self, room: str) -> None:
        """Drop the bookkeeping of a room that has emptied."""
        self._pending.discard(room)
        self._last_sent.pop(room, None)
