"""The collector's pauses while connections arrive.

    python -m bench.gc_arrivals [--connections 3000] [--rooms 20] [--repeats 3]

`tune_for_serving` raises the young generation's threshold to 50,000 objects, so
that chat traffic (which frees what it allocates by reference counting) sets off
almost no collection. Arrivals are the other case: every connection leaves objects
alive, and the young collections that come due walk nothing but survivors. This
starts the server with the memory store (no disk in the way), connects
`--connections` clients one after another, each joining one of `--rooms` rooms,
and prints what `hubbub_gc_pause_seconds` counted meanwhile, per generation.
"""

import argparse
import asyncio
import re
from collections.abc import Sequence

import aiohttp

from bench.servers import SERVERS, RunningServer
from hubbub.client import ChatClient

PAUSE_LINE = re.compile(
    r'^hubbub_gc_pause_seconds_(?P<kind>count|sum|bucket)\{generation="(?P<generation>\d)"'
    r'(?:,le="(?P<le>[^"]+)")?\} (?P<value>\S+)$'
)


def pauses(metrics: str) -> dict[int, tuple[int, float, dict[str, int]]]:
    """Per generation: collections, their seconds in total, and the cumulative
    count per bucket bound, as /metrics gives them."""
    counts: dict[int, int] = {}
    sums: dict[int, float] = {}
    buckets: dict[int, dict[str, int]] = {}
    for line in metrics.splitlines():
        match = PAUSE_LINE.match(line)
        if match is None:
            continue
        generation, value = int(match["generation"]), float(match["value"])
        if match["kind"] == "count":
            counts[generation] = int(value)
        elif match["kind"] == "sum":
            sums[generation] = value
        else:
            buckets.setdefault(generation, {})[match["le"]] = int(value)
    return {g: (counts[g], sums.get(g, 0.0), buckets.get(g, {})) for g in counts}


def longest_bound(before: dict[str, int], after: dict[str, int]) -> str:
    """The smallest bucket bound that holds every collection counted in between."""
    added = {bound: after[bound] - before.get(bound, 0) for bound in after}
    everything = added.get("+Inf", 0)
    for bound, count in sorted(added.items(), key=lambda item: float(item[0])):
        if count == everything:
            return bound
    return "+Inf"


async def arrive(url: str, metrics_url: str, connections: int, rooms: int) -> str:
    async with aiohttp.ClientSession() as http:
        before = pauses(await (await http.get(metrics_url)).text())
        clients = []
        try:
            for n in range(connections):
                client = await ChatClient.connect(url)
                clients.append(client)
                await client.join(f"room{n % rooms}", f"user{n}")
            after = pauses(await (await http.get(metrics_url)).text())
        finally:
            await asyncio.gather(*(client.close() for client in clients))
    lines = []
    for generation, (count, total, buckets) in sorted(after.items()):
        old_count, old_total, old_buckets = before.get(generation, (0, 0.0, {}))
        collections = count - old_count
        if not collections:
            continue
        seconds = total - old_total
        lines.append(
            f"generation {generation}: {collections} collections, {seconds * 1e3:.1f} ms in all,"
            f" {seconds / collections * 1e3:.1f} ms each on average,"
            f" each at most {float(longest_bound(old_buckets, buckets)) * 1e3:g} ms"
        )
    return "; ".join(lines) or "no collection"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    limit = str(args.connections + 10)
    for repeat in range(1, args.repeats + 1):
        with RunningServer(
            SERVERS["hubbub-memory"],
            cores=frozenset({0}),
            extra_args=["--max-connections", limit, "--max-connections-per-ip", limit],
        ) as server:
            metrics_url = f"http://127.0.0.1:{server.port}/metrics"
            summary = asyncio.run(arrive(server.url, metrics_url, args.connections, args.rooms))
        print(f"{args.connections} arrivals, run {repeat}: {summary}", flush=True)


if __name__ == "__main__":
    main()
