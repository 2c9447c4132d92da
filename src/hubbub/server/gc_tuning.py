"""Garbage-collector settings for a server that holds many long-lived objects.

CPython's full collection walks every object it tracks, and nothing else runs
meanwhile. At 10,000 connections that is about 700,000 objects and a pause of
200-300 ms on the benchmark machine. With the default thresholds (700, 10, 10)
a growing heap gets a full collection each time it grows by a quarter, so
while connections arrive, and now and then under steady traffic, every
delivery in flight waits for one (scenario S2 with the memory store: p99
199 ms, max 276 ms; `docs/benchmarks.md`).

`tune_for_serving` makes two changes once the server is up:

- What is alive after start-up (modules, classes, the application) is
  frozen: no collection walks it again.
- The youngest generation is collected after 50,000 new objects rather than
  700. Chat traffic frees almost everything it allocates by reference
  counting, so under traffic the young generation hardly fills; fewer young
  collections means fewer survivors promoted, and so far fewer full
  collections. The price is paid while connections arrive: each leaves about
  40 tracked objects alive, so every 1,300 or so arrivals fill the young
  generation with survivors, and walking them stops the loop for 20-30 ms
  (`python -m bench.gc_arrivals`; figures in `docs/benchmarks.md`).

Cycles among long-lived objects are still collected, by the full collections
that remain. `GcPauses` records every collection's pause in /metrics.
"""

import gc
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hubbub.server.histograms import cumulative_buckets

THRESHOLDS = (50_000, 20, 10)
"""gc.set_threshold arguments: objects before a young collection, young collections
before a middle one, middle ones before a full one is considered."""
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds, in seconds, of the pause histogram's buckets."""


def tune_for_serving() -> None:
    """Freeze what start-up left alive and raise the young generation's threshold."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)


class GcPauses(Collector):
    """Times every collection of this process (`gc.callbacks`) for /metrics.

    The callback runs wherever a collection starts, possibly inside another
    metric's locked update, so it takes no lock: it counts into plain lists,
    which the registry reads at scrape time.
    """

    def __init__(self) -> None:
        self._started = 0.0
        self._buckets = [[0] * (len(BUCKETS) + 1) for _ in range(3)]
        """Per generation, pauses per bucket (the last one: above every bound)."""
        self._sums = [0.0, 0.0, 0.0]

    def watch(self) -> None:
        if self._on_collection not in gc.callbacks:
            gc.callbacks.append(self._on_collection)

    def stop(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self._buckets[generation][bisect_left(BUCKETS, pause)] += 1
        self._sums[generation] += pause

    def collect(self) -> Iterator[Metric]:
        pauses = HistogramMetricFamily(
            "hubbub_gc_pause_seconds",
            "Garbage-collector pauses, by generation collected",
            labels=["generation"],
        )
        for generation, counts in enumerate(self._buckets):
            buckets = cumulative_buckets(BUCKETS, counts)
            pauses.add_metric([str(generation)], buckets, self._sums[generation])
        yield pauses
        yield GaugeMetricFamily(
            "hubbub_gc_frozen_objects",
            "Objects frozen after start-up, which no collection walks",
            value=gc.get_freeze_count(),
        )
