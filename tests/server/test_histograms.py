"""Per-bucket counts become Prometheus's cumulative buckets."""

from hubbub.server.histograms import cumulative_buckets


def test_buckets_accumulate_and_the_last_is_infinite() -> None:
    assert cumulative_buckets((0.1, 1.0), [2, 0, 3]) == [("0.1", 2), ("1.0", 2), ("+Inf", 5)]


def test_no_counts_give_zero_buckets() -> None:
    assert cumulative_buckets((0.5,), [0, 0]) == [("0.5", 0), ("+Inf", 0)]
