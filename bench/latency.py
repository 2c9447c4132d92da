"""Delivery and latency figures from the workers' raw samples."""

from array import array
from collections.abc import Iterable, Sequence
from statistics import median
from typing import Any


def merge_latencies(chunks: Iterable[bytes]) -> list[int]:
    """Concatenate the workers' latency arrays (nanoseconds) and sort them."""
    merged = array("q")
    for chunk in chunks:
        merged.frombytes(chunk)
    return sorted(merged)


def percentile(ordered: Sequence[int], fraction: float) -> float:
    """Nearest-rank percentile of sorted samples, in seconds; 0 when there are none."""
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank] / 1e9


def latency_summary(ordered: Sequence[int]) -> dict[str, float]:
    return {
        "p50_ms": percentile(ordered, 0.50) * 1e3,
        "p90_ms": percentile(ordered, 0.90) * 1e3,
        "p99_ms": percentile(ordered, 0.99) * 1e3,
        "max_ms": (ordered[-1] / 1e6) if ordered else 0.0,
    }


def median_of(values: Iterable[Any]) -> float | None:
    """Median of the values that are numbers; None when there is none."""
    numbers = [value for value in values if isinstance(value, int | float)]
    return float(median(numbers)) if numbers else None
