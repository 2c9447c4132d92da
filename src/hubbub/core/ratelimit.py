"""Token buckets for the per-connection message rate and for telling abuse from bursts."""

import math
from dataclasses import dataclass, field

EPSILON = 1e-9
"""Slack for float error: a client that waited exactly `retry_after` finds a whole token."""


@dataclass(slots=True)
class TokenBucket:
    """Holds up to `burst` tokens, refilled at `rate` per second; each event takes one."""

    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> bool:
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1 - EPSILON:
            self.tokens -= 1
            return True
        return False

    def wait(self) -> float:
        """Seconds from the last `take` until a whole token is there again."""
        return max(0.0, (1 - self.tokens) / self.rate)


ABUSE_WINDOW_SECONDS = 10.0


@dataclass(slots=True)
class RateLimiter:
    """The message rate of one connection, and when refusing is no longer enough.

    Each event takes a token from the rate bucket. A refused event is told when
    to retry (`retry_after`). Abuse is not waiting for that: a refused event that
    arrives before the time the previous refusal gave takes a token from the
    abuse bucket, which holds `abuse_limit` and refills over ten seconds. A
    client that keeps sending past its rate empties it and is closed (1008); a
    client that bursts and then slows down, or waits `retry_after` after each
    refusal, never is.
    """

    rate: float
    burst: int
    abuse_limit: int
    _bucket: TokenBucket = field(init=False)
    _abuse: TokenBucket = field(init=False)
    _retry_at: float = field(default=-math.inf, init=False)
    """When the last refused event was told an event would be accepted again."""

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.rate, self.burst)
        self._abuse = TokenBucket(self.abuse_limit / ABUSE_WINDOW_SECONDS, self.abuse_limit)

    def allow(self, now: float) -> bool:
        return self._bucket.take(now)

    def retry_after(self) -> float:
        """After a refusal: the seconds until an event would be accepted, rounded up to
        the millisecond (so that waiting that long is always enough)."""
        return math.ceil(self._bucket.wait() * 1000) / 1000

    def refused_too_often(self, now: float) -> bool:
        """Record a refused event; True when the connection should be closed."""
        ignored_retry_after = now < self._retry_at
        self._retry_at = now + self.retry_after()
        return ignored_retry_after and not self._abuse.take(now)
