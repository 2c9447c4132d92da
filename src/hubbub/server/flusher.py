"""One callback per loop turn writes out every connection that has frames queued.

A broadcast to n members marks n connections; scheduling a callback for each
would cost n event-loop handles per message. Instead the first mark of a turn
schedules one flush, which walks the marked connections in order.

With a flush delay the flush runs that much later instead, so a connection
gathers the frames of several messages into one write: fewer send() calls
per delivery (the main cost of fan-out) for a little latency.
"""

import asyncio
from typing import Protocol


class Flushable(Protocol):
    def flush(self) -> None: ...


class Flusher:
    def __init__(self, delay: float = 0.0) -> None:
        self._marked: list[Flushable] = []
        self._delay = delay

    def mark(self, connection: Flushable) -> None:
        """`connection` has frames to write: flush it at the end of this loop turn (or
        after the delay)."""
        if not self._marked:
            if self._delay:
                asyncio.get_running_loop().call_later(self._delay, self._flush_all)
            else:
                asyncio.get_running_loop().call_soon(self._flush_all)
        self._marked.append(connection)

    def _flush_all(self) -> None:
        marked, self._marked = self._marked, []
        for connection in marked:
            connection.flush()
