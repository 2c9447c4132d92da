"""One callback per loop turn writes out every connection that has frames queued.

A broadcast to n members marks n connections; scheduling a callback for each
would cost n event-loop handles per message. Instead the first mark of a turn
schedules one flush, which walks the marked connections in order.

With a flush delay, frames may wait to share a write, but only while the loop
is loaded (`Autocork`, like TCP autocorking): once per turn, at its first mark,
the flusher asks how loaded the loop has lately been. Quiet, and every frame
of the turn leaves at the end of it. Loaded, and the turn's marks open one
window, as long as the load says (up to the delay), and everything queued to
those connections before it closes leaves with the first frame in one write:
fewer send() calls per delivery, the main cost of fan-out, exactly when the
loop is short of time. This is a batching window, as Kafka's producer
`linger.ms` is, rather than a limit of one write per delay: at a rate just
above one frame per window, a window still gathers two frames into each write
where the limit gathers barely more than one.

The load is the share of wall time spent in the write passes, timed here with
two clock reads per pass. The one thing kept per connection is when it was last
written: one with no write in the last `ACTIVE` seconds (a member of a quiet
room, while another room loads the loop) is written at the end of the turn
anyway, since a window would gather nothing for it.

The flusher keeps its event loop rather than asking for it per mark:
`asyncio.get_running_loop()` checks the process id with a getpid() system
call each time (0.25 us here).
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from hubbub.core.autocork import Autocork

log = logging.getLogger(__name__)

NOT_SCHEDULED, AT_TURN_END, AFTER_DELAY = 0, 1, 2
"""When a connection's next write is due (see `Flusher.mark`)."""
ACTIVE = 0.1
"""Seconds since its last write within which a connection may be held in a window: a
member of a room with a few messages per second never waits."""
_GRAIN = 0.001
"""Windows due within this of each other are written by one timer: the event loop's
timers keep a millisecond's resolution anyway."""


class Flushable(Protocol):
    flushed_at: float
    """The flusher's clock at its last write to the connection (kept only with a delay)."""

    def flush(self) -> int:
        """Write what is queued; how many frames that was."""

    def drop(self, reason: str) -> None:
        """Cut the connection (its client resumes from history when it reconnects)."""


class Flusher:
    def __init__(self, delay: float = 0.0, clock: Callable[[], float] = time.perf_counter) -> None:
        self.cork = Autocork(delay) if delay else None
        """How loaded the loop is, from the write passes (None without a delay)."""
        self._clock = clock
        """Times the write passes: finer than the loop's clock, which keeps milliseconds."""
        self._marked: list[Flushable] = []
        self._windows: deque[tuple[float, list[Flushable]]] = deque()
        """Connections by the loop time their window closes, earliest first. A turn whose
        window would close before the last one opened joins that one instead (the load
        fell meanwhile): its frames wait a little longer, never longer than the delay."""
        self._timer: asyncio.TimerHandle | None = None
        """Fires when the earliest window closes."""
        self._turn_end: asyncio.Handle | None = None
        """Writes the connections marked during this turn, and ends the turn's decision."""
        self._decided = False
        """Whether this turn's marks wait (`_open`) or not has been decided."""
        self._open: list[Flushable] | None = None
        """The window this turn's marks join, while the loop is loaded."""
        self._active_since = 0.0
        """With a window open: connections last written before this are not held."""
        self._loop: asyncio.AbstractEventLoop | None = None
        """The running loop, bound at the first mark (see the module's docstring)."""

    def mark(self, connection: Flushable) -> int:
        """`connection` has frames to write: flush it at the end of this loop turn, or,
        while the loop is loaded and if it was written lately, when this turn's window
        closes. Returns which
        (`AT_TURN_END` or `AFTER_DELAY`)."""
        if not self._decided:
            self._decide()
        opened = self._open
        if opened is None or connection.flushed_at < self._active_since:
            self._marked.append(connection)
            return AT_TURN_END
        opened.append(connection)
        return AFTER_DELAY

    def mark_now(self, connection: Flushable) -> int:
        """Flush `connection` at the end of this loop turn (also if it already waits in a
        window: the window will find nothing left to write)."""
        if self._turn_end is None:
            self._turn_end = (self._loop or self._bind_loop()).call_soon(self._turn_over)
        self._marked.append(connection)
        return AT_TURN_END

    def _decide(self) -> None:
        """The turn's first mark: end the turn with a flush, and open a window when the
        loop is loaded."""
        loop = self._loop or self._bind_loop()
        self._decided = True
        if self._turn_end is None:
            self._turn_end = loop.call_soon(self._turn_over)
        cork = self.cork
        if cork is None:
            return
        now = self._clock()
        window = cork.window(now)
        if not window:
            return
        self._active_since = now - ACTIVE
        due = loop.time() + window
        windows = self._windows
        if windows and windows[-1][0] > due - _GRAIN:
            self._open = windows[-1][1]
            return
        self._open = []
        windows.append((due, self._open))
        if self._timer is None:
            self._timer = loop.call_at(due, self._flush_due)

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
        self._decided = False
        self._open = None

    def _turn_over(self) -> None:
        self._turn_end = None
        self._decided = False
        self._open = None
        marked, self._marked = self._marked, []
        if marked:
            self._flush(marked)

    def _flush_due(self) -> None:
        self._timer = None
        loop = self._loop or self._bind_loop()
        windows = self._windows
        while windows and windows[0][0] <= loop.time() + _GRAIN:
            connections = windows.popleft()[1]
            if connections is self._open:
                # A turn longer than its window: uvloop runs due timers before the
                # turn's end, and marks made meanwhile (I/O callbacks, callbacks queued
                # ahead of it) must not join a window that is gone. They decide anew.
                self._open = None
                self._decided = False
            self._flush(connections)
        if windows:
            self._timer = loop.call_at(windows[0][0], self._flush_due)

    def _flush(self, connections: list[Flushable]) -> None:
        """Write `connections` out. One that fails to write is cut rather than left with
        frames nobody will write, and the rest are still written."""
        cork = self.cork
        started = self._clock() if cork is not None else 0.0
        for connection in connections:
            try:
                if connection.flush() and cork is not None:
                    connection.flushed_at = started
            except Exception:
                log.exception("writing to a connection failed; cutting it")
                connection.drop("write failed")
        if cork is not None:
            cork.wrote(started, self._clock())
