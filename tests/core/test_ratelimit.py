from hubbub.core.ratelimit import RateLimiter, TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=40)
    assert sum(bucket.take(0.0) for _ in range(100)) == 40
    assert sum(bucket.take(1.0) for _ in range(100)) == 20
    assert sum(bucket.take(100.0) for _ in range(100)) == 40


def test_limiter_closes_only_after_abuse_limit_refusals_in_a_window() -> None:
    limiter = RateLimiter(rate=1, burst=1, abuse_limit=10)
    assert limiter.allow(0.0)
    assert not limiter.allow(0.0)
    verdicts = [limiter.refused_too_often(0.0) for _ in range(11)]
    assert verdicts == [False] * 10 + [True]
    later = RateLimiter(rate=1, burst=1, abuse_limit=10)
    assert not any(later.refused_too_often(float(t)) for t in range(100))
