import pytest

from hubbub.core.ratelimit import RateLimiter, TokenBucket


def test_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=40)
    assert sum(bucket.take(0.0) for _ in range(100)) == 40
    assert sum(bucket.take(1.0) for _ in range(100)) == 20
    assert sum(bucket.take(100.0) for _ in range(100)) == 40


def test_retry_after_is_the_time_until_a_whole_token() -> None:
    limiter = RateLimiter(rate=4, burst=2, abuse_limit=10)
    assert limiter.allow(0.0)
    assert limiter.allow(0.0)
    assert not limiter.allow(0.0)
    assert limiter.retry_after() == 0.25
    assert not limiter.allow(0.125)
    assert limiter.retry_after() == 0.125
    assert limiter.allow(0.25)


def test_retry_after_is_rounded_up_to_the_millisecond() -> None:
    limiter = RateLimiter(rate=3, burst=1, abuse_limit=10)
    assert limiter.allow(0.0)
    assert not limiter.allow(0.0)
    assert limiter.retry_after() == 0.334
    assert limiter.allow(0.334)


def test_limiter_closes_after_abuse_limit_refusals_that_ignored_retry_after() -> None:
    limiter = RateLimiter(rate=1, burst=1, abuse_limit=10)
    assert limiter.allow(0.0)
    assert not limiter.allow(0.0)
    verdicts = [limiter.refused_too_often(0.0) for _ in range(12)]
    # The first refusal could not have known when to retry; the next ten were told.
    assert verdicts == [False] * 11 + [True]
    later = RateLimiter(rate=1, burst=1, abuse_limit=10)
    assert not any(later.refused_too_often(float(t)) for t in range(100))


@pytest.mark.parametrize(("rate", "burst"), [(20.0, 40), (3.0, 1), (50.0, 5), (7.0, 2)])
def test_a_client_that_waits_retry_after_is_never_closed(rate: float, burst: int) -> None:
    """It sends as fast as it may: at once after an acceptance, `retry_after` after a
    refusal. The old rule (every refusal counts) closed it within seconds."""
    limiter = RateLimiter(rate=rate, burst=burst, abuse_limit=5)
    now, accepted, refused = 0.0, 0, 0
    while now < 60:
        if limiter.allow(now):
            accepted += 1
            continue
        refused += 1
        wait = limiter.retry_after()
        assert not limiter.refused_too_often(now)
        now += wait
        assert limiter.allow(now), "waiting retry_after is enough"
        accepted += 1
    assert refused > 5
    assert accepted >= rate * 60
