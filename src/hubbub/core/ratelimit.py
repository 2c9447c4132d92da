"""Token buckets for the per-connection message rate and for telling abuse from bursts."""

from dataclasses import dataclass, field


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
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


ABUSE_WINDOW_SECONDS = 10.0


@dataclass(slots=True)
class RateLimiter:
    """The message rate of one connection, and when refusing is no longer enough.

    Each event takes a token from the rate bucket; a refused event takes one
    from the abuse bucket, which holds `abuse_limit` and refills over ten
    seconds. A client that keeps sending past its rate empties it and is
    closed (1008); a client that bursts and then slows down never is.
    """

    rate: float
    burst: int
    abuse_limit: int
    _bucket: TokenBucket = field(init=False)
    _abuse: TokenBucket = field(init=False)

    def __post_init__(self) -> None:
        self._bucket = TokenBucket(self.rate, self.burst)
        self._abuse = TokenBucket(self.abuse_limit / ABUSE_WINDOW_SECONDS, self.abuse_limit)

    def allow(self, now: float) -> bool:
        return self._bucket.take(now)

    def refused_too_often(self, now: float) -> bool:
        """Record a refused event; True when the connection should be closed."""
        return not self._abuse.take(now)
