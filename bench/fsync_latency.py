"""How long an fsync takes on the disk that holds the SQLite store.

    python -m bench.fsync_latency [--dir ./data] [--count 1000] [--interval 0.005]

With `--sqlite-synchronous full` (the default) every message waits for its
commit's fsync before anyone sees it, so this is the part of delivery latency
the server does not control. It rewrites one 1 KiB block of a scratch file in
`--dir` and fsyncs it, `--count` times, `--interval` seconds apart (as messages
arriving one by one), and prints the distribution. Run it beside the benchmark
to tell a slow disk from a slow server.
"""

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

BLOCK = b"x" * 1024
BLOCKS = 64


def measure(directory: Path, count: int, interval: float) -> list[float]:
    """Seconds each fsync took, sorted."""
    directory.mkdir(parents=True, exist_ok=True)
    took: list[float] = []
    with tempfile.NamedTemporaryFile(dir=directory, prefix="fsync-latency-") as scratch:
        descriptor = scratch.fileno()
        for index in range(count):
            os.pwrite(descriptor, BLOCK, (index % BLOCKS) * len(BLOCK))
            started = time.perf_counter()
            os.fsync(descriptor)
            took.append(time.perf_counter() - started)
            time.sleep(interval)
    return sorted(took)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, default=Path("data"))
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between fsyncs")
    args = parser.parse_args(argv)
    took = measure(args.dir, args.count, args.interval)

    def at(share: float) -> float:
        return took[min(len(took) - 1, int(share * len(took)))] * 1e3

    print(
        f"fsync of 1 KiB in {args.dir} ({args.count}, {args.interval * 1e3:g} ms apart):"
        f" p50 {at(0.5):.2f} ms, p90 {at(0.9):.2f}, p99 {at(0.99):.2f},"
        f" p99.9 {at(0.999):.2f}, max {took[-1] * 1e3:.2f}"
    )


if __name__ == "__main__":
    main()
