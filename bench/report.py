"""The markdown table of figures and ratios to the Go peer, for docs/benchmarks.md."""

from typing import Any

from bench.summary import METRICS

REFERENCE = "go"


def _format(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def _cell(value: float | None, reference: float | None) -> str:
    if value is None:
        return "n/a"
    if reference:
        return f"{_format(value)} ({value / reference:.2f}x)"
    return _format(value)


def order_servers(servers: list[str]) -> list[str]:
    """The reference first, Hubbub next, then the others by name."""
    first = (REFERENCE, "hubbub", "hubbub-memory")
    rest = sorted(name for name in servers if name not in first)
    return [name for name in first if name in servers] + rest


def markdown_table(summary: dict[str, dict[str, float | None]]) -> str:
    servers = order_servers(sorted({server for row in summary.values() for server in row}))
    lines = [
        "| metric | better | " + " | ".join(servers) + " |",
        "|---|---|" + "---:|" * len(servers),
    ]
    for metric in METRICS:
        row = summary.get(metric.key, {})
        if all(row.get(server) is None for server in servers):
            continue
        reference = row.get(REFERENCE)
        cells = [_cell(row.get(server), reference) for server in servers]
        lines.append(f"| {metric.label} | {metric.better} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(data: dict[str, Any], machine_line: str) -> str:
    plan = data["plan"]
    lines = [
        f"Command: `{data['command']}`",
        "",
        f"Machine: {machine_line}",
        "",
        f"Repeats: {plan['repeats']} (medians shown); "
        f"sizes: {'quick' if plan['quick'] else 'full'}; "
        f"load generator: {plan['workers']} processes, client {data['client_library']}.",
        "Cells: the figure, then its ratio to the Go peer's figure from the same run.",
        _load_line(data),
        _s1_limits(data),
        *[f"Not run: {name} ({why})." for name, why in data.get("skipped_servers", {}).items()],
        *[
            f"Failed: {run['scenario']} on {run['server']}, repeat {run['repeat'] + 1}: "
            f"{run['error']}"
            for run in data["runs"]
            if "error" in run
        ],
        "",
        markdown_table(data["summary"]),
    ]
    return "\n".join(line for line in lines if line is not None)


def _percent(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "n/a"


def _load_line(data: dict[str, Any]) -> str:
    return (
        "During the measured steps other processes used a median "
        f"{_percent(data.get('other_cpu_share'))} of the machine's CPU, and the load generator "
        f"at most {_percent(data.get('generator_peak_cpu_share'))} of its own cores."
    )


def _s1_limits(data: dict[str, Any]) -> str | None:
    """Which side stopped each S1 ladder: the server, the generator, or no rate failed."""
    limits: dict[str, list[str]] = {}
    for run in data["runs"]:
        if run["scenario"] == "s1":
            limits.setdefault(run["server"], []).append(
                str(run.get("result", {}).get("limited_by", "error"))
            )
    if not limits:
        return None
    parts = [f"{server}: {', '.join(values)}" for server, values in sorted(limits.items())]
    return "S1 ladders stopped by (per repeat) " + "; ".join(parts) + "."
