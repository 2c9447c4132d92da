"""Run the plan: every repeat, every scenario, every server, interleaved so noise spreads evenly."""

import json
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import client, scenarios, toolchain
from bench.pinning import CoreSplit, pin_current_process
from bench.plan import Plan
from bench.servers import SERVERS
from bench.summary import generator_load, other_load, summarize

ScenarioRun = Callable[[str, Plan, CoreSplit], dict[str, Any]]


def _runs_for(plan: Plan) -> list[tuple[str, ScenarioRun]]:
    """The scenario runs a plan needs; S2 and S3 share one crowd run."""
    wanted = set(plan.scenarios)
    runs: list[tuple[str, ScenarioRun]] = []
    if "s1" in wanted:
        runs.append(("s1", scenarios.run_s1))
    if wanted & {"s2", "s3"}:
        with_load = "s2" in wanted
        runs.append(("crowd", lambda name, p, s: scenarios.run_crowd(name, p, s, with_load)))
    if "j" in wanted:
        runs.append(("j", scenarios.run_j))
    if "z" in wanted:
        runs.append(("z", scenarios.run_z))
    if "w" in wanted:
        runs.append(("w", scenarios.run_w))
    return runs


def runs_scenario(server: str, scenario: str) -> bool:
    """W needs watchers (protocol 1.1), which only Hubbub has."""
    return scenario != "w" or server.startswith("hubbub")


def raise_open_file_limit() -> int:
    """10,000 connections need more descriptors than the usual soft limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _headline(scenario: str, result: dict[str, Any]) -> str:
    if scenario == "s1":
        return (
            f"max rate {result['max_rate']} msg/s, "
            f"{result['cpu_us_per_delivery'] or 0:.2f} us CPU/delivery, "
            f"{len(result['steps'])} steps, limited by {result['limited_by']}"
        )
    if scenario == "crowd":
        s2 = result.get("s2", {})
        return (
            f"{result['connections_made']} conns, {result['s3']['bytes_per_connection']:.0f} B/conn"
            + (
                f", S2 ratio {s2['delivery_ratio']:.4f} p50 {s2['p50_ms']:.1f} "
                f"p99 {s2['p99_ms']:.1f} max {s2['max_ms']:.1f} ms"
                if s2
                else ""
            )
        )
    if scenario == "j":
        return f"{result['seconds']} s, settled {result['settled']}/{result['members']}"
    if scenario == "z":
        return f"CPU compressed/uncompressed {result['cpu_ratio_compressed']}"
    if scenario == "w":
        join, step = result["join"], result["load"]["step"]
        return (
            f"{join['acked']}/{join['watchers']} watchers acked, "
            f"{join['frames_per_watcher']} frames each, {join['presence_frames']} presence; "
            f"{result['load']['watchers_connected']} watchers at {step['offered_rate']} msg/s: "
            f"ratio {step['delivery_ratio']:.4f} p50 {step['p50_ms']:.1f} p99 {step['p99_ms']:.1f} "
            f"ms {step['server_cpu_us_per_delivery'] or 0:.2f} us CPU/delivery, generator "
            f"{step['generator_cpu_share']:.0%} ({step['counting_members']} counting members)"
        )
    return ""


def run_plan(plan: Plan, split: CoreSplit, command: str, machine: dict[str, Any]) -> dict[str, Any]:
    raise_open_file_limit()
    if split.generator:
        pin_current_process(split.generator)
    ready: list[str] = []
    skipped: dict[str, str] = {}
    for name in plan.servers:
        log(f"preparing {name}")
        try:
            SERVERS[name].prepare()
            ready.append(name)
        except (toolchain.ToolchainError, OSError, subprocess.SubprocessError) as error:
            skipped[name] = str(error)
            log(f"  SKIPPING {name}: {error}")
    runs: list[dict[str, Any]] = []
    for repeat in range(plan.repeats):
        for scenario, run in _runs_for(plan):
            for server in ready:
                if not runs_scenario(server, scenario):
                    continue
                log(f"repeat {repeat + 1}/{plan.repeats}: {scenario} on {server}")
                started = time.monotonic()
                record: dict[str, Any] = {"scenario": scenario, "server": server, "repeat": repeat}
                try:
                    record["result"] = run(server, plan, split)
                    log(f"  {_headline(scenario, record['result'])}")
                except Exception as error:
                    record["error"] = f"{type(error).__name__}: {error}"
                    log(f"  FAILED {record['error']}")
                    traceback.print_exc()
                record["seconds"] = time.monotonic() - started
                runs.append(record)
    plan_record = asdict(plan)
    plan_record["log_path"] = str(plan.log_path) if plan.log_path else None
    return {
        "command": command,
        "machine": machine,
        "plan": plan_record,
        "client_library": client.library_for(False, plan.client),
        "skipped_servers": skipped,
        "runs": runs,
        "summary": summarize(runs),
        "other_cpu_share": other_load(runs),
        "generator_peak_cpu_share": generator_load(runs),
    }


def save(data: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path
