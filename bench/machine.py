"""A description of the machine and toolchains, for the results file and docs/benchmarks.md."""

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

from bench.pinning import CoreSplit


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    with open("/proc/meminfo") as meminfo:
        kib = int(meminfo.readline().split()[1])
    return round(kib / 1024**2, 1)


def _tool_version(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (done.stdout or done.stderr).strip().splitlines()[0] if done.returncode == 0 else None


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe(split: CoreSplit) -> dict[str, Any]:
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "os": platform.freedesktop_os_release().get("PRETTY_NAME", platform.system()),
        "python": platform.python_version(),
        "go": _tool_version(["go", "version"]),
        "node": _tool_version(["node", "--version"]),
        "packages": {
            name: _package_version(name)
            for name in ("aiohttp", "picows", "uvloop", "orjson", "fastapi", "uvicorn")
        },
        "server_cores": sorted(split.server),
        "generator_cores": sorted(split.generator),
        "isolated": split.isolated,
        "load_average": os.getloadavg(),
    }


def one_line(machine: dict[str, Any]) -> str:
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['os']}, Linux {machine['kernel']}, Python {machine['python']}, "
        f"{machine['go']}, Node {machine['node']}; server on cores {machine['server_cores']}, "
        f"load generator on {machine['generator_cores']}"
    )
