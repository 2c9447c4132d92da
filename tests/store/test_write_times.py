"""Write times: a histogram of the store's writes, and a rate-limited warning when slow."""

import logging

import pytest

from hubbub.store.write_times import BUCKETS, WriteTimes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_write_lands_in_the_first_bucket_that_holds_it() -> None:
    times = WriteTimes()
    times.record(0.0003, 1)
    times.record(0.0005, 2)  # a bound belongs to its own bucket (Prometheus's `le`)
    times.record(0.004, 3)
    times.record(BUCKETS[-1] + 1, 1)
    expected = [0] * (len(BUCKETS) + 1)
    expected[0] = 2
    expected[BUCKETS.index(0.005)] = 1
    expected[-1] = 1
    assert times.counts == expected
    assert times.writes == 4
    assert times.messages == 7
    assert times.seconds == pytest.approx(0.0003 + 0.0005 + 0.004 + BUCKETS[-1] + 1)


def test_fast_writes_are_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    times = WriteTimes(clock=Clock(), slow=0.1)
    with caplog.at_level(logging.WARNING, logger="hubbub.store"):
        for _ in range(100):
            times.record(0.099, 1)
    assert caplog.records == []


def test_slow_writes_are_logged_at_most_once_per_interval_with_how_many_there_were(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    times = WriteTimes(clock=clock, slow=0.1, log_every=60.0)
    with caplog.at_level(logging.WARNING, logger="hubbub.store"):
        times.record(0.25, 2)
        assert len(caplog.records) == 1
        assert "1 write over 100 ms" in caplog.records[0].getMessage()
        assert "slowest 250 ms" in caplog.records[0].getMessage()

        clock.now += 30
        times.record(0.4, 1)
        times.record(0.15, 1)
        assert len(caplog.records) == 1  # within the interval: counted, not logged

        clock.now += 30
        times.record(0.12, 1)
        assert len(caplog.records) == 2
        message = caplog.records[1].getMessage()
        assert "3 writes over 100 ms" in message
        assert "slowest 400 ms" in message
