"""How long each write of messages takes, for /metrics and for the log.

A message is delivered once the store has written it: for SQLite with
`synchronous = FULL`, once the WAL's fsync has returned. So every delivery's
latency holds its write, and when the disk's fsync stalls, every message in flight
waits for it: on a shared virtual disk, for seconds at a time (docs/benchmarks.md,
"S2: the disk's fsync, not the server"), with the server doing nothing differently.
The histogram shows an operator that the disk is the cause, and a write slower than
`SLOW_SECONDS` is logged (at most once per `LOG_EVERY_SECONDS`, with how many there
were meanwhile), as Redis logs a slow AOF fsync.

The counts are plain ints and lists, with no lock: each store records from one
thread (SQLite's writer thread, PostgreSQL's event loop), and /metrics reads them
when scraped, as `GcPauses` does.
"""

import logging
import math
import time
from bisect import bisect_left
from collections.abc import Callable

log = logging.getLogger("hubbub.store")

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
"""Upper bounds, in seconds, of the histogram's buckets."""
SLOW_SECONDS = 0.1
LOG_EVERY_SECONDS = 60.0


class WriteTimes:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        slow: float = SLOW_SECONDS,
        log_every: float = LOG_EVERY_SECONDS,
    ) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        """Writes per bucket; the last one is above every bound."""
        self.seconds = 0.0
        self.writes = 0
        self.messages = 0
        self._clock = clock
        self._slow = slow
        self._log_every = log_every
        self._logged_at = -math.inf
        self._slow_unlogged = 0
        self._slowest_unlogged = 0.0

    def record(self, seconds: float, messages: int) -> None:
        """One write of `messages` messages took `seconds`."""
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.seconds += seconds
        self.writes += 1
        self.messages += messages
        if seconds >= self._slow:
            self._slow_write(seconds)

    def _slow_write(self, seconds: float) -> None:
        self._slow_unlogged += 1
        self._slowest_unlogged = max(self._slowest_unlogged, seconds)
        now = self._clock()
        if now - self._logged_at < self._log_every:
            return
        log.warning(
            "the message store is slow: %d write%s over %.0f ms since the last report"
            " (the slowest %.0f ms); every message waits for its write before it is"
            " delivered, and a disk's slow fsync is the usual cause",
            self._slow_unlogged,
            "" if self._slow_unlogged == 1 else "s",
            self._slow * 1e3,
            self._slowest_unlogged * 1e3,
        )
        self._logged_at = now
        self._slow_unlogged = 0
        self._slowest_unlogged = 0.0
