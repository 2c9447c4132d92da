"""How long frames may wait to share a write, from how loaded the event loop is: pure,
on an injected clock.

A write (one `send()` per connection) is most of what fan-out costs, and frames
that wait for others to leave with them cost fewer writes. Waiting only pays
when the loop is short of time, though: a loop that is mostly idle can afford
a write per frame, and a frame made to wait there is latency bought for
nothing. So, like Linux's TCP autocorking, which holds small writes back only
while an earlier one is still queued for the device, frames wait only while
the loop is loaded.

The load is the share of recent wall time the loop spent in its write passes
(`wrote`), as a leaky integrator: each pass adds its duration, and what was
added decays with the time constant `horizon`, so a steady share `s` reads as
`s`. Below `quiet` nothing waits; from `quiet` to `loaded` the window grows with
the square of the way from one to the other, up to `longest` at `loaded` and
above: short windows while the loop still has time to spare (a few milliseconds
gather the messages that come nearly together, at a few milliseconds' cost),
the longest only when it has little. The window feeds back on
the load (longer windows, fewer writes, a smaller share), so a steady rate
settles where the two meet instead of flapping between extremes; a loop that
runs out of work decays to quiet within a few `horizon`s, and its frames then
leave at the end of their turn again.

Measuring the passes rather than each connection's pace keeps the decision
out of the per-frame path: it is taken once per loop turn.
"""

import math
from dataclasses import dataclass

HORIZON = 0.25
"""Seconds: the load's time constant. Long enough to span several messages at the rates
where batching starts to pay (a few per 100 ms), short enough to let go within a second
of a burst's end."""
QUIET = 0.15
"""Share of wall time in write passes up to which every frame leaves at the end of its
turn. The benchmark's crowd of 100 quiet rooms (S2) reads about 0.08 here, one room of
1,000 at 50 messages/s (S1) 0.17 to 0.3 depending on how busy the machine is."""
LOADED = 0.5
"""Share from which frames wait the longest window."""
SHORTEST = 0.001
"""Windows shorter than this are not worth a timer (the loop's timers keep a millisecond's
resolution): the frames leave at the end of the turn."""


@dataclass(slots=True)
class Autocork:
    longest: float
    """Seconds the window lasts when the loop is fully loaded (`flush_delay`); 0: never."""
    horizon: float = HORIZON
    quiet: float = QUIET
    loaded: float = LOADED
    _busy: float = 0.0
    """Decayed seconds of writing, as of `_at`: the load times `horizon`."""
    _at: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.quiet < self.loaded:
            raise ValueError("quiet must be at least 0 and below loaded")
        if self.horizon <= 0:
            raise ValueError("horizon must be greater than 0")

    def wrote(self, started: float, ended: float) -> None:
        """A write pass ran from `started` to `ended` (the clock's seconds)."""
        self._decay(ended)
        self._busy += ended - started

    def load(self, now: float) -> float:
        """The share of recent time spent writing, as of `now` (0 to about 1)."""
        self._decay(now)
        return self._busy / self.horizon

    def window(self, now: float) -> float:
        """Seconds the frames queued now may wait for more (0: none, write them at the
        end of this turn)."""
        if not self.longest:
            return 0.0
        load = self.load(now)
        if load <= self.quiet:
            return 0.0
        if load >= self.loaded:
            return self.longest
        rise = (load - self.quiet) / (self.loaded - self.quiet)
        window = self.longest * rise * rise
        return window if window >= SHORTEST else 0.0

    def _decay(self, now: float) -> None:
        elapsed = now - self._at
        if elapsed > 0:
            self._busy *= math.exp(-elapsed / self.horizon)
            self._at = now
