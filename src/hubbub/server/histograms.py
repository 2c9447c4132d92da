"""Prometheus histograms from counts kept without a lock (see `GcPauses`, `WriteTimes`)."""

from collections.abc import Sequence


def cumulative_buckets(bounds: Sequence[float], counts: Sequence[int]) -> list[tuple[str, int]]:
    """Per-bucket counts (the last one above every bound) as Prometheus's cumulative
    buckets, each named by its upper bound ("+Inf" for the last)."""
    buckets, total = [], 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        total += count
        buckets.append((repr(bound) if bound != float("inf") else "+Inf", total))
    return buckets
