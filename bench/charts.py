"""PNG charts of a run (matplotlib, no display needed)."""

from collections import defaultdict
from pathlib import Path
from statistics import median
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from bench.report import order_servers
from bench.summary import METRICS

Run = dict[str, Any]


def _s1_curves(runs: list[Run]) -> dict[str, list[tuple[float, float, float]]]:
    """server -> [(offered rate, median deliveries/s, median p99 ms)] over the repeats."""
    samples: dict[str, dict[float, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for run in runs:
        if run["scenario"] != "s1" or "result" not in run:
            continue
        for step in run["result"]["steps"]:
            samples[run["server"]][step["offered_rate"]].append(
                (step["deliveries_per_second"], step["p99_ms"])
            )
    return {
        server: [
            (rate, median(p[0] for p in points), median(p[1] for p in points))
            for rate, points in sorted(by_rate.items())
        ]
        for server, by_rate in samples.items()
    }


def chart_s1(runs: list[Run], path: Path) -> bool:
    curves = _s1_curves(runs)
    if not curves:
        return False
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for server in order_servers(list(curves)):
        points = curves[server]
        rates = [p[0] for p in points]
        left.plot(rates, [p[1] for p in points], marker="o", label=server)
        right.plot(rates, [p[2] for p in points], marker="o", label=server)
    left.set(xlabel="messages/s sent into the room", ylabel="deliveries/s", title="S1 throughput")
    right.set(xlabel="messages/s sent into the room", ylabel="p99 latency (ms)", yscale="log")
    right.axhline(100, color="grey", linestyle="--", linewidth=1)
    right.set_title("S1 p99 latency (limit 100 ms dashed)")
    tried = sorted({point[0] for points in curves.values() for point in points})
    for axes in (left, right):
        axes.set_xscale("log")
        axes.minorticks_off()
        axes.set_xticks(tried, [f"{rate:g}" for rate in tried])
        axes.grid(True, alpha=0.3)
        axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def _bars(
    summary: dict[str, dict[str, float | None]],
    keys: list[str],
    title: str,
    ylabel: str,
    path: Path,
    log: bool = False,
) -> bool:
    labels = {metric.key: metric.label for metric in METRICS}
    servers = order_servers(sorted({s for key in keys for s in summary.get(key, {})}))
    if not servers or all(summary.get(key, {}).get(s) is None for key in keys for s in servers):
        return False
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    width = 0.8 / len(keys)
    for offset, key in enumerate(keys):
        values = [summary.get(key, {}).get(server) or 0.0 for server in servers]
        positions = [index + offset * width for index in range(len(servers))]
        axes.bar(positions, values, width, label=labels[key])
    axes.set_xticks([index + width * (len(keys) - 1) / 2 for index in range(len(servers))])
    axes.set_xticklabels(servers)
    axes.set(title=title, ylabel=ylabel)
    if log:
        axes.set_yscale("log")
    axes.grid(True, axis="y", alpha=0.3)
    if len(keys) > 1:
        axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


BAR_CHARTS: tuple[tuple[str, list[str], str, str, bool], ...] = (
    ("bench-s2.png", ["s2_p50", "s2_p99", "s2_max"], "S2 latency", "milliseconds (log)", True),
    ("bench-s3.png", ["s3_bytes"], "S3 memory per idle joined connection", "bytes", False),
    ("bench-j.png", ["j_seconds"], "J: until all have the final online_users", "seconds", False),
    (
        "bench-z.png",
        ["z_plain_cpu_us", "z_deflate_cpu_us"],
        "Z server CPU per delivery",
        "us",
        False,
    ),
)


def write_charts(
    runs: list[Run], summary: dict[str, dict[str, float | None]], directory: Path
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if chart_s1(runs, directory / "bench-s1.png"):
        written.append(directory / "bench-s1.png")
    for name, keys, title, ylabel, log in BAR_CHARTS:
        if _bars(summary, keys, title, ylabel, directory / name, log):
            written.append(directory / name)
    return written
