"""From raw runs to one figure per (metric, server): the median over the repeats."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.latency import median_of

Run = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    scenario: str
    """Which run holds it: s1, crowd (S2 and S3), j or z."""
    label: str
    better: str
    """'higher' or 'lower'."""
    read: Callable[[dict[str, Any]], Any]


def _get(*path: str) -> Callable[[dict[str, Any]], Any]:
    def read(result: dict[str, Any]) -> Any:
        value: Any = result
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    return read


METRICS: tuple[Metric, ...] = (
    Metric("s1_max_rate", "s1", "S1 highest rate passing (msg/s into 1 room)", "higher",
           _get("max_rate")),
    Metric("s1_deliveries_per_s", "s1", "S1 deliveries/s at that rate", "higher",
           _get("deliveries_per_second")),
    Metric("s1_cpu_us", "s1", "S1 server CPU us per delivery at that rate", "lower",
           _get("cpu_us_per_delivery")),
    Metric("s1_peak_rss_mib", "s1", "S1 server peak RSS (MiB)", "lower",
           lambda r: _mib(r.get("server_peak_rss_bytes"))),
    Metric("s2_ratio", "crowd", "S2 delivery ratio", "higher", _get("s2", "delivery_ratio")),
    Metric("s2_p50", "crowd", "S2 latency p50 (ms)", "lower", _get("s2", "p50_ms")),
    Metric("s2_p99", "crowd", "S2 latency p99 (ms)", "lower", _get("s2", "p99_ms")),
    Metric("s2_max", "crowd", "S2 latency max (ms)", "lower", _get("s2", "max_ms")),
    Metric("s2_cpu_us", "crowd", "S2 server CPU us per delivery", "lower",
           _get("s2", "server_cpu_us_per_delivery")),
    Metric("s3_bytes", "crowd", "S3 server bytes per idle joined connection", "lower",
           _get("s3", "bytes_per_connection")),
    Metric("crowd_peak_rss_mib", "crowd", "S2/S3 server peak RSS (MiB)", "lower",
           lambda r: _mib(r.get("server_peak_rss_bytes"))),
    Metric("j_seconds", "j", "J seconds until all have the final online_users", "lower",
           _get("seconds")),
    Metric("j_dropped", "j", "J members the server disconnected", "lower",
           _get("closed_by_server")),
    Metric("j_frames", "j", "J frames received by the joiners", "lower",
           _get("frames_received")),
    Metric("z_plain_cpu_us", "z", "Z server CPU us per delivery, uncompressed", "lower",
           _get("uncompressed", "step", "server_cpu_us_per_delivery")),
    Metric("z_deflate_cpu_us", "z", "Z server CPU us per delivery, permessage-deflate", "lower",
           _get("compressed", "step", "server_cpu_us_per_delivery")),
    Metric("z_cpu_ratio", "z", "Z CPU compressed / uncompressed", "lower",
           _get("cpu_ratio_compressed")),
    Metric("w_join_frames", "w", "W frames per watcher while watchers join at once", "lower",
           _get("join", "frames_per_watcher")),
    Metric("w_join_presence", "w", "W presence frames to anyone while watchers join", "lower",
           _get("join", "presence_frames")),
    Metric("w_join_seconds", "w", "W seconds until every joining watcher has its ack", "lower",
           _get("join", "seconds")),
    Metric("w_ratio", "w", "W delivery ratio, one room of watchers", "higher",
           _get("load", "step", "delivery_ratio")),
    Metric("w_p50", "w", "W latency p50 (ms)", "lower", _get("load", "step", "p50_ms")),
    Metric("w_p99", "w", "W latency p99 (ms)", "lower", _get("load", "step", "p99_ms")),
    Metric("w_cpu_us", "w", "W server CPU us per delivery", "lower",
           _get("load", "step", "server_cpu_us_per_delivery")),
    Metric("w_peak_rss_mib", "w", "W server peak RSS (MiB)", "lower",
           lambda r: _mib(_get("load", "server_peak_rss_bytes")(r))),
)  # fmt: skip


def _mib(value: Any) -> float | None:
    return value / 2**20 if isinstance(value, int | float) else None


def summarize(runs: list[Run]) -> dict[str, dict[str, float | None]]:
    """{metric key: {server: median over that server's repeats}}."""
    table: dict[str, dict[str, float | None]] = {}
    servers = sorted({run["server"] for run in runs})
    for metric in METRICS:
        row: dict[str, float | None] = {}
        for server in servers:
            values = [
                metric.read(run["result"])
                for run in runs
                if run["server"] == server
                and run["scenario"] == metric.scenario
                and "result" in run
            ]
            row[server] = median_of(values)
        table[metric.key] = row
    return table


def _steps(result: dict[str, Any]) -> list[dict[str, Any]]:
    steps = list(result.get("steps", []))
    if "frames_received" in result:  # scenario J: the join burst is its one measured step
        steps.append(result)
    steps += [result[key] for key in ("s2", "step") if isinstance(result.get(key), dict)]
    for arm in ("uncompressed", "compressed", "load"):
        if isinstance(result.get(arm), dict):
            steps += _steps(result[arm])
    return steps


def other_load(runs: list[Run]) -> float | None:
    """Median share of the machine's CPU that other processes used during measured steps."""
    shares = [
        step.get("other_cpu_share")
        for run in runs
        if "result" in run
        for step in _steps(run["result"])
    ]
    return median_of(shares)


def generator_load(runs: list[Run]) -> float | None:
    """Highest share of its cores the load generator used in any measured step."""
    shares = [
        step["generator_cpu_share"]
        for run in runs
        if "result" in run
        for step in _steps(run["result"])
        if isinstance(step.get("generator_cpu_share"), int | float)
    ]
    return max(shares) if shares else None
