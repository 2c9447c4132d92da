"""`python -m bench.s1_steps RESULTS.json...`: every S1 step of saved runs, and per file the
median of each server's steps with its ratio to Go's (and to `--baseline`'s) in that file.

For runs like `python -m bench -s s1 --s1-rates 50,50,50`, where each step is a sample
of the same rate: the run's own table keeps one step per repeat, this keeps them all
(a retried step's first try too). Cluster runs also show the latency of the members on
each node and the CPU of Redis and of PostgreSQL's backends per delivery.

`--per-rate` takes the medians per server and rate (`--s1-rates 50,100,50,100`: each
rate against Go's at the same rate); `--max-other 0.3` keeps only the steps during which
other processes used at most 30% of the machine (a shared machine's noisy minutes out).
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bench.latency import median_of

Step = dict[str, Any]
REFERENCE = "go"


def steps_of(result: dict[str, Any]) -> list[Step]:
    found: list[Step] = []
    for step in result.get("steps", []):
        if isinstance(step.get("first_try"), dict):
            found.append(step["first_try"])
        found.append(step)
    return found


def _figures(steps: list[Step]) -> dict[str, float | None]:
    figures = {
        "cpu_us": median_of([s["server_cpu_us_per_delivery"] for s in steps]),
        "p50_ms": median_of([s["p50_ms"] for s in steps]),
        "p99_ms": median_of([s["p99_ms"] for s in steps]),
        "redis_us": median_of([s.get("redis_cpu_us_per_delivery") for s in steps]),
        "postgresql_us": median_of([s.get("postgresql_cpu_us_per_delivery") for s in steps]),
        "other": median_of([s["other_cpu_share"] for s in steps]),
        "ratio": min((s["delivery_ratio"] for s in steps), default=None),
    }
    for node in range(max((len(s.get("latency_per_node", [])) for s in steps), default=0)):
        per_node = [s["latency_per_node"][node] for s in steps if "latency_per_node" in s]
        figures[f"node{node}_p50_ms"] = median_of([n["p50_ms"] for n in per_node])
        figures[f"node{node}_p99_ms"] = median_of([n["p99_ms"] for n in per_node])
    return figures


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:.2f}x" if value is not None and reference else "n/a"


def _difference(value: float | None, reference: float | None) -> str:
    return "n/a" if value is None or reference is None else f"{value - reference:+.1f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def report(
    path: Path,
    baseline: str,
    per_rate: bool = False,
    max_other: float | None = None,
    list_steps: bool = True,
) -> str:
    data = json.loads(path.read_text())
    per_server: dict[str, list[Step]] = {}
    for run in data["runs"]:
        if run["scenario"] == "s1" and "result" in run:
            per_server.setdefault(run["server"], []).extend(steps_of(run["result"]))
    lines = [f"`{path.name}`: `{data['command']}`", ""]
    if list_steps:
        lines += _step_lines(per_server)
    if max_other is not None:
        per_server = {
            server: [s for s in steps if s["other_cpu_share"] <= max_other]
            for server, steps in per_server.items()
        }
        lines.append(f"Only the steps during which other processes used at most {max_other:.0%}.")
    if per_rate:
        return "\n".join([*lines, *_rate_lines(per_server, baseline)])
    return "\n".join([*lines, *_median_lines(per_server, baseline)])


def _step_lines(per_server: dict[str, list[Step]]) -> list[str]:
    lines = ["| server | step | rate | us/delivery | p50 ms | p99 ms | delivered | other CPU |"]
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
    for server, steps in per_server.items():
        for index, s in enumerate(steps):
            lines.append(
                f"| {server} | {index} | {s['offered_rate']} | "
                f"{_number(s['server_cpu_us_per_delivery'])} | {_number(s['p50_ms'], 1)} | "
                f"{_number(s['p99_ms'], 1)} | {s['delivery_ratio']:.4f} | "
                f"{s['other_cpu_share']:.0%} |"
            )
    return [*lines, ""]


def _rate_lines(per_server: dict[str, list[Step]], baseline: str) -> list[str]:
    """Medians per server and rate, each against Go's and the baseline's at that rate."""
    rates = sorted({s["offered_rate"] for steps in per_server.values() for s in steps})
    lines = [
        "",
        f"Medians per rate; ratios to {REFERENCE} and to {baseline} at the same rate:",
        "",
        "| rate | server | steps | us/delivery | /go | /base | p50 ms | /go | /base "
        "| p99 ms | /go | /base | other CPU |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in rates:
        at_rate = {
            server: [s for s in steps if s["offered_rate"] == rate]
            for server, steps in per_server.items()
        }
        medians = {server: _figures(steps) for server, steps in at_rate.items() if steps}
        reference = medians.get(REFERENCE, {})
        base = medians.get(baseline, {})
        for server, m in medians.items():
            cells = [f"{rate:g}", server, str(len(at_rate[server])), _number(m["cpu_us"])]
            cells += [_ratio(m["cpu_us"], reference.get("cpu_us"))]
            cells += [_ratio(m["cpu_us"], base.get("cpu_us"))]
            for key in ("p50_ms", "p99_ms"):
                cells += [_number(m[key], 1), _ratio(m[key], reference.get(key))]
                cells += [_ratio(m[key], base.get(key))]
            cells.append(_percent(m["other"]))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def _median_lines(per_server: dict[str, list[Step]], baseline: str) -> list[str]:
    lines: list[str] = []
    medians = {server: _figures(steps) for server, steps in per_server.items() if steps}
    reference = medians.get(REFERENCE, {})
    base = medians.get(baseline, {})
    lines += [
        f"Medians of the steps; ratios to {REFERENCE} and to {baseline} in this file:",
        "",
    ]
    lines.append(
        "| server | steps | us/delivery | /go | /base | p50 ms | /go | p99 ms | /go "
        "| added p50 | added p99 | Redis us/del | PostgreSQL us/del | other CPU |"
    )
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for server, m in medians.items():
        added = [_difference(m.get(key), base.get(key)) for key in ("p50_ms", "p99_ms")]
        lines.append(
            f"| {server} | {len(per_server[server])} | {_number(m['cpu_us'])} | "
            f"{_ratio(m['cpu_us'], reference.get('cpu_us'))} | "
            f"{_ratio(m['cpu_us'], base.get('cpu_us'))} | {_number(m['p50_ms'], 1)} | "
            f"{_ratio(m['p50_ms'], reference.get('p50_ms'))} | {_number(m['p99_ms'], 1)} | "
            f"{_ratio(m['p99_ms'], reference.get('p99_ms'))} | {added[0]} | {added[1]} | "
            f"{_number(m['redis_us'])} | {_number(m['postgresql_us'])} | "
            f"{_percent(m['other'])} |"
        )
    for server, m in medians.items():
        count = sum(1 for key in m if key.startswith("node") and key.endswith("_p50_ms"))
        if count > 1:
            per_node = ", ".join(
                f"node {n}: p50 {_number(m[f'node{n}_p50_ms'], 1)}"
                f" / p99 {_number(m[f'node{n}_p99_ms'], 1)} ms"
                for n in range(count)
            )
            lines += ["", f"{server}, members by node (senders on node 0): {per_node}"]
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.s1_steps", description=__doc__)
    parser.add_argument("results", type=Path, nargs="+")
    parser.add_argument("--baseline", default="hubbub", help="second reference (default hubbub)")
    parser.add_argument("--per-rate", action="store_true", help="medians per server and rate")
    parser.add_argument(
        "--max-other",
        type=float,
        metavar="SHARE",
        help="only steps in which other processes used at most SHARE (0..1) of the machine",
    )
    parser.add_argument("--no-steps", action="store_true", help="medians only, no step list")
    args = parser.parse_args(argv)
    print(
        "\n\n".join(
            report(path, args.baseline, args.per_rate, args.max_other, not args.no_steps)
            for path in args.results
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
