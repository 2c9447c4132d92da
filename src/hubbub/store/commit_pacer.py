"""Group a busy room's appends into fewer commits (group commit with a delay).

A commit of the SQLite store costs about the same whether it carries one
message or twenty: the writer thread wakes on another thread's signal, writes
the WAL, fsyncs and signals back (about 300 us of CPU for a lone commit on
session 5's machine, `python -m bench.store_cost`). A room taking a few
hundred messages a second sends each one after the previous commit is done,
so without help every message is a commit of its own, and that is most of
what storing costs there.

A room is *busy* when its previous message came less than the delay ago. A
busy room's message waits until the delay has passed since the last hand-over
to the writer, and goes with every append that came meanwhile. Any other
message is handed over at once, taking whatever waits along (a single queue
keeps every room's order), so the writer starts on it while the loop goes on,
as it did before there was a pacer. So quiet rooms pay nothing, however many
there are and however busy the server, and a busy room pays at most the
delay, in latency only, as its members already do for `flush_delay`.
PostgreSQL's `commit_delay` is the same idea. The pacing runs on the event
loop, so the writer thread is woken once per group, not once per append.
"""

import asyncio
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class CommitPacer(Generic[T]):
    def __init__(self, hand_over: Callable[[list[T]], None], delay: float = 0.0) -> None:
        self._hand_over = hand_over
        self._delay = delay
        self._waiting: list[T] = []
        self._handed_at = -math.inf
        """Loop time of the last hand-over."""
        self._timer: asyncio.TimerHandle | None = None
        self._last_seen: OrderedDict[str, float] = OrderedDict()
        """Rooms that had a message within the delay: loop time of it, oldest first."""

    def add(self, room: str, item: T) -> None:
        """Hand `item` over now, with whatever waits, or, when its room is busy, once the
        delay has passed since the last hand-over."""
        self._waiting.append(item)
        if self._delay:
            loop = asyncio.get_running_loop()
            now = loop.time()
            previous = self._last_seen.pop(room, -math.inf)
            self._forget_before(now - self._delay)
            self._last_seen[room] = now
            if now - previous < self._delay:
                if self._timer is None:
                    due = max(self._handed_at + self._delay, now)
                    self._timer = loop.call_at(due, self._due)
                return
            self._handed_at = now
        self.flush()

    def flush(self) -> None:
        """Hand over whatever waits, now (also when the store closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        if waiting:
            self._hand_over(waiting)

    def _forget_before(self, horizon: float) -> None:
        seen = self._last_seen
        while seen:
            room = next(iter(seen))
            if seen[room] >= horizon:
                return
            del seen[room]

    def _due(self) -> None:
        self._timer = None
        self._handed_at = asyncio.get_running_loop().time()
        self.flush()
