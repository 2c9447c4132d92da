"""Group a busy server's appends into fewer commits (group commit with a delay).

A commit of the SQLite store costs about the same whether it carries one
message or twenty: the writer thread wakes on another thread's signal, writes
the WAL, fsyncs and signals back (about 200 us of CPU on the machines in
docs/benchmarks.md). At a few hundred messages a second each message arrives
after the previous commit is done, so without help every message is a commit
of its own, and that is most of what storing costs.

With a delay, an append that comes less than the delay after the last hand-over
to the writer waits until the delay has passed since it, together with every
append that comes meanwhile; an append after a quiet spell goes at the end of
the loop turn. A quiet server pays nothing, and a busy one at most the delay,
in latency only (PostgreSQL's `commit_delay` is the same idea). The pacing runs
on the event loop, so the writer thread is woken once per group, not once per
append.
"""

import asyncio
import math
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

    def add(self, item: T) -> None:
        """Hand `item` over with the rest of this loop turn's, or, within the delay of the
        last hand-over, once the delay has passed since it."""
        self._waiting.append(item)
        if self._timer is None:
            loop = asyncio.get_running_loop()
            due = max(self._handed_at + self._delay, loop.time())
            self._timer = loop.call_at(due, self._due)

    def flush(self) -> None:
        """Hand over whatever waits, now (the store is closing)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self._waiting = self._waiting, []
        if waiting:
            self._hand_over(waiting)

    def _due(self) -> None:
        self._timer = None
        self._handed_at = asyncio.get_running_loop().time()
        self.flush()
