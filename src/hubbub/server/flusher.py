"""One callback per loop turn writes out every connection that has frames queued.

A broadcast to n members marks n connections; scheduling a callback for each
would cost n event-loop handles per message. Instead the first mark of a turn
schedules one flush, which walks the marked connections in order.

With a flush delay, a *busy* connection (one whose frames have lately come
less than the delay apart) holds the first frame queued after a write for the
delay, and everything queued meanwhile leaves with it: fewer send() calls per
delivery, the main cost of fan-out, where rooms are busy. This is a batching
window, as Kafka's producer `linger.ms` is, rather than a limit of one write
per delay: at a rate just above one frame per delay, a window still gathers
two frames into each write where the limit gathers barely more than one, and
neither adds more than the delay to a frame's latency. A quiet connection is
still written at the end of the turn, so ordinary chat pays no latency for
the setting.

The flusher keeps its event loop rather than asking for it per mark:
`asyncio.get_running_loop()` checks the process id with a getpid() system
call each time (0.25 us here), and a busy member is marked once per window.
"""

import asyncio
import logging
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)

NOT_SCHEDULED, AT_TURN_END, AFTER_DELAY = 0, 1, 2
"""When a connection's next write is due (see `Flusher.mark`)."""
_SMOOTHING = 0.25
"""Weight of the newest write in a connection's average time between frames."""
QUIET_GAP = 1.0
"""Seconds between frames assumed for a new connection, and the most one write counts."""
_GRAIN = 0.001
"""Windows due within this of each other are written by one timer: the event loop's
timers keep a millisecond's resolution anyway."""


class Flushable(Protocol):
    flushed_at: float
    """Loop time of the last write the flusher made."""
    frame_gap: float
    """Smoothed seconds between the frames the flusher wrote (kept only with a delay)."""

    def flush(self) -> int:
        """Write what is queued; how many frames that was."""

    def drop(self, reason: str) -> None:
        """Cut the connection (its client resumes from history when it reconnects)."""


class Flusher:
    def __init__(self, delay: float = 0.0) -> None:
        self._marked: list[Flushable] = []
        self._windows: deque[tuple[float, list[Flushable]]] = deque()
        """Busy connections by the loop time their window closes, earliest first: every
        window is as long as the delay, so they close in the order they opened."""
        self._timer: asyncio.TimerHandle | None = None
        """Fires when the earliest window closes."""
        self._turn_end: asyncio.Handle | None = None
        """Writes the connections marked during this turn."""
        self._delay = delay
        self._loop: asyncio.AbstractEventLoop | None = None
        """The running loop, bound at the first mark (see the module's docstring)."""

    def mark(self, connection: Flushable) -> int:
        """`connection` has frames to write: flush it at the end of this loop turn, or,
        when it is busy, once the delay has passed. Returns which (`AT_TURN_END` or
        `AFTER_DELAY`)."""
        if self._delay and connection.frame_gap < self._delay:
            loop = self._loop or self._bind_loop()
            due = loop.time() + self._delay
            windows = self._windows
            if windows and windows[-1][0] > due - _GRAIN:
                windows[-1][1].append(connection)
            else:
                windows.append((due, [connection]))
                if self._timer is None:
                    self._timer = loop.call_at(due, self._flush_due)
            return AFTER_DELAY
        return self.mark_now(connection)

    def mark_now(self, connection: Flushable) -> int:
        """Flush `connection` at the end of this loop turn (also if it already waits for
        the delay: its window will find nothing left to write)."""
        if not self._marked:
            self._turn_end = (self._loop or self._bind_loop()).call_soon(self._flush_marked)
        self._marked.append(connection)
        return AT_TURN_END

    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    def stop(self) -> None:
        """Write nothing more (the server is stopping): cancel the pending callbacks."""
        for handle in (self._turn_end, self._timer):
            if handle is not None:
                handle.cancel()
        self._turn_end = self._timer = None
        self._marked = []
        self._windows.clear()

    def _flush_marked(self) -> None:
        self._turn_end = None
        marked, self._marked = self._marked, []
        self._flush(marked)

    def _flush_due(self) -> None:
        self._timer = None
        loop = self._loop or self._bind_loop()
        windows = self._windows
        while windows and windows[0][0] <= loop.time() + _GRAIN:
            self._flush(windows.popleft()[1])
        if windows:
            self._timer = loop.call_at(windows[0][0], self._flush_due)

    def _flush(self, connections: list[Flushable]) -> None:
        """Write `connections` out. One that fails to write is cut rather than left with
        frames nobody will write, and the rest are still written."""
        delay = self._delay
        now = (self._loop or self._bind_loop()).time() if delay else 0.0
        for connection in connections:
            try:
                count = connection.flush()
            except Exception:
                log.exception("writing to a connection failed; cutting it")
                connection.drop("write failed")
                continue
            if count and delay:
                gap = now - connection.flushed_at
                if gap > QUIET_GAP:
                    gap = QUIET_GAP
                connection.frame_gap += (gap / count - connection.frame_gap) * _SMOOTHING
                connection.flushed_at = now
