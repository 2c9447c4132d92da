"""One callback per loop turn writes out every connection that has frames queued.

A broadcast to n members marks n connections; scheduling a callback for each
would cost n event-loop handles per message. Instead the first mark of a turn
schedules one flush, which walks the marked connections in order.

With a flush delay, a *busy* connection (one whose writes have lately come
less than twice the delay apart) that was written to less than the delay ago
waits until the delay has passed since that write, gathering the frames of
several messages into one write: fewer send() calls per delivery, the main
cost of fan-out, where rooms are busy. A quiet connection is still written at
the end of the turn, so ordinary chat pays no latency for the setting.

The flusher keeps its event loop rather than asking for it per mark:
`asyncio.get_running_loop()` checks the process id with a getpid() system
call each time (0.25 us here), and a busy member is marked once per message.
"""

import asyncio
from typing import Protocol

NOT_SCHEDULED, AT_TURN_END, AFTER_DELAY = 0, 1, 2
"""When a connection's next write is due (see `Flusher.mark`)."""
_SMOOTHING = 0.25
"""Weight of the newest interval in a connection's average time between writes."""
QUIET_GAP = 1.0
"""Seconds between writes assumed for a new connection, and the most one interval counts."""


class Flushable(Protocol):
    flushed_at: float
    """Loop time of the last write the flusher made."""
    write_gap: float
    """Smoothed seconds between the flusher's writes (kept only with a delay)."""

    def flush(self) -> bool:
        """Write what is queued; False if nothing was."""


class Flusher:
    def __init__(self, delay: float = 0.0) -> None:
        self._marked: list[Flushable] = []
        self._waiting: list[Flushable] = []
        """Busy connections, written when `_timer` fires."""
        self._timer: asyncio.TimerHandle | None = None
        self._delay = delay
        self._busy_gap = 2 * delay
        self._loop: asyncio.AbstractEventLoop | None = None
        """The running loop, bound at the first mark (see the module's docstring)."""

    def mark(self, connection: Flushable) -> int:
        """`connection` has frames to write: flush it at the end of this loop turn, or,
        when it is busy, once the delay has passed since its last write. Returns which
        (`AT_TURN_END` or `AFTER_DELAY`)."""
        if self._delay and connection.write_gap < self._busy_gap:
            loop = self._loop or self._bind_loop()
            due = connection.flushed_at + self._delay
            if due > loop.time():
                if self._timer is None:
                    self._timer = loop.call_at(due, self._flush_waiting)
                self._waiting.append(connection)
                return AFTER_DELAY
        return self.mark_now(connection)

    def mark_now(self, connection: Flushable) -> int:
        """Flush `connection` at the end of this loop turn (also if it already waits for
        the delay: the timer will find nothing left to write)."""
        if not self._marked:
            (self._loop or self._bind_loop()).call_soon(self._flush_marked)
        self._marked.append(connection)
        return AT_TURN_END

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def _flush_marked(self) -> None:
        marked, self._marked = self._marked, []
        self._flush(marked)

    def _flush_waiting(self) -> None:
        self._timer = None
        waiting, self._waiting = self._waiting, []
        self._flush(waiting)

    def _flush(self, connections: list[Flushable]) -> None:
        if not self._delay:
            for connection in connections:
                connection.flush()
            return
        now = (self._loop or self._bind_loop()).time()
        for connection in connections:
            if connection.flush():
                gap = now - connection.flushed_at
                if gap > QUIET_GAP:
                    gap = QUIET_GAP
                connection.write_gap += (gap - connection.write_gap) * _SMOOTHING
                connection.flushed_at = now
