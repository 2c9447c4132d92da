"""Counters behind /stats and /metrics."""

from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from hubbub.server.gc_tuning import GcPauses
from hubbub.server.histograms import cumulative_buckets
from hubbub.store import write_times


class RateMeter:
    """Events per second over a sliding window of whole seconds."""

    def __init__(self, window_seconds: int = 10) -> None:
        self._window = window_seconds
        self._buckets: deque[list[int]] = deque()

    def add(self, now: float, count: int = 1) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1][1] += count
        else:
            self._buckets.append([second, count])
            self._expire(second)

    def rate(self, now: float) -> float:
        self._expire(int(now))
        return sum(count for _, count in self._buckets) / self._window

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._window:
            self._buckets.popleft()


class Totals(Collector):
    """Counters bumped for every message and every fan-out: plain ints, read when
    scraped, because prometheus_client's Counter takes a lock on each increment."""

    def __init__(self) -> None:
        self.messages = 0
        self.deliveries = 0

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily("hubbub_messages", "Chat messages accepted", self.messages)
        yield CounterMetricFamily(
            "hubbub_deliveries", "Frames queued to connections by fan-out", self.deliveries
        )


class StoreWrites(Collector):
    """The message store's write times (`hubbub.store.write_times`), read when scraped."""

    def __init__(self, times: write_times.WriteTimes) -> None:
        self._times = times

    def collect(self) -> Iterator[Metric]:
        times = self._times
        writes = HistogramMetricFamily(
            "hubbub_store_write_seconds",
            "Time the message store took to write each batch of messages (durably, for a"
            " durable store); a message is delivered only once its batch is written",
        )
        writes.add_metric([], cumulative_buckets(write_times.BUCKETS, times.counts), times.seconds)
        yield writes
        yield CounterMetricFamily(
            "hubbub_store_written_messages", "Messages in those writes", times.messages
        )


class Metrics:
    """Prometheus metrics of one node, in a registry of its own (nodes may share a process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "hubbub_connections", "Open WebSocket connections", registry=self.registry
        )
        self.connections_opened = Counter(
            "hubbub_connections_opened", "WebSocket connections accepted", registry=self.registry
        )
        self.upgrades_refused = Counter(
            "hubbub_upgrades_refused",
            "WebSocket upgrades refused before the handshake",
            ["reason"],
            registry=self.registry,
        )
        self.totals = Totals()
        self.registry.register(self.totals)
        self.errors = Counter(
            "hubbub_errors_sent", "error events sent to clients", ["code"], registry=self.registry
        )
        self.http_publishes = Counter(
            "hubbub_http_publishes",
            "POST /rooms/{name}/messages answered, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.slow_consumers = Counter(
            "hubbub_slow_consumers",
            "Connections closed because their outbound buffer overflowed",
            registry=self.registry,
        )
        self.frames_shed = Counter(
            "hubbub_frames_shed",
            "typing and online_users frames dropped for slow consumers",
            registry=self.registry,
        )
        self.rooms = Gauge("hubbub_rooms", "Rooms with at least one member", registry=self.registry)
        self.watchers = Gauge(
            "hubbub_watchers",
            "Watchers on this node, per room watched (one connection may watch several)",
            registry=self.registry,
        )
        self.gc_pauses = GcPauses()
        self.registry.register(self.gc_pauses)
        # process_*: memory, CPU time, open and maximum file descriptors, start time
        # (read from /proc when scraped; elsewhere there are none).
        ProcessCollector(registry=self.registry)
