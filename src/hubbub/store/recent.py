"""Recent retry keys, remembered in memory by the one thread that writes.

Looking a retry key up in a database index costs a scattered page write per
message (every room's keys live on their own page), which was most of the
SQLite store's cost per message. The writer thread is the only writer, so a
dictionary it owns is complete for everything stored since start; at start it
is loaded from the stored messages' keys.

The ordered dictionary keeps insertion order, which is (nearly) time order,
so expiry only ever looks at its oldest entries (an OrderedDict, because a
plain dict emptied from the front rescans its holes on every look). It is bounded: under a
sustained flood the window shrinks to the newest `capacity` keys rather than
the memory growing without end.
"""

from collections import OrderedDict
from dataclasses import dataclass, field

from hubbub.store.base import DEDUPE_WINDOW_MS

RetryKey = tuple[str, str, str]
"""(room, sender, typed ref)."""

First = tuple[int, int]
"""The first message's (id, timestamp in ms)."""

DEFAULT_CAPACITY = 200_000
"""About 60 MB at most; at 1,000 messages/s with refs this still covers 200 s."""


@dataclass(slots=True)
class RecentRetries:
    window_ms: int = DEDUPE_WINDOW_MS
    capacity: int = DEFAULT_CAPACITY
    _firsts: OrderedDict[RetryKey, First] = field(default_factory=OrderedDict)

    def first(self, key: RetryKey, now_ms: int) -> First | None:
        """The first message stored under `key`, if it is within the window of `now_ms`."""
        found = self._firsts.get(key)
        if found is None or now_ms - found[1] >= self.window_ms:
            return None
        return found

    def remember(self, firsts: dict[RetryKey, First]) -> None:
        """Remember the first message of each key (a batch's, in the order stored)."""
        if not firsts:
            return
        for key, first in firsts.items():
            self._firsts[key] = first
            self._firsts.move_to_end(key)
        self._expire(max(first[1] for first in firsts.values()))

    def __len__(self) -> int:
        return len(self._firsts)

    def _expire(self, now_ms: int) -> None:
        firsts = self._firsts
        while firsts:
            oldest = next(iter(firsts.values()))
            if len(firsts) <= self.capacity and now_ms - oldest[1] < self.window_ms:
                return
            firsts.popitem(last=False)
