"""CPU per stored message at a steady rate: the memory store, and SQLite per commit delay
(with `synchronous = FULL`, the default) and with `synchronous = NORMAL`; PostgreSQL too
when given `--postgresql URL` (a database on this machine: its backends' CPU is read
from /proc and shown apart, since it is spent outside this process).

    python -m bench.store_cost [--rate 400] [--seconds 5] [--repeats 3] [--delays 0,0.01]
        [--postgresql postgresql://postgres@127.0.0.1:5432/postgres]

S1 sends a few hundred messages a second into one room; what storing them costs
is hidden there among 1,000 deliveries per message, and the load generator's
noise is larger than it. This drives a store directly, in this process, one
message every 1/rate seconds (each on its own timer, as messages from different
clients arrive). It reads the process's CPU time (every thread: the event loop,
SQLite's writer and its checkpointer) and each message's time until stored
(`perf_counter`: uvloop's clock counts whole milliseconds). The configurations
take turns in every repeat, so a noisy neighbour hits them alike.
"""

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import uvloop

from bench.postgres import application_name, backend_cpu_seconds, fresh_schema
from hubbub.store.base import Appended, MessageStore
from hubbub.store.memory import MemoryStore
from hubbub.store.postgres import PostgresStore
from hubbub.store.sqlite import SqliteStore

CONTENT = "x" * 100
WAIT_SECONDS = 30.0


@dataclass
class Sample:
    cpu_us_per_message: float
    p50_ms: float
    p99_ms: float
    server_cpu_us_per_message: float = 0.0
    """PostgreSQL's backends (other processes)."""


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _paced(store: MessageStore, rate: float, seconds: float) -> Sample:
    loop = asyncio.get_running_loop()
    count = int(rate * seconds)
    waits: list[float] = []
    all_stored = asyncio.Event()

    def stored(submitted_at: float, outcome: Appended | Exception) -> None:
        if isinstance(outcome, Exception):
            raise outcome
        waits.append(time.perf_counter() - submitted_at)
        if len(waits) == count:
            all_stored.set()

    def submit(index: int) -> None:
        now = time.perf_counter()
        timestamp_ms = int(time.time() * 1000)
        store.submit("bench", "poster", CONTENT, timestamp_ms, None, lambda o: stored(now, o))
        if index + 1 < count:
            loop.call_at(started + (index + 1) / rate, submit, index + 1)

    cpu_before = _cpu_seconds()
    started = loop.time()
    submit(0)
    async with asyncio.timeout(seconds + WAIT_SECONDS):
        await all_stored.wait()
    cpu = _cpu_seconds() - cpu_before
    waits.sort()
    return Sample(
        cpu * 1e6 / count, waits[len(waits) // 2] * 1e3, waits[int(len(waits) * 0.99)] * 1e3
    )


Configuration = tuple[str, float, str]
"""Store, commit delay, synchronous level (SQLite's)."""


async def measure(
    configuration: Configuration, rate: float, seconds: float, postgresql: str
) -> Sample:
    name, delay, synchronous = configuration
    if name == "postgresql":
        return await _measure_postgresql(postgresql, rate, seconds)
    with tempfile.TemporaryDirectory() as data:
        store: MessageStore = (
            MemoryStore()
            if name == "memory"
            else SqliteStore(Path(data) / "hubbub.db", commit_delay=delay, synchronous=synchronous)
        )
        await store.open()
        try:
            return await _paced(store, rate, seconds)
        finally:
            await store.close()


async def _measure_postgresql(url: str, rate: float, seconds: float) -> Sample:
    async with fresh_schema(url) as dsn:
        store = PostgresStore(dsn)
        await store.open()
        try:
            name = application_name(dsn)
            before = await backend_cpu_seconds(url, name)
            sample = await _paced(store, rate, seconds)
            server = await backend_cpu_seconds(url, name) - before
        finally:
            await store.close()
    sample.server_cpu_us_per_message = server * 1e6 / int(rate * seconds)
    return sample


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=400.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--delays", default="0,0.01", help="comma-separated SQLite commit delays (seconds)"
    )
    parser.add_argument(
        "--postgresql", default="", help="also the PostgreSQL store, in this database (URL)"
    )
    args = parser.parse_args(argv)
    configurations: list[Configuration] = [
        ("memory", 0.0, "-"),
        *(("sqlite", float(delay), "FULL") for delay in args.delays.split(",")),
        ("sqlite", 0.0, "NORMAL"),
    ]
    if args.postgresql:
        configurations.append(("postgresql", 0.0, "-"))
    samples: dict[Configuration, list[Sample]] = {c: [] for c in configurations}
    for _ in range(args.repeats):
        for configuration in configurations:
            sample = await measure(configuration, args.rate, args.seconds, args.postgresql)
            samples[configuration].append(sample)
    print(f"rate={args.rate:g} msg/s seconds={args.seconds:g} repeats={args.repeats}")
    print(
        "| store | synchronous | commit delay | CPU us per message (median) | runs"
        " | stored p50 / p99 ms | PostgreSQL backends' CPU us per message |"
    )
    print("|---|---|---:|---:|---|---|---:|")
    for (name, delay, synchronous), runs in samples.items():
        cpu = statistics.median(s.cpu_us_per_message for s in runs)
        each = ", ".join(f"{s.cpu_us_per_message:.0f}" for s in runs)
        p50 = statistics.median(s.p50_ms for s in runs)
        p99 = statistics.median(s.p99_ms for s in runs)
        shown = f"{delay * 1000:g} ms" if name == "sqlite" else "-"
        server = (
            f"{statistics.median(s.server_cpu_us_per_message for s in runs):.0f}"
            if name == "postgresql"
            else "-"
        )
        print(
            f"| {name} | {synchronous} | {shown} | {cpu:.0f} | {each}"
            f" | {p50:.2f} / {p99:.2f} | {server} |"
        )


if __name__ == "__main__":
    uvloop.run(main())
