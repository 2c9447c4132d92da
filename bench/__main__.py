"""`python -m bench`: run Hubbub's benchmark against its peers and report ratios to Go.

Examples:
    python -m bench                          # everything, full sizes, 3 repeats
    python -m bench --quick                  # small sizes, 1 repeat: a smoke run
    python -m bench -s s1 -s j --servers go,hubbub --repeats 5
    python -m bench --from-json bench/results/bench-DATE-TIME.json   # reprint, redraw
"""

import argparse
import json
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bench import charts, machine, report, runner
from bench.pinning import split_cores
from bench.plan import DEFAULT_POSTGRESQL, FULL, QUICK, SCENARIOS, Plan, Sizes
from bench.servers import DEFAULT_SERVERS, SERVERS

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_RESULTS = BENCH_DIR / "results"
DEFAULT_CHARTS = BENCH_DIR.parent / "docs"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]) if __doc__ else None,
    )
    parser.add_argument(
        "-s",
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="scenario to run (repeatable; default: all)",
    )
    parser.add_argument(
        "--servers",
        default=",".join(DEFAULT_SERVERS),
        help=f"comma-separated servers to test (default: {','.join(DEFAULT_SERVERS)}; "
        f"known: {','.join(SERVERS)})",
    )
    parser.add_argument("--repeats", type=int, help="repeats per scenario (default 3, quick 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument(
        "--s1-rates",
        type=_rates,
        help="comma-separated S1 send rates instead of the ladder, e.g. 50,50,50 to compare"
        " CPU per delivery at one rate with more samples (a failing step does not stop them)",
    )
    parser.add_argument(
        "--s1-probes",
        type=int,
        help="S1 members that parse every frame for latency (default 50); the others only"
        " count deliveries, so the generator keeps up; 0: every member parses (the old way)",
    )
    parser.add_argument(
        "--w-rate",
        type=int,
        help="W's send rate into the room of watchers instead of 20 msg/s (quick: 20)",
    )
    parser.add_argument(
        "--w-watchers",
        type=int,
        help="watchers in W's loaded room instead of 10,000 (quick: 1,000)",
    )
    parser.add_argument(
        "--w-probes",
        type=int,
        help="watchers in W's loaded room that parse every frame for latency (default 50);"
        " the others only count deliveries; 0: every watcher parses (the old way)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="load-generator processes (default 2)"
    )
    parser.add_argument(
        "--client",
        choices=("auto", "picows", "aiohttp"),
        default="auto",
        help="client library of the load generator (default: picows when installed)",
    )
    parser.add_argument(
        "--server-cores",
        type=int,
        default=0,
        help="cores for the server under test (default: half of the usable cores)",
    )
    parser.add_argument(
        "--hubbub-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `hubbub serve` (repeatable)",
    )
    parser.add_argument(
        "--postgresql",
        default=DEFAULT_POSTGRESQL,
        metavar="URL",
        help="database for hubbub-pg and hubbub-cluster: a fresh schema per start"
        f" (default {DEFAULT_POSTGRESQL})",
    )
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument(
        "--charts-dir", type=Path, default=DEFAULT_CHARTS, help="where the PNG charts go"
    )
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="RESULTS",
        help="run nothing: print the table and draw the charts of a saved results file",
    )
    return parser.parse_args(argv)  # fmt: skip


def report_saved(path: Path, charts_dir: Path | None) -> int:
    data = json.loads(path.read_text())
    if charts_dir is not None:
        for chart in charts.write_charts(data["runs"], data["summary"], charts_dir):
            runner.log(f"chart: {chart}")
    print(report.markdown_report(data, machine.one_line(data["machine"])))
    return 0


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of rates like 50,100") from None
    if not rates or min(rates) <= 0:
        raise argparse.ArgumentTypeError("rates must be positive")
    return rates


def _sizes(args: argparse.Namespace) -> Sizes:
    sizes = QUICK if args.quick else FULL
    if args.w_rate:
        sizes = replace(sizes, w_rate=args.w_rate)
    if args.w_watchers:
        sizes = replace(sizes, w_watchers=args.w_watchers)
    if args.s1_probes is not None:
        if args.s1_probes < 0:
            raise SystemExit("--s1-probes must be 0 or more")
        sizes = replace(sizes, s1_probes=args.s1_probes)
    if args.w_probes is not None:
        if args.w_probes < 0:
            raise SystemExit("--w-probes must be 0 or more")
        sizes = replace(sizes, w_probes=args.w_probes)
    if not args.s1_rates:
        return sizes
    return replace(sizes, s1_rates=args.s1_rates, s1_stop_on_failure=False)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.from_json:
        return report_saved(args.from_json, None if args.no_charts else args.charts_dir)
    servers = tuple(name.strip() for name in args.servers.split(",") if name.strip())
    unknown = [name for name in servers if name not in SERVERS]
    if unknown:
        print(f"unknown servers: {', '.join(unknown)}; known: {', '.join(SERVERS)}")
        return 2
    args.results_dir.mkdir(parents=True, exist_ok=True)
    plan = Plan(
        scenarios=tuple(args.scenario or SCENARIOS),
        servers=servers,
        repeats=args.repeats or (1 if args.quick else 3),
        sizes=_sizes(args),
        workers=args.workers,
        quick=args.quick,
        client=args.client,
        hubbub_args=tuple(args.hubbub_arg),
        log_path=args.results_dir / "servers.log",
        postgresql=args.postgresql,
    )
    split = split_cores(args.server_cores)
    described = machine.describe(split)
    command = "python -m bench " + shlex.join(argv) if argv else "python -m bench"
    data = runner.run_plan(plan, split, command.strip(), described)
    path = runner.save(data, args.results_dir)
    runner.log(f"raw results: {path}")
    if not args.no_charts:
        for chart in charts.write_charts(data["runs"], data["summary"], args.charts_dir):
            runner.log(f"chart: {chart}")
    print(report.markdown_report(data, machine.one_line(described)))
    failed = [run for run in data["runs"] if "error" in run]
    return 1 if failed and len(failed) == len(data["runs"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
